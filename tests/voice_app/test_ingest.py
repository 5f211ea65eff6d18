"""The audio socket end to end through the real ASGI app, with the in-process classifier."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from dataclasses import dataclass

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from sessions_app.clock import utcnow
from sessions_app.errors import LinnetError
from sessions_app.metrics import REGISTRY
from sessions_app.models import Session, SessionState
from sessions_app.services.events import LAYER_EVENTS
from sessions_app.services.sessions import session_end
from tests.voice_app.conftest import (
    BYTES_PER_SECOND,
    FRAME_BYTES,
    assert_tone_shape,
    frames_of,
    logged_events,
    stream_row,
    wav_pcm,
)
from voice_app import consumers, errors, pipeline
from voice_app.classifier import SessionClassifier
from voice_app.models import AudioStream
from voice_app.pipeline import RATE_LIMIT_START_S
from voice_app.services import audio_stream_open, voice_events_append

pytestmark = pytest.mark.django_db(transaction=True)

SPEECH = ["calm", "loud_high", "fast", "question"]


async def session_state(session_id) -> str:
    return (await database_sync_to_async(Session.objects.get)(pk=session_id)).state


@dataclass(frozen=True)
class ClassifiedWindow:
    start: float
    session_classifier: SessionClassifier
    thread: str


@pytest.fixture
def classified_windows(monkeypatch) -> list[ClassifiedWindow]:
    """Every window the in-process classifier takes, in the order it takes them."""
    seen: list[ClassifiedWindow] = []
    original = pipeline.InProcessClassifier._classify

    def recording(self, window):
        seen.append(ClassifiedWindow(window.start, self.session_classifier, threading.current_thread().name))
        return original(self, window)

    monkeypatch.setattr(pipeline.InProcessClassifier, "_classify", recording)
    return seen


class StalledClassifier:
    """Holds the in-process classifier's windows until `gate` is set; records being cancelled."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()
        self.cancelled = asyncio.Event()


@pytest.fixture
def stalled_classifier(monkeypatch) -> StalledClassifier:
    stalled = StalledClassifier()
    original = pipeline.InProcessClassifier.classify

    async def held(self, window):
        stalled.entered.set()
        try:
            await stalled.gate.wait()
        except asyncio.CancelledError:
            stalled.cancelled.set()
            raise
        return await original(self, window)

    monkeypatch.setattr(pipeline.InProcessClassifier, "classify", held)
    return stalled


@pytest.mark.parametrize("fixture", SPEECH)
@pytest.mark.parametrize("elcor", [False, True], ids=["plain", "elcor"])
async def test_speech_streamed_as_binary_frames_logs_complete_tone_events(audio_stream, fixture, elcor):
    session, client = await audio_stream(elcor=elcor)
    ready = client.received[0]
    await client.stream(wav_pcm(fixture, seconds=3))
    summary, code = await client.close_stream()

    assert ready == {"type": "ready", "session_id": str(session.id), "sample_rate": 16000, "window_ms": 1000}
    assert code == 1000
    assert summary == {"type": "closed", "frames": 30, "bytes": 3 * BYTES_PER_SECOND, "windows": 3}
    tones = await logged_events(session.id, "tone")
    assert tones, f"no tone events for {fixture}"
    for tone in tones:
        assert_tone_shape(tone["data"], elcor=elcor)
    # Tones sit on the window grid of the stream, by samples received.
    assert {(t["data"]["start"], t["data"]["end"]) for t in tones} <= {(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)}


@pytest.mark.parametrize("elcor", [False, True], ids=["plain", "elcor"])
async def test_base64_json_frames_give_the_same_events_as_binary_frames(audio_stream, elcor):
    audio = wav_pcm("question", seconds=3)
    logs = []
    for as_json in (False, True):
        session, client = await audio_stream(elcor=elcor)
        await client.stream(audio, as_json=as_json)
        summary, _ = await client.close_stream()
        assert summary["frames"] == 30 and summary["bytes"] == len(audio)
        logs.append([(e["type"], e["data"]) for e in await logged_events(session.id, "tone", "speaker", "queue")])

    binary, via_json = logs
    assert any(type_ == "tone" for type_, _ in via_json)
    assert via_json == binary


