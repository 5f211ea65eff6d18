"""`python -m bench.audio_load`: real-time audio streams against a Linnet server, from a process of their own.

It opens N sessions over HTTP and keeps two sockets on each:

1. an events socket, subscribed before any audio is sent, that reads every frame until the
   server closes it;
2. an audio socket that sends 100 ms binary PCM16 frames at real time, cut from a speech
   fixture at the stream's own offset and started at its own phase within a window, so
   window-completes are spread over the window instead of landing together.

Streams start together once every socket is open. Each sends `--seconds` of audio, then
`close`, and waits for the `closed` summary. Once all have, every session is ended over
HTTP, and each events socket reads up to `session.ended` and the server's close: the
subscriber read everything its session logged.

What it writes (`--out`, JSON) per stream: window-complete → `ack` latencies, where a
window completes when `send` of its last frame returned (acks come in window order; once
the server skips windows the pairing shifts, but such a trial fails on the drop anyway);
window-complete → the window's first event on the events socket; windows sent, acked and
counted by `closed`; error frames and close codes. For the whole process: how late each
frame left against the client's own schedule, and the CPU time it used while streaming,
to tell a server that fell behind from a client that did. bench.audio reads the file and
decides what passed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, WebSocketException

from bench.clients import bounded, events_subscribe, events_url, sessions_create, ws_connect
from bench.report import percentile
from bench.server import raise_open_file_limit

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "conversation.wav"
FRAME_MS = 100
# Sessions and sockets are opened this many at a time: the handshakes are not what is measured.
CONNECT_CONCURRENCY = 20
# Between the last socket opening and the first frame, so no stream starts while others still connect.
START_MARGIN_S = 0.5
# How long a stream waits for its `closed` summary, and its events socket for the end of the session.
CLOSE_TIMEOUT_S = 30.0


def fixture_pcm(path: Path) -> tuple[bytes, int]:
    """The fixture's PCM16 mono samples and its sample rate."""
    with wave.open(str(path)) as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise ValueError(f"{path} is not mono PCM16")
        return wav.readframes(wav.getnframes()), wav.getframerate()


def frame_at(pcm: bytes, *, offset: int, index: int, frame_bytes: int) -> bytes:
    """Frame `index` of a stream reading `pcm` in a loop from byte `offset`."""
    start = (offset + index * frame_bytes) % len(pcm)
    frame = pcm[start : start + frame_bytes]
    return frame + pcm[: frame_bytes - len(frame)]


def window_ends(frame_sent_at: list[float], frames_per_window: int) -> list[float]:
    """When each whole window was complete: the time its last frame left the client."""
    return frame_sent_at[frames_per_window - 1 :: frames_per_window] if frames_per_window else []


