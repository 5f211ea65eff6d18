"""Sidecar mode: the cf-voice protocol, fallback to in-process, and cf-orch allocate/release.

Fast tests use small real HTTP servers in threads; the `slow` ones run `manage.py voice_sidecar`
as a real subprocess.
"""

from __future__ import annotations

import asyncio
import base64

import pytest
from channels.db import database_sync_to_async
from django.db import DatabaseError
from django.test import AsyncClient

from sessions_app.services.sessions import session_end, session_open
from tests.voice_app.conftest import (
    TONE_FIELDS,
    allocation_releases_settled,
    assert_tone_shape,
    dead_url,
    logged_events,
    release_threads_joined,
    stream_row,
    wav_pcm,
)
from voice_app import pipeline
from voice_app.services import audio_stream_allocation_record, audio_stream_open
from voice_app.sidecar import SidecarShiftTracker, sidecar_events_map
from voice_app.sidecar.allocation import ALLOCATION_CALLER, ALLOCATION_TTL_S

pytestmark = pytest.mark.django_db(transaction=True)

ALLOCATE = ("POST", "/api/services/cf-voice/allocate")


def release_path(allocation_id: str) -> tuple[str, str]:
    return ("DELETE", f"/api/services/cf-voice/allocations/{allocation_id}")


def no_events(body: dict) -> tuple[int, dict]:
    return 200, {"events": []}


def fake_cf_voice(fake_http, *, classify=no_events, health_status: int = 200):
    """A cf-voice sidecar: /health answers `health_status`, /classify answers `classify(body)`."""
    return fake_http({("GET", "/health"): lambda body: (health_status, {}), ("POST", "/classify"): classify})


def fake_cf_orch(fake_http, settings, *, url: str, allocation_id: str | int):
    """A cf-orch that hands out `url` as `allocation_id` and takes it back; Linnet set to use it."""
    orch = fake_http(
        {
            ALLOCATE: lambda body: (201, {"url": url, "allocation_id": allocation_id}),
            release_path(str(allocation_id)): lambda body: (204, None),
        }
    )
    settings.CF_VOICE_URL = None
    settings.CF_ORCH_URL = orch.url
    return orch


def mapped(
    events: list, *, threshold: float = 0.1, elcor: bool = False, shift_tracker: SidecarShiftTracker | None = None
):
    return sidecar_events_map(
        events=events,
        start=2.0,
        end=3.0,
        elcor=elcor,
        threshold=threshold,
        shift_tracker=shift_tracker or SidecarShiftTracker(),
    )


def test_sidecar_events_become_linnet_events_by_type():
    items = mapped(
        [
            {"event_type": "transcript", "label": "see you at nine", "speaker_id": "A", "timestamp": 2.25},
            {"event_type": "speaker", "label": "A", "confidence": 0.9, "timestamp": 2.1},
            {"event_type": "queue", "label": "silence", "confidence": 0.8},
            {"event_type": "environ", "label": "noise_floor_change", "confidence": 0.6, "timestamp": 1.0},
            {"event_type": "laughter", "label": "haha", "confidence": 0.9},
            {"event_type": "tone"},
            "not an event",
        ]
    )

    assert items == [
        ("transcript", {"text": "see you at nine", "speaker_id": "A", "start": 2.25, "end": 3.0}),
        ("speaker", {"label": "A", "confidence": 0.9, "start": 2.1, "end": 3.0}),
        ("queue", {"label": "silence", "confidence": 0.8, "start": 2.0, "end": 3.0}),
        ("environ", {"label": "noise_floor_change", "confidence": 0.6, "start": 1.0, "end": 3.0}),
    ]


@pytest.mark.parametrize("elcor", [False, True], ids=["plain", "elcor"])
def test_sidecar_tones_carry_every_field_with_their_annotation(elcor):
    [(type_, tone)] = mapped(
        [{"event_type": "tone", "label": "tense", "confidence": 0.72, "speaker_id": "B", "shift_magnitude": 0.4}],
        elcor=elcor,
    )

    assert type_ == "tone" and set(tone) == TONE_FIELDS
    assert (tone["label"], tone["confidence"], tone["speaker_id"], tone["shift_magnitude"]) == ("tense", 0.72, "B", 0.4)
    assert (tone["affect"], tone["prosody_flags"], tone["start"], tone["end"]) == ("strained", [], 2.0, 3.0)
    assert tone["subtext"].startswith("[") == elcor