async def test_silence_yields_queue_events_and_no_tones(audio_stream):
    session, client = await audio_stream()
    await client.stream(wav_pcm("silence", seconds=3))
    await client.close_stream()

    voice = await logged_events(session.id, "tone", "speaker", "transcript", "queue", "environ")
    assert voice
    assert {e["type"] for e in voice} == {"queue"}
    assert [e["data"]["label"] for e in voice] == ["silence"] * 3


async def test_events_arrive_live_at_a_subscriber_of_the_events_socket(amake_session, audio_client, subscriber):
    session, token = await amake_session()
    watcher = subscriber(session.id, token=token)
    assert await watcher.connect()
    await watcher.receive_until_replay_complete()

    client = audio_client(session.id, token=token)
    await client.connect()
    await client.stream(wav_pcm("calm", seconds=2))
    await client.close_stream()

    live = []
    while not any(e["type"] == "tone" and e["data"]["end"] == 2.0 for e in live):
        live.append(await watcher.receive())
    seqs = [e["seq"] for e in live]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert [e["data"]["status"] for e in live if e["type"] == "service"] == ["ready"]
    assert live == [e for e in await logged_events(session.id) if seqs[0] <= e["seq"] <= seqs[-1]]


async def test_attaching_a_stream_activates_a_pending_session(audio_stream):
    session, _ = await audio_stream()

    assert session.state == SessionState.PENDING
    assert await session_state(session.id) == SessionState.RUNNING


async def test_finalize_classifies_the_partial_window_now(audio_stream):
    session, client = await audio_stream(window_ms=500)
    for frame in frames_of(wav_pcm("silence", seconds=0.75), 1600):
        await client.send_bytes(frame)
    first = await client.receive_type("ack")
    await client.send_json({"type": "finalize"})
    second = await client.receive_type("ack")
    for frame in frames_of(wav_pcm("silence", seconds=0.5), 1600):
        await client.send_bytes(frame)
    third = await client.receive_type("ack")

    assert 10 <= first["frames"] <= 15
    assert (second["frames"], third["frames"]) == (15, 25)
    queue = await logged_events(session.id, "queue")
    # The finalized quarter second ends at 0.75 s and the stream's clock carries on from there.
    assert [(e["data"]["start"], e["data"]["end"]) for e in queue] == [(0.0, 0.5), (0.5, 0.75), (0.75, 1.25)]


async def test_close_classifies_what_is_buffered_and_reports_the_totals(audio_stream):
    session, client = await audio_stream(window_ms=500)
    ready = client.received[0]
    audio = wav_pcm("silence", seconds=1.2)
    frames = await client.stream(audio, frame_bytes=1000)
    summary, code = await client.close_stream()

    assert ready["window_ms"] == 500
    assert code == 1000
    assert summary == {"type": "closed", "frames": frames, "bytes": len(audio), "windows": 3}
    assert len(client.of_type("ack")) == 3
    queue = await logged_events(session.id, "queue")
    assert [e["data"]["end"] for e in queue] == [0.5, 1.0, 1.2]
    row = await stream_row(session.id)
    assert (row.frames, row.bytes, row.windows, row.close_code) == (frames, len(audio), 3, 1000)
    assert row.closed_at is not None


async def test_ending_the_session_sends_closed_and_closes_the_audio_socket(audio_stream):
    session, client = await audio_stream()
    await client.stream(wav_pcm("calm", seconds=1))
    await client.receive_type("ack")

    await database_sync_to_async(session_end)(session=session)

    assert await client.receive_close() == 1000
    assert client.of_type("closed") == [{"type": "closed", "frames": 10, "bytes": BYTES_PER_SECOND, "windows": 1}]
    row = await stream_row(session.id)
    assert row.closed_at is not None
    types = [e["type"] for e in await logged_events(session.id)]
    assert types[-1] == "session.ended"


