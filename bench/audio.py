"""Concurrent real-time audio streams: the most a server sustains with every stream keeping up.

How: a bench server (daphne serving Linnet, in-memory layer, default settings: 16 kHz,
1 s windows, in-process classifier) takes N real `websockets` clients on
`/ws/sessions/{id}/audio`, one session each. Every client sends 100 ms binary PCM16
frames (3,200 bytes) at real time, from its own offset into a recorded speech fixture
(tests/fixtures/calm.wav) and with its own phase, for a fixed number of seconds, then
`{"type": "close"}`, and waits for the `closed` summary. A stream keeps up when:

- every window was classified (`closed.windows` is what it sent), with no error frame;
- every window's `ack` (sent once its tone events are logged) came within one window
  length of the window's last frame leaving the client.

N doubles from a start value until a trial fails, then a bisection step narrows the
answer; the value is the highest N that kept up. The clients run in this process on the
same two cores, so this is what one machine does with its own load in the way too; a
trial whose clients could not keep their own pace is counted as failed and noted.

The classifier's per-window cost in the server comes from its own metric
(`linnet_audio_classify_seconds`, read from `/metrics` after the trials): the mean over
every window the server classified, under load.

Baseline: the classifier alone (`SessionClassifier.classify`) on the same audio, one
window after another on one thread, so one core: its mean cost per window, and the
streams that cost allows (window length / cost) as the baseline of N.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import wave
from dataclasses import dataclass, field

import httpx
import numpy as np
from django.conf import settings

from bench.clients import bounded, sessions_create, ws_connect
from bench.environment import ROOT, BenchContext
from bench.processes import BenchServer
from bench.report import Result
from voice_app.classifier import SessionClassifier

FIXTURE = ROOT / "tests" / "fixtures" / "calm.wav"
FRAME_S = 0.1
START_STREAMS = 8
MAX_STREAMS = 256
QUICK_STREAMS = (2, 4)
SECONDS = 8
QUICK_SECONDS = 3
BASELINE_WINDOWS = 200
QUICK_BASELINE_WINDOWS = 20
CONNECT_CONCURRENCY = 20
# A client more than this late on its own schedule means the load generator, not the server, fell behind.
CLIENT_SLIP_S = 0.5


def speech_pcm() -> np.ndarray:
    with wave.open(str(FIXTURE)) as wav:
        if wav.getframerate() != settings.VOICE_SAMPLE_RATE or wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise RuntimeError(f"{FIXTURE} is not {settings.VOICE_SAMPLE_RATE} Hz mono PCM16")
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")


def stream_audio(pcm: np.ndarray, *, seconds: int, offset_s: float) -> bytes:
    """`seconds` of the fixture from `offset_s`, looped: each stream says something different at a time."""
    samples = seconds * settings.VOICE_SAMPLE_RATE
    start = int(offset_s * settings.VOICE_SAMPLE_RATE) % len(pcm)
    return np.resize(np.roll(pcm, -start), samples).astype("<i2").tobytes()


@dataclass
class StreamOutcome:
    windows_expected: int
    windows: int = 0
    lags_s: list[float] = field(default_factory=list)
    error: str | None = None
    client_slip_s: float = 0.0

    @property
    def kept_up(self) -> bool:
        window_s = settings.VOICE_WINDOW_MS / 1000
        return (
            self.error is None
            and self.windows == self.windows_expected
            and len(self.lags_s) == self.windows_expected
            and max(self.lags_s, default=0.0) <= window_s
        )


async def stream_run(url: str, audio: bytes, *, phase_s: float, start_at: float) -> StreamOutcome:
    """Send `audio` at real time in 100 ms frames; time every ack against its window's last frame."""
    frame_bytes = int(settings.VOICE_SAMPLE_RATE * FRAME_S) * 2
    frames = len(audio) // frame_bytes
    frames_per_window = settings.VOICE_WINDOW_MS // int(FRAME_S * 1000)
    outcome = StreamOutcome(windows_expected=frames // frames_per_window)
    ws = await ws_connect(url)
    acks: list[float] = []
    try:
        ready = json.loads(await ws.recv())
        if ready.get("type") != "ready":
            outcome.error = str(ready)
            return outcome

        async def read() -> None:
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] == "ack":
                    acks.append(time.monotonic())
                elif message["type"] == "closed":
                    outcome.windows = message["windows"]
                    return
                elif message["type"] == "error":
                    outcome.error = f"{message['code']}: {message['message']}"
                    return

        reader = asyncio.create_task(read())
        sent_at = []
        began = start_at + phase_s
        for index in range(frames):
            scheduled = began + index * FRAME_S
            delay = scheduled - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            outcome.client_slip_s = max(outcome.client_slip_s, time.monotonic() - scheduled)
            await ws.send(audio[index * frame_bytes : (index + 1) * frame_bytes])
            sent_at.append(time.monotonic())
        await ws.send(json.dumps({"type": "close"}))
        try:
            await asyncio.wait_for(reader, timeout=30)
        except TimeoutError:
            outcome.error = outcome.error or "no `closed` summary within 30 s"
        window_ends = [sent_at[(k + 1) * frames_per_window - 1] for k in range(outcome.windows_expected)]
        outcome.lags_s = [ack - end for ack, end in zip(acks, window_ends, strict=False)]
        return outcome
    finally:
        await ws.close()