def test_sidecar_tones_below_the_threshold_are_dropped_and_a_missing_confidence_counts_as_asserted():
    items = mapped(
        [
            {"event_type": "tone", "label": "calm", "confidence": 0.05},
            {"event_type": "tone", "label": "calm"},
            {"event_type": "transcript", "label": "quiet words", "confidence": 0.01},
        ],
        threshold=0.1,
    )

    assert [(t, d.get("confidence")) for t, d in items] == [("tone", 1.0), ("transcript", None)]


def test_shift_direction_follows_the_move_between_sidecar_labels():
    shift_tracker = SidecarShiftTracker()

    def shift(label, magnitude, **extra):
        event = {"event_type": "tone", "label": label, "confidence": 0.9, "shift_magnitude": magnitude, **extra}
        return mapped([event], shift_tracker=shift_tracker)[0][1]["shift_direction"]

    assert shift("calm", 0.5) == "stable"  # nothing to compare with yet
    assert shift("tense", 0.5) == "escalating"
    assert shift("subdued", 0.6) == "de-escalating"
    assert shift("subdued", 0.6) == "stable"
    assert shift("animated", 0.05) == "stable"  # too small a shift to call
    assert shift("Frustrated", 0.9) == "stable"  # outside the vocabulary: no direction claimed
    assert shift("tense", 0.5, shift_direction="de-escalating") == "de-escalating"  # the sidecar's own word wins


async def test_a_loading_sidecar_is_reported_then_ready_once_it_answers(audio_stream, fake_http, settings):
    def classify(body):
        transcript = {"event_type": "transcript", "label": "hello there", "speaker_id": "A"}
        return 200, {
            "events": [
                {**transcript, "timestamp": body["timestamp"] + 0.2},
                {"event_type": "tone", "label": "Frustrated", "confidence": 0.7, "shift_magnitude": 0.3},
                {"event_type": "sparkle", "label": "unknown to linnet"},
            ]
        }

    cf_voice = fake_cf_voice(fake_http, health_status=503, classify=classify)
    settings.CF_VOICE_URL = cf_voice.url
    session, client = await audio_stream(elcor=True, language="de", num_speakers=2)
    audio = wav_pcm("calm", seconds=2)
    await client.stream(audio)
    await client.close_stream()

    service = [e["data"]["status"] for e in await logged_events(session.id, "service")]
    transcripts = await logged_events(session.id, "transcript")
    tones = await logged_events(session.id, "tone")
    assert service == ["loading", "ready"]
    assert [(t["data"]["text"], t["data"]["speaker_id"], t["data"]["start"]) for t in transcripts] == [
        ("hello there", "A", 0.2),
        ("hello there", "A", 1.2),
    ]
    assert [(t["data"]["label"], t["data"]["affect"], t["data"]["start"]) for t in tones] == [
        ("Frustrated", "neutral", 0.0),
        ("Frustrated", "neutral", 1.0),
    ]
    assert tones[0]["data"]["subtext"].startswith("[")
    requests = cf_voice.seen("POST", "/classify")
    assert [r.body["timestamp"] for r in requests] == [0.0, 1.0]
    assert base64.b64decode(requests[1].body["audio_chunk"]) == audio[32000:64000]
    assert {(r.body["session_id"], r.body["elcor"], r.body["language"], r.body["num_speakers"]) for r in requests} == {
        (str(session.id), True, "de", 2)
    }


async def test_an_unreachable_sidecar_warns_once_and_the_in_process_classifier_takes_over(audio_stream, settings):
    settings.CF_VOICE_URL = dead_url()
    session, client = await audio_stream()
    await client.stream(wav_pcm("calm", seconds=3))
    summary, _ = await client.close_stream()

    service = await logged_events(session.id, "service")
    tones = await logged_events(session.id, "tone")
    assert [e["data"]["status"] for e in service] == ["warning"]
    assert "unreachable" in service[0]["data"]["detail"]
    assert summary["windows"] == 3
    assert tones and {t["data"]["speaker_id"] for t in tones} == {"speaker_0"}