async def test_audio_still_being_classified_when_the_session_ends_is_dropped(audio_stream, stalled_classifier):
    session, client = await audio_stream()
    for frame in frames_of(wav_pcm("silence", seconds=1)):
        await client.send_bytes(frame)
    await stalled_classifier.entered.wait()

    await database_sync_to_async(session_end)(session=session)

    assert await client.receive_close() == 1000
    assert stalled_classifier.cancelled.is_set()
    assert client.of_type("closed")[0] == {"type": "closed", "frames": 10, "bytes": BYTES_PER_SECOND, "windows": 0}
    assert not await logged_events(session.id, "queue")


SILENCE_ITEM = ("queue", {"label": "silence", "confidence": 1.0, "start": 0.0, "end": 1.0})


@pytest.mark.parametrize("items", [[SILENCE_ITEM], []], ids=["window_with_events", "window_without_events"])
async def test_window_events_are_not_logged_after_the_session_ended(amake_session, items):
    session, _ = await amake_session()
    stream = await database_sync_to_async(audio_stream_open)(session=session)
    await database_sync_to_async(session_end)(session=session)
    last_seq = (await logged_events(session.id))[-1]["seq"]

    with pytest.raises(LinnetError) as refused:
        await database_sync_to_async(voice_events_append)(session_id=session.id, stream_id=stream.pk, items=items)

    assert (refused.value.code, refused.value.status) == (errors.SESSION_NOT_ACTIVE, 409)
    assert (await logged_events(session.id))[-1]["seq"] == last_seq


async def test_a_stream_that_ignores_lost_layer_messages_still_ends_with_its_session(audio_stream, monkeypatch):
    async def lost(self, message):
        pass  # channels-redis drops messages to a full channel: this socket never hears of the end

    monkeypatch.setattr(consumers.AudioConsumer, "session_events", lost)
    session, client = await audio_stream()
    await client.stream(wav_pcm("silence", seconds=1))
    await client.receive_type("ack")

    await database_sync_to_async(session_end)(session=session)
    await client.stream(wav_pcm("silence", seconds=1))

    assert await client.receive_close() == 1000
    assert client.of_type("closed") == [{"type": "closed", "frames": 20, "bytes": 2 * BYTES_PER_SECOND, "windows": 1}]
    row = await stream_row(session.id)
    assert (row.close_code, row.closed_at is not None) == (1000, True)
    assert [e["type"] for e in await logged_events(session.id)][-1] == "session.ended"


async def test_a_stream_taken_over_by_another_producer_stops_logging_with_4409(audio_stream):
    session, client = await audio_stream()
    await client.stream(wav_pcm("silence", seconds=1))
    await client.receive_type("ack")
    # What a producer on another process does once this process's lease has lapsed.
    row = await stream_row(session.id)
    await database_sync_to_async(AudioStream.objects.filter(pk=row.pk).update)(closed_at=utcnow())

    await client.stream(wav_pcm("silence", seconds=1))

    assert await client.receive_error_close() == ("audio_stream_attached", 4409)
    assert [e["data"]["end"] for e in await logged_events(session.id, "queue")] == [1.0]


async def test_a_closed_stream_frees_the_session_for_the_next_producer(audio_stream, audio_client):
    session, first = await audio_stream()
    await first.close_stream()

    second = audio_client(session.id, token=first.token)
    assert (await second.connect())["type"] == "ready"