@dataclass
class StreamRun:
    """One session's pair of sockets and what was measured on them."""

    session_id: str
    token: str
    offset: int
    phase_fraction: float
    audio: ClientConnection | None = None
    events: ClientConnection | None = None
    audio_reader: asyncio.Task | None = None
    events_reader: asyncio.Task | None = None
    sample_rate: int = 0
    window_ms: int = 0
    frame_sent_at: list[float] = field(default_factory=list)
    slips_s: list[float] = field(default_factory=list)
    ack_at: list[float] = field(default_factory=list)
    # Window index -> arrival of the first event the window logged, on the events socket.
    window_event_at: dict[int, float] = field(default_factory=dict)
    events_replayed: int = 0
    events_received: int = 0
    session_ended_seen: bool = False
    closed_windows: int | None = None
    errors: list[str] = field(default_factory=list)
    audio_close_code: int | None = None
    events_close_code: int | None = None

    async def connect(self, ws_base: str) -> None:
        """Subscribe to the events first (nothing is missed), then attach the audio and read `ready`."""
        try:
            self.events, self.events_replayed = await events_subscribe(events_url(ws_base, self.session_id, self.token))
            self.events_reader = asyncio.create_task(self.read_events(self.events))
            self.audio = await ws_connect(f"{ws_base}/ws/sessions/{self.session_id}/audio?token={self.token}")
            ready = json.loads(await self.audio.recv())
        except (OSError, TimeoutError, RuntimeError, WebSocketException) as exc:
            self.errors.append(f"connect: {exc!r}")
            return
        if ready.get("type") != "ready":
            self.errors.append(f"audio: {ready}")
            return
        self.sample_rate, self.window_ms = ready["sample_rate"], ready["window_ms"]
        self.audio_reader = asyncio.create_task(self.read_audio(self.audio))

    async def read_audio(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                arrived = time.monotonic()
                message = json.loads(raw)
                if message["type"] == "ack":
                    self.ack_at.append(arrived)
                elif message["type"] == "closed":
                    self.closed_windows = message["windows"]
                elif message["type"] == "error":
                    self.errors.append(f"audio {message.get('code')}: {message.get('message')}")
        except ConnectionClosed:
            pass
        self.audio_close_code = ws.close_code

    async def read_events(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                arrived = time.monotonic()
                message = json.loads(raw)
                self.events_received += 1
                kind = message.get("type")
                if kind == "error":
                    self.errors.append(f"events {message.get('code')}: {message.get('message')}")
                elif kind == "session.ended":
                    self.session_ended_seen = True
                elif self.window_ms:
                    end_s = (message.get("data") or {}).get("end")
                    if isinstance(end_s, int | float):
                        # Window k ends (k + 1) windows into the stream, which starts at 0 s.
                        index = round(end_s * 1000 / self.window_ms) - 1
                        if index >= 0 and abs((index + 1) * self.window_ms - end_s * 1000) < 1:
                            self.window_event_at.setdefault(index, arrived)
        except ConnectionClosed:
            pass
        self.events_close_code = ws.close_code

    async def stream(self, pcm: bytes, *, start_at: float, seconds: float) -> None:
        """Send `seconds` of audio at real time, then `close`, and wait for the `closed` summary."""
        if self.audio_reader is None:
            return
        frame_bytes = self.sample_rate * FRAME_MS // 1000 * 2
        began = start_at + self.phase_fraction * self.window_ms / 1000
        try:
            for index in range(round(seconds * 1000 / FRAME_MS)):
                scheduled = began + index * FRAME_MS / 1000
                delay = scheduled - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                self.slips_s.append(max(0.0, time.monotonic() - scheduled))
                await self.audio.send(frame_at(pcm, offset=self.offset, index=index, frame_bytes=frame_bytes))
                self.frame_sent_at.append(time.monotonic())
            await self.audio.send(json.dumps({"type": "close"}))
        except ConnectionClosed:
            self.errors.append(f"audio socket closed after {len(self.frame_sent_at)} frames")
        try:
            await asyncio.wait_for(asyncio.shield(self.audio_reader), timeout=CLOSE_TIMEOUT_S)
        except TimeoutError:
            self.errors.append(f"no `closed` summary within {CLOSE_TIMEOUT_S:g} s")
        if self.closed_windows is None and not self.errors:
            self.errors.append(f"audio socket closed ({self.audio_close_code}) without a `closed` summary")

    async def end(self, http: httpx.AsyncClient) -> None:
        """End the session, then let the events socket read to `session.ended` and the server's close."""
        try:
            response = await http.delete(
                f"/api/sessions/{self.session_id}", headers={"Authorization": f"Bearer {self.token}"}
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            self.errors.append(f"ending the session: {exc!r}")
        if self.events_reader is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self.events_reader), timeout=CLOSE_TIMEOUT_S)
        except TimeoutError:
            self.errors.append(f"events socket still open {CLOSE_TIMEOUT_S:g} s after the session ended")
        if not self.session_ended_seen:
            self.errors.append(f"events socket closed ({self.events_close_code}) without `session.ended`")

    async def close(self) -> None:
        for ws in (self.audio, self.events):
            if ws is not None:
                await ws.close()
        for reader in (self.audio_reader, self.events_reader):
            if reader is not None:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    def measurements(self) -> dict:
        ends = window_ends(self.frame_sent_at, self.window_ms // FRAME_MS)
        return {
            "session_id": self.session_id,
            "offset_s": self.offset / 2 / self.sample_rate if self.sample_rate else None,
            "phase_s": self.phase_fraction * self.window_ms / 1000,
            "frames_sent": len(self.frame_sent_at),
            "windows_sent": len(ends),
            "acks": len(self.ack_at),
            "closed_windows": self.closed_windows,
            # Acks come in window order, one per window logged.
            "ack_latencies_s": [ack - end for ack, end in zip(self.ack_at, ends, strict=False)],
            "event_latencies_s": [
                self.window_event_at[index] - end for index, end in enumerate(ends) if index in self.window_event_at
            ],
            "events_replayed": self.events_replayed,
            "events_received": self.events_received,
            "session_ended_seen": self.session_ended_seen,
            "slip_max_s": max(self.slips_s, default=0.0),
            "errors": self.errors,
            "audio_close_code": self.audio_close_code,
            "events_close_code": self.events_close_code,
        }


async def load_run(*, url: str, streams: int, seconds: float, fixture: Path, seed: int) -> dict:
    """Run `streams` real-time streams against the server at `url` and return what was measured."""
    pcm, fixture_rate = fixture_pcm(fixture)
    ws_base = "ws" + url.removeprefix("http")
    rng = random.Random(seed)
    connect_began = time.monotonic()
    sessions = await sessions_create(url, streams, concurrency=CONNECT_CONCURRENCY)
    runs = [
        StreamRun(
            session_id=session_id,
            token=token,
            # Whole samples into the fixture, so each stream says something different at a time.
            offset=rng.randrange(len(pcm) // 2) * 2,
            phase_fraction=rng.random(),
        )
        for session_id, token in sessions
    ]
    try:
        await bounded([lambda run=run: run.connect(ws_base) for run in runs], concurrency=CONNECT_CONCURRENCY)
        connect_s = time.monotonic() - connect_began
        rates = {run.sample_rate for run in runs if run.sample_rate}
        if rates and rates != {fixture_rate}:
            raise SystemExit(f"the server takes {sorted(rates)} Hz audio; {fixture} is {fixture_rate} Hz")
        start_at = time.monotonic() + START_MARGIN_S
        cpu_began, wall_began, epoch_began = time.process_time(), time.monotonic(), time.time()
        await asyncio.gather(*(run.stream(pcm, start_at=start_at, seconds=seconds) for run in runs))
        cpu_s, wall_s, epoch_ended = time.process_time() - cpu_began, time.monotonic() - wall_began, time.time()
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            await bounded([lambda run=run: run.end(http) for run in runs], concurrency=CONNECT_CONCURRENCY)
    finally:
        await asyncio.gather(*(run.close() for run in runs), return_exceptions=True)
    slips = [slip for run in runs for slip in run.slips_s]
    return {
        "url": url,
        "streams": streams,
        "seconds": seconds,
        "frame_ms": FRAME_MS,
        "window_ms": max((run.window_ms for run in runs), default=0),
        "fixture": fixture.name,
        "seed": seed,
        "client": {
            "connect_s": connect_s,
            # Wall-clock bounds of the streaming phase, so the caller can line up its server readings.
            "streaming_began_at": epoch_began,
            "streaming_ended_at": epoch_ended,
            "cpu_s": cpu_s,
            "wall_s": wall_s,
            "frames": len(slips),
            "slip_p50_s": percentile(slips, 50) if slips else None,
            "slip_p99_s": percentile(slips, 99) if slips else None,
            "slip_max_s": max(slips, default=None),
        },
        "per_stream": [run.measurements() for run in runs],
    }


def load_summary(measurements: dict) -> dict:
    """The numbers a trial is judged by, over every window of every stream (latencies in ms)."""
    streams = measurements["per_stream"]
    acks = [lag for stream in streams for lag in stream["ack_latencies_s"]]
    events = [lag for stream in streams for lag in stream["event_latencies_s"]]
    client = measurements["client"]

    def ms(values: list[float], q: float) -> float | None:
        return percentile(values, q) * 1000 if values else None

    def dropped(stream: dict) -> int:
        # A missing `closed` summary is an error of its own, not a reason to count acked windows as lost.
        closed = stream["closed_windows"]
        counted = stream["acks"] if closed is None else min(stream["acks"], closed)
        return max(0, stream["windows_sent"] - counted)

    errors = [error for stream in streams for error in stream["errors"]]
    return {
        "streams": measurements["streams"],
        "windows_sent": sum(stream["windows_sent"] for stream in streams),
        "windows_dropped": sum(dropped(stream) for stream in streams),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
        "ack_p50_ms": ms(acks, 50),
        "ack_p95_ms": ms(acks, 95),
        "ack_p99_ms": ms(acks, 99),
        "ack_max_ms": max(acks) * 1000 if acks else None,
        "event_p50_ms": ms(events, 50),
        "event_p99_ms": ms(events, 99),
        "events_received": sum(stream["events_received"] for stream in streams),
        "client_slip_p99_ms": client["slip_p99_s"] * 1000 if client["slip_p99_s"] is not None else None,
        "client_slip_max_ms": client["slip_max_s"] * 1000 if client["slip_max_s"] is not None else None,
        "client_cpu_share": client["cpu_s"] / client["wall_s"] if client["wall_s"] else None,
        "connect_s": client["connect_s"],
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.audio_load", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the server's base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True, help="audio each stream sends")
    parser.add_argument("--out", type=Path, required=True, help="where to write the measurements (JSON)")
    parser.add_argument("--fixture", type=Path, default=FIXTURE, help="16-bit mono WAV at the server's sample rate")
    parser.add_argument("--seed", type=int, default=0, help="picks each stream's offset and phase")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    raise_open_file_limit()
    measurements = asyncio.run(
        load_run(url=args.url, streams=args.streams, seconds=args.seconds, fixture=args.fixture, seed=args.seed)
    )
    args.out.write_text(json.dumps(measurements) + "\n")
    summary = load_summary(measurements)
    p99 = summary["ack_p99_ms"]
    print(
        f"{summary['streams']} streams: {summary['windows_sent']} windows sent, {summary['windows_dropped']} dropped,"
        f" {summary['errors']} errors, ack p99 {'-' if p99 is None else f'{p99:.0f} ms'},"
        f" client slip p99 {summary['client_slip_p99_ms'] or 0:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