async def test_a_failure_streak_gives_one_warning_and_recovery_gives_ready(
    audio_stream, fake_http, settings, monkeypatch
):
    calls = []

    def classify(body):
        calls.append(body["timestamp"])
        if len(calls) in (2, 3):
            return 500, {"error": "overloaded"}
        return 200, {"events": [{"event_type": "queue", "label": "from_sidecar", "confidence": 0.9}]}

    settings.CF_VOICE_URL = fake_cf_voice(fake_http, classify=classify).url
    monkeypatch.setattr(pipeline, "SIDECAR_RETRY_S", 0.0)  # try the sidecar again on the next window
    session, client = await audio_stream(window_ms=500)
    await client.stream(wav_pcm("silence", seconds=2.5))
    await client.close_stream()

    service = [(e["data"]["status"], e["data"]["detail"]) for e in await logged_events(session.id, "service")]
    labels = [e["data"]["label"] for e in await logged_events(session.id, "queue")]
    assert [status for status, _ in service] == ["ready", "warning", "ready"]
    assert "HTTP 500" in service[1][1]
    # Windows 2 and 3 were classified in-process; the sidecar took the others.
    assert labels == ["from_sidecar", "silence", "silence", "from_sidecar", "from_sidecar"]


async def test_a_failed_allocation_warns_and_classifies_in_process(audio_stream, fake_http, settings):
    orch = fake_http({ALLOCATE: lambda body: (503, {"error": "no capacity"})})
    settings.CF_VOICE_URL = None
    settings.CF_ORCH_URL = orch.url
    session, client = await audio_stream()
    await client.stream(wav_pcm("calm", seconds=2))
    await client.close_stream()
    await database_sync_to_async(session_end)(session=session)

    service = await logged_events(session.id, "service")
    assert [(e["data"]["status"], "cf-orch allocation failed" in e["data"]["detail"]) for e in service] == [
        ("warning", True)
    ]
    assert await logged_events(session.id, "tone")
    assert [r.method for r in orch.requests] == ["POST"]


async def test_an_allocation_is_released_once_when_its_stream_closes(audio_stream, fake_http, settings):
    cf_voice = fake_cf_voice(fake_http)
    orch = fake_cf_orch(fake_http, settings, url=cf_voice.url + "/", allocation_id=7)
    session, client = await audio_stream()
    await client.stream(wav_pcm("calm", seconds=1))
    await client.close_stream()

    assert await orch.wait_for(*release_path("7"))
    await database_sync_to_async(session_end)(session=session)
    # Ending the session schedules any release it claims; let those land before counting.
    await allocation_releases_settled()
    assert [r.body for r in orch.seen(*ALLOCATE)] == [{"caller": ALLOCATION_CALLER, "ttl_s": ALLOCATION_TTL_S}]
    assert len(orch.seen(*release_path("7"))) == 1
    assert len(cf_voice.seen("POST", "/classify")) == 1
    row = await stream_row(session.id)
    assert (row.allocation_id, row.allocation_released_at is not None) == ("7", True)


async def test_an_allocation_that_could_not_be_recorded_is_released(audio_stream, fake_http, settings, monkeypatch):
    async def failing(**kwargs):
        raise DatabaseError("the database went away")

    monkeypatch.setattr(pipeline, "_allocation_record", failing)
    orch = fake_cf_orch(fake_http, settings, url=fake_cf_voice(fake_http).url, allocation_id="8")
    _, client = await audio_stream()

    assert await client.receive_close() == 1011
    assert len(await orch.wait_for(*release_path("8"))) == 1