async def test_a_reconnecting_stream_carries_on_the_sessions_clock_and_baseline(
    audio_stream, audio_client, classified_windows
):
    session, first = await audio_stream(window_ms=500)
    await first.stream(wav_pcm("silence", seconds=1.25))
    await first.close_stream()
    # The second socket drops its partial window: it never reaches the log or the clock.
    second = audio_client(session.id, token=first.token)
    await second.connect()
    await second.stream(wav_pcm("silence", seconds=1.2))
    await second.receive_type("ack")
    await second.receive_type("ack")
    await second.communicator.disconnect()
    third = audio_client(session.id, token=first.token)
    await third.connect()
    await third.stream(wav_pcm("silence", seconds=0.5))
    await third.close_stream()

    queue = await logged_events(session.id, "queue")
    assert [(e["data"]["start"], e["data"]["end"]) for e in queue] == [
        (0.0, 0.5),
        (0.5, 1.0),
        (1.0, 1.25),
        (1.25, 1.75),
        (1.75, 2.25),
        (2.25, 2.75),
    ]
    baselines = [window.session_classifier for window in classified_windows]
    assert len(baselines) == 6 and all(baseline is baselines[0] for baseline in baselines)
    _, elsewhere = await audio_stream(window_ms=500)
    await elsewhere.stream(wav_pcm("silence", seconds=0.5))
    await elsewhere.close_stream()
    assert classified_windows[-1].session_classifier is not baselines[0]


async def test_classification_runs_windows_in_order_off_the_event_loop(audio_stream, classified_windows):
    _, client = await audio_stream(window_ms=100)
    await client.stream(wav_pcm("calm", seconds=1.5), frame_bytes=1234)
    await client.close_stream()

    starts = [window.start for window in classified_windows]
    assert starts == sorted(starts) and len(starts) == 15
    assert all(window.thread.startswith("linnet-classify") for window in classified_windows)


def skipped_windows() -> float:
    return REGISTRY.get_sample_value("linnet_audio_windows_skipped_total") or 0.0


async def test_a_classifier_that_falls_behind_skips_old_windows_within_a_bound(
    audio_stream, stalled_classifier, monkeypatch
):
    monkeypatch.setattr(pipeline, "BACKLOG_S", 0.3)  # three 100 ms windows
    session, client = await audio_stream(window_ms=100)
    skipped_before = skipped_windows()
    first, *rest = frames_of(wav_pcm("silence", seconds=1))
    await client.send_bytes(first)
    await asyncio.wait_for(stalled_classifier.entered.wait(), timeout=5)
    for frame in rest:
        await client.send_bytes(frame)
    # Nine more windows arrive while the first is stuck in flight: three wait, six are skipped.
    for _ in range(500):
        if skipped_windows() - skipped_before >= 6:
            break
        await asyncio.sleep(0.01)
    stalled_classifier.gate.set()
    summary, _ = await client.close_stream()

    queue = await logged_events(session.id, "queue")
    warnings = [e for e in await logged_events(session.id, "service") if e["data"]["status"] == "warning"]
    ends = [e["data"]["end"] for e in queue]
    # At most the window in flight plus three waiting survive; the newest ones are kept.
    assert skipped_windows() - skipped_before == 6
    assert summary["windows"] == len(queue) == 4
    assert ends == [0.1, 0.8, 0.9, 1.0]
    assert len(warnings) == 1 and "behind" in warnings[0]["data"]["detail"]


async def test_a_bad_stream_leaves_its_session_and_other_sessions_alone(audio_stream, audio_client, subscriber):
    good_session, good = await audio_stream()
    bad_session, bad = await audio_stream()
    watcher = subscriber(bad_session.id, token=bad.token)
    assert await watcher.connect()
    await watcher.receive_until_replay_complete()

    await good.stream(wav_pcm("calm", seconds=1))
    await bad.send_bytes(b"\x00" * 3201)
    assert await bad.receive_close() == 4400
    await good.stream(wav_pcm("calm", seconds=1))
    summary, code = await good.close_stream()

    assert (summary["windows"], code) == (2, 1000)
    assert await session_state(bad_session.id) == SessionState.RUNNING
    assert await session_state(good_session.id) == SessionState.RUNNING
    # The bad session takes a new stream, and its subscriber, still connected, hears it.
    retry = audio_client(bad_session.id, token=bad.token)
    assert (await retry.connect())["type"] == "ready"
    await retry.stream(wav_pcm("silence", seconds=1))
    heard = [await watcher.receive()]
    while heard[-1]["type"] != "queue":
        heard.append(await watcher.receive())
    assert heard[-1]["data"]["end"] == 1.0