async def trial(server: BenchServer, pcm: np.ndarray, streams: int, seconds: int) -> list[StreamOutcome]:
    sessions = await sessions_create(server.http_url, streams)
    urls = [f"{server.ws_url}/ws/sessions/{session_id}/audio?token={token}" for session_id, token in sessions]
    # Connections open while the first streams already run; everybody starts together, phases spread.
    start_at = time.monotonic() + 1.0 + streams * 0.01
    rng = np.random.default_rng(streams)
    runs = [
        lambda url=url, i=i: stream_run(
            url,
            stream_audio(pcm, seconds=seconds, offset_s=i * 0.37),
            phase_s=float(rng.uniform(0, settings.VOICE_WINDOW_MS / 1000)),
            start_at=start_at,
        )
        for i, url in enumerate(urls)
    ]
    return await bounded(runs, concurrency=streams)


def trial_summary(streams: int, outcomes: list[StreamOutcome]) -> dict:
    lags = [lag for outcome in outcomes for lag in outcome.lags_s]
    return {
        "streams": streams,
        "kept_up": sum(outcome.kept_up for outcome in outcomes),
        "max_lag_s": max(lags, default=None),
        "errors": sorted({outcome.error for outcome in outcomes if outcome.error}),
        "client_slip_s": max(outcome.client_slip_s for outcome in outcomes),
    }


def classify_cost_in_server(server: BenchServer) -> float | None:
    """Mean seconds per window of the in-process classifier, from the server's own histogram."""
    text = httpx.get(f"{server.http_url}/metrics", timeout=10).text
    values = {}
    for stat in ("sum", "count"):
        match = re.search(rf'^linnet_audio_classify_seconds_{stat}\{{classifier="in_process"\}} (\S+)$', text, re.M)
        values[stat] = float(match.group(1)) if match else 0.0
    return values["sum"] / values["count"] if values["count"] else None


def classify_cost_alone(pcm: np.ndarray, windows: int) -> float:
    """Mean seconds per window of the classifier by itself, one window after another."""
    window = settings.VOICE_SAMPLE_RATE * settings.VOICE_WINDOW_MS // 1000
    classifier = SessionClassifier(sample_rate=settings.VOICE_SAMPLE_RATE)
    audio = np.frombuffer(stream_audio(pcm, seconds=windows * settings.VOICE_WINDOW_MS // 1000, offset_s=0), "<i2")
    window_s = settings.VOICE_WINDOW_MS / 1000
    started = time.perf_counter()
    for k in range(windows):
        classifier.classify(audio[k * window : (k + 1) * window], start=k * window_s, end=(k + 1) * window_s)
    return (time.perf_counter() - started) / windows


def candidates(quick: bool):
    """Yield stream counts to try; `send(kept_up)` steers: double until a failure, then bisect once."""
    if quick:
        for streams in QUICK_STREAMS:
            yield streams
        return
    passed, failed, streams = 0, None, START_STREAMS
    while streams <= MAX_STREAMS:
        kept_up = yield streams
        if not kept_up:
            failed = streams
            break
        passed, streams = streams, streams * 2
    if failed is not None and passed and failed - passed > 1:
        yield (passed + failed) // 2


def run(ctx: BenchContext) -> list[Result]:
    pcm = speech_pcm()
    seconds = QUICK_SECONDS if ctx.quick else SECONDS
    alone_s = classify_cost_alone(pcm, QUICK_BASELINE_WINDOWS if ctx.quick else BASELINE_WINDOWS)
    one_core_streams = (settings.VOICE_WINDOW_MS / 1000) / alone_s
    trials = []
    with BenchServer(env=ctx.server_env(), workdir=ctx.workdir, name="audio") as server:
        steps = candidates(ctx.quick)
        streams = next(steps, None)
        while streams is not None:
            outcomes = asyncio.run(trial(server, pcm, streams, seconds))
            summary = trial_summary(streams, outcomes)
            client_bound = summary["client_slip_s"] > CLIENT_SLIP_S
            kept_up = summary["kept_up"] == streams and not client_bound
            trials.append({**summary, "passed": kept_up, "client_fell_behind": client_bound})
            lag = summary["max_lag_s"]
            print(
                f"  {streams} streams: {summary['kept_up']}/{streams} kept up, max ack lag "
                f"{'-' if lag is None else f'{lag * 1000:.0f} ms'}"
                + (f", client slip {summary['client_slip_s'] * 1000:.0f} ms" if client_bound else "")
                + (f", errors {summary['errors']}" if summary["errors"] else ""),
                flush=True,
            )
            try:
                streams = steps.send(kept_up)
            except StopIteration:
                streams = None
        in_server_s = classify_cost_in_server(server)
    sustained = max((t["streams"] for t in trials if t["passed"]), default=0)
    if any(t["client_fell_behind"] for t in trials):
        ctx.note("audio: in some trial the load-generating clients could not keep real time themselves")
    if trials and all(t["passed"] for t in trials) and not ctx.quick:
        ctx.note(f"audio: every trial kept up; {MAX_STREAMS} streams is the bench's ceiling, not the server's")
    details = {"seconds_per_stream": seconds, "window_ms": settings.VOICE_WINDOW_MS, "trials": trials}
    return [
        Result(
            bench="audio",
            name=f"real-time audio streams sustained ({settings.VOICE_WINDOW_MS} ms windows)",
            value=float(sustained),
            baseline=one_core_streams,
            units="streams",
            lower_is_better=False,
            details=details,
        ),
        Result(
            bench="audio",
            name="classifier cost per window (in the server, under load)",
            value=in_server_s * 1000 if in_server_s is not None else None,
            baseline=alone_s * 1000,
            units="ms",
            details={"baseline": "SessionClassifier.classify alone, one thread"},
        ),
    ]