async def test_an_allocation_being_recorded_when_the_stream_closes_is_released_once(
    audio_stream, fake_http, settings, monkeypatch
):
    recording, recorded = asyncio.Event(), asyncio.Event()
    gate = asyncio.Event()
    record = pipeline._allocation_record

    async def slow(**kwargs):
        recording.set()
        await gate.wait()
        try:
            return await record(**kwargs)
        finally:
            recorded.set()

    monkeypatch.setattr(pipeline, "_allocation_record", slow)
    orch = fake_cf_orch(fake_http, settings, url=fake_cf_voice(fake_http).url, allocation_id="9")
    session, client = await audio_stream()
    await recording.wait()

    await client.communicator.disconnect()  # the stream's task is cancelled mid-write
    gate.set()
    await recorded.wait()

    assert len(await orch.wait_for(*release_path("9"))) == 1
    await database_sync_to_async(session_end)(session=session)
    await allocation_releases_settled()
    assert len(orch.seen(*release_path("9"))) == 1
    row = await stream_row(session.id)
    assert (row.allocation_id, row.closed_at is not None) == ("", True)


def test_ending_a_session_in_a_process_without_a_loop_still_releases_its_allocation(fake_http, settings):
    orch = fake_http({release_path("a-1"): lambda body: (200, {})})
    settings.CF_ORCH_URL = orch.url
    session, _ = session_open()
    stream = audio_stream_open(session=session)
    audio_stream_allocation_record(stream_id=stream.pk, allocation_id="a-1")

    session_end(session=session)
    release_threads_joined(timeout=10)

    assert len(orch.seen(*release_path("a-1"))) == 1


@pytest.mark.slow
async def test_sidecar_mode_classifies_through_a_real_voice_sidecar(audio_stream, voice_sidecar, settings):
    settings.CF_VOICE_URL = voice_sidecar.url
    session, client = await audio_stream(elcor=True)
    await client.stream(wav_pcm("loud_high", seconds=3))
    summary, code = await client.close_stream()

    service = await logged_events(session.id, "service")
    tones = await logged_events(session.id, "tone")
    assert (summary["windows"], code) == (3, 1000)
    assert [(e["data"]["status"], voice_sidecar.url in e["data"]["detail"]) for e in service] == [("ready", True)]
    assert tones
    for tone in tones:
        assert_tone_shape(tone["data"], elcor=True)
    # The sidecar kept a classifier for this session: the windows really went through it.
    assert voice_sidecar.health()["sessions"] == 1


@pytest.mark.slow
async def test_stopping_the_sidecar_mid_stream_falls_back_in_process_with_one_warning(
    audio_stream, voice_sidecar, settings
):
    settings.CF_VOICE_URL = voice_sidecar.url
    session, client = await audio_stream()
    audio = wav_pcm("calm", seconds=5)
    await client.stream(audio[: 2 * 32000])
    await client.receive_type("ack")
    await client.receive_type("ack")
    assert voice_sidecar.stop() == 0

    await client.stream(audio[2 * 32000 :])
    summary, code = await client.close_stream()

    service = [e["data"]["status"] for e in await logged_events(session.id, "service")]
    tones = await logged_events(session.id, "tone")
    assert (summary["windows"], code) == (5, 1000)
    assert service == ["ready", "warning"]
    assert {t["data"]["start"] for t in tones} >= {2.0, 3.0, 4.0}


@pytest.mark.slow
async def test_cf_orch_allocates_the_sidecar_and_ending_the_session_releases_it(
    audio_stream, voice_sidecar, fake_http, settings
):
    orch = fake_cf_orch(fake_http, settings, url=voice_sidecar.url, allocation_id="cf-voice-1")
    session, client = await audio_stream()
    await client.stream(wav_pcm("question", seconds=2))
    await client.receive_type("ack")
    await client.receive_type("ack")
    assert not orch.seen(*release_path("cf-voice-1"))

    response = await AsyncClient().delete(
        f"/api/sessions/{session.id}", headers={"Authorization": f"Bearer {client.token}"}
    )

    assert response.status_code == 200 and response.json()["state"] == "done"
    assert await client.receive_close() == 1000
    assert client.of_type("closed")[0]["windows"] == 2
    assert len(await orch.wait_for(*release_path("cf-voice-1"))) == 1
    service = await logged_events(session.id, "service")
    assert [e["data"]["status"] for e in service] == ["ready"]
    assert await logged_events(session.id, "tone")
    assert voice_sidecar.health()["sessions"] == 1