async def test_keepalive_defers_the_idle_timeout(audio_stream, audio_clock, settings):
    settings.AUDIO_IDLE_TIMEOUT_S = 0.1
    _, client = await audio_stream()
    audio_clock.advance(0.075)
    await client.send_json({"type": "keepalive"})
    # Still inside the timeout, whenever the server reads the keepalive.
    assert await client.communicator.receive_nothing(timeout=0.1)

    audio_clock.advance(0.075)  # past the timeout since the stream opened, not since the keepalive
    # The idle watch wakes on the loop's own timer, at least once in this wait.
    assert await client.communicator.receive_nothing(timeout=0.15)
    audio_clock.advance(0.05)

    assert await client.receive_close(timeout=2) == 4408
    assert client.of_type("error")[0]["code"] == "audio_idle"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


CLOSE_CASES = {
    "odd_length_pcm": (4400, "invalid_audio", lambda c: c.send_bytes(b"\x01\x02\x03")),
    "odd_length_base64_pcm": (4400, "invalid_audio", lambda c: c.send_audio_json(b"\x01\x02\x03")),
    "undecodable_base64": (
        4400,
        "invalid_audio",
        lambda c: c.send_json({"type": "audio", "audio_chunk": "not base64!!", "timestamp": 0}),
    ),
    "bad_json": (4400, "malformed_message", lambda c: c.send_json("{not json")),
    "json_not_an_object": (4400, "malformed_message", lambda c: c.send_json("[1, 2]")),
    "unknown_type": (4400, "malformed_message", lambda c: c.send_json({"type": "hello"})),
    "audio_without_chunk": (4400, "malformed_message", lambda c: c.send_json({"type": "audio"})),
    "timestamp_not_a_number": (
        4400,
        "malformed_message",
        lambda c: c.send_json({"type": "audio", "audio_chunk": b64(b"\x00\x00"), "timestamp": "soon"}),
    ),
    "binary_frame_too_large": (4413, "frame_too_large", lambda c: c.send_bytes(b"\x00" * 65538)),
    "base64_frame_decodes_too_large": (4413, "frame_too_large", lambda c: c.send_audio_json(b"\x00" * 65538)),
    # Longer than any valid frame and not even JSON: refused by its length, before parsing.
    "absurd_text_frame": (4413, "frame_too_large", lambda c: c.send_json("x" * 1_000_000)),
    "type_is_a_list": (4400, "malformed_message", lambda c: c.send_json({"type": []})),
    "type_is_an_object": (4400, "malformed_message", lambda c: c.send_json({"type": {}})),
    "type_is_missing": (4400, "malformed_message", lambda c: c.send_json({"audio_chunk": ""})),
    # Short enough to be parsed, nested deeper than the JSON decoder recurses.
    "deeply_nested_json": (4400, "malformed_message", lambda c: c.send_json("[" * 5000)),
}


@pytest.mark.parametrize("case", list(CLOSE_CASES))
async def test_bad_input_is_refused_with_its_close_code(audio_stream, case):
    close_code, error_code, send = CLOSE_CASES[case]
    session, client = await audio_stream()
    await send(client)

    assert await client.receive_error_close() == (error_code, close_code)
    row = await stream_row(session.id)
    assert (row.close_code, row.closed_at is not None) == (close_code, True)


async def test_audio_faster_than_twice_real_time_is_refused_after_the_start_allowance(audio_stream):
    session, client = await audio_stream()
    # Eight seconds of audio at one instant of the test's clock: infinitely faster than real time.
    for frame in frames_of(b"\x00" * 8 * BYTES_PER_SECOND):
        await client.send_bytes(frame)

    assert await client.receive_error_close() == ("audio_too_fast", 4429)
    # The allowance a newly connected client starts with went through; not a frame more did.
    row = await stream_row(session.id)
    assert row.bytes == RATE_LIMIT_START_S * BYTES_PER_SECOND


async def test_an_unexpected_failure_handling_a_frame_closes_with_1011_and_frees_the_session(
    audio_stream, audio_client, monkeypatch
):
    def broken(self, pcm):
        raise RuntimeError("a bug")

    session, client = await audio_stream()
    monkeypatch.setattr(pipeline.VoicePipeline, "feed", broken)
    await client.send_bytes(b"\x00" * FRAME_BYTES)

    assert await client.receive_error_close() == ("internal_error", 1011)
    row = await stream_row(session.id)
    assert (row.close_code, row.closed_at is not None) == (1011, True)
    monkeypatch.undo()
    retry = audio_client(session.id, token=client.token)
    assert (await retry.connect())["type"] == "ready"


async def test_an_unexpected_failure_handling_a_layer_message_closes_with_1011_and_frees_the_session(
    audio_stream, audio_client
):
    session, client = await audio_stream()

    await get_channel_layer().group_send(session.group_name, {"type": LAYER_EVENTS, "events": [None]})

    assert await client.receive_error_close() == ("internal_error", 1011)
    row = await stream_row(session.id)
    assert (row.close_code, row.closed_at is not None) == (1011, True)
    retry = audio_client(session.id, token=client.token)
    assert (await retry.connect())["type"] == "ready"


@pytest.mark.parametrize(
    ("token_of", "headers", "path_session", "close_code", "error_code"),
    [
        ("other", None, "own", 4401, "unauthorized"),
        (None, None, "own", 4401, "unauthorized"),
        ("own", [(b"origin", b"http://evil.example")], "own", 4403, "origin_not_allowed"),
        ("own", None, "unknown", 4404, "session_not_found"),
    ],
    ids=["wrong_token", "no_token", "foreign_origin", "unknown_session"],
)
async def test_handshake_is_refused_with_its_close_code(
    amake_session, audio_client, token_of, headers, path_session, close_code, error_code
):
    session, token = await amake_session()
    _, other_token = await amake_session()
    tokens = {"own": token, "other": other_token, None: None}
    session_id = session.id if path_session == "own" else "6b1a4a1e-0000-4000-8000-000000000000"
    client = audio_client(session_id, token=tokens[token_of], headers=headers)
    assert await client.connect_refused() == (error_code, close_code)
    assert await session_state(session.id) == SessionState.PENDING
    assert not await database_sync_to_async(AudioStream.objects.filter(session_id=session.id).exists)()


async def test_an_ended_session_refuses_audio_with_4409(amake_session, audio_client):
    session, token = await amake_session()
    await database_sync_to_async(session_end)(session=session)
    client = audio_client(session.id, token=token)
    assert await client.connect_refused() == ("session_not_active", 4409)


async def test_an_agent_session_refuses_audio_with_4409(amake_session, audio_client):
    session, token = await amake_session(kind="agent")
    client = audio_client(session.id, token=token)
    assert await client.connect_refused() == ("session_not_voice", 4409)
    assert await session_state(session.id) == SessionState.PENDING


async def test_a_second_concurrent_stream_is_refused_and_the_first_continues(audio_stream, audio_client):
    session, first = await audio_stream()
    second = audio_client(session.id, token=first.token)
    assert await second.connect_refused() == ("audio_stream_attached", 4409)
    await first.stream(wav_pcm("silence", seconds=1))
    summary, code = await first.close_stream()
    assert (summary["windows"], code) == (1, 1000)


async def test_frames_of_the_browser_size_are_accepted_in_any_mix(audio_stream):
    _, client = await audio_stream()
    audio = wav_pcm("silence", seconds=1)
    await client.send_bytes(audio[:FRAME_BYTES])
    await client.send_audio_json(audio[FRAME_BYTES : 2 * FRAME_BYTES])
    await client.send_json(json.dumps({"type": "keepalive"}))
    await client.stream(audio[2 * FRAME_BYTES :])
    summary, _ = await client.close_stream()

    assert (summary["bytes"], summary["windows"]) == (len(audio), 1)
