"""Voice fixtures: WAV audio, audio-socket clients through the real ASGI app, a paced sender,
small real HTTP servers standing in for cf-orch and cf-voice, and the voice_sidecar process."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from sessions_app import selectors
from sessions_app.models import Session
from sessions_app.services.events import events_append_one
from tests.processes import LinnetProcess, free_port
from voice_app.annotation import tone_annotation
from voice_app.classifier import IN_PROCESS_SPEAKER_ID
from voice_app.consumers import AudioConsumer
from voice_app.models import AudioStream
from voice_app.pipeline import RATE_LIMIT_BURST_S, RATE_LIMIT_FACTOR, RATE_LIMIT_START_S
from voice_app.sidecar import sidecar_client_close
from voice_app.sidecar.allocation import RELEASE_THREAD_NAME, RELEASES_IN_FLIGHT

ORIGIN = (b"origin", b"http://localhost")
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SAMPLE_RATE = 16000
BYTES_PER_SECOND = SAMPLE_RATE * 2
FRAME_BYTES = 3200  # 100 ms, what the browser sends

TONE_FIELDS = {
    "label",
    "confidence",
    "speaker_id",
    "shift_magnitude",
    "shift_direction",
    "affect",
    "subtext",
    "prosody_flags",
    "start",
    "end",
}


def tone_data(label: str = "tense", *, confidence: float = 0.71, start: float = 2.0, end: float = 3.0) -> dict:
    """A tone event's data shaped as the in-process classifier logs it (exactly TONE_FIELDS)."""
    data = {
        "label": label,
        "confidence": confidence,
        "speaker_id": IN_PROCESS_SPEAKER_ID,
        "shift_magnitude": 0.42,
        "shift_direction": "escalating",
        **tone_annotation(label=label, confidence=confidence, shift_direction="escalating", elcor=False),
        "prosody_flags": ["loud", "high_pitch"],
        "start": start,
        "end": end,
    }
    assert set(data) == TONE_FIELDS
    return data


def assert_tone_shape(data: dict, *, elcor: bool | None = None) -> None:
    """A tone event's data as the contract has it: every field, each within its range."""
    assert set(data) == TONE_FIELDS
    assert isinstance(data["label"], str) and data["label"]
    assert 0.0 <= data["confidence"] <= 1.0
    assert 0.0 <= data["shift_magnitude"] <= 1.0
    assert data["shift_direction"] in {"stable", "escalating", "de-escalating"}
    assert isinstance(data["affect"], str) and data["affect"]
    assert isinstance(data["subtext"], str) and data["subtext"]
    assert isinstance(data["prosody_flags"], list)
    assert data["end"] > data["start"] >= 0.0
    if elcor:
        assert data["subtext"].startswith("[") and data["subtext"].endswith("]")
    elif elcor is not None:
        assert not data["subtext"].startswith("[")


def log_tone(session_id, **tone) -> int:
    """Append a `tone` event through the one event-log service; returns its seq."""
    return events_append_one(session_id=session_id, type="tone", data=tone_data(**tone)).seq


def wav_pcm(name: str, *, seconds: float | None = None) -> bytes:
    """A fixture's PCM16 bytes (16 kHz mono), optionally only its first `seconds`."""
    with wave.open(str(FIXTURES / f"{name}.wav")) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (SAMPLE_RATE, 1, 2)
        pcm = wav.readframes(wav.getnframes())
    return pcm if seconds is None else pcm[: int(seconds * SAMPLE_RATE) * 2]


def wav_samples(name: str, *, seconds: float | None = None) -> np.ndarray:
    """A fixture's samples as the classifier takes them (int16)."""
    return np.frombuffer(wav_pcm(name, seconds=seconds), dtype="<i2")


def frames_of(pcm: bytes, size: int = FRAME_BYTES) -> list[bytes]:
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


async def logged_events(session_id, *types: str) -> list[dict]:
    return await database_sync_to_async(selectors.events_after)(
        session_id=session_id, types=list(types) or None, limit=10_000
    )


async def stream_row(session_id) -> AudioStream:
    """The session's one audio stream row (tests that open more than one stream look further)."""
    return await database_sync_to_async(AudioStream.objects.get)(session_id=session_id)


class FakeClock:
    """Monotonic seconds that move only when a test (or a Pacer) moves them."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def audio_clock(monkeypatch) -> FakeClock:
    """The clock of every audio socket in the test: rate limit, idle timeout, sidecar retry delay."""
    clock = FakeClock()
    monkeypatch.setattr(AudioConsumer, "clock", clock)
    return clock


class Pacer:
    """A client-side token bucket with margin under the server's rate limit, on the test's clock:
    when it runs dry, it moves the clock on by the wait instead of sleeping."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.capacity = 0.75 * RATE_LIMIT_BURST_S * BYTES_PER_SECOND
        self.rate = 0.8 * RATE_LIMIT_FACTOR * BYTES_PER_SECOND
        self.tokens = 0.75 * RATE_LIMIT_START_S * BYTES_PER_SECOND
        self.updated_at = clock()

    def take(self, size: int) -> None:
        self.tokens = min(self.capacity, self.tokens + (self.clock() - self.updated_at) * self.rate)
        if self.tokens < size:
            self.clock.advance((size - self.tokens) / self.rate)
            self.tokens = float(size)
        self.updated_at = self.clock()
        self.tokens -= size


class AudioClient:
    """An audio-socket client through the real ASGI application."""

    def __init__(self, communicator: WebsocketCommunicator, *, token: str | None, clock: FakeClock) -> None:
        self.communicator = communicator
        self.token = token
        self.connected = False
        self.received: list[dict] = []
        self.pacer = Pacer(clock)
        self.sent = 0

    async def connect(self) -> dict:
        """Connect and return the server's first frame (`ready`, or the `error` before a close)."""
        self.connected, _ = await self.communicator.connect()
        assert self.connected
        return await self.receive()

    async def receive(self, timeout: float = 5) -> dict:
        message = json.loads(await self.communicator.receive_from(timeout=timeout))
        self.received.append(message)
        return message

    async def receive_type(self, type_: str, timeout: float = 10) -> dict:
        """Read frames until one of `type_` arrives (acks and the like are kept in `received`)."""
        while True:
            message = await self.receive(timeout)
            if message["type"] == type_:
                return message

    async def receive_close(self, timeout: float = 10) -> int:
        """Read until the server closes; returns the close code the client saw."""
        while True:
            output = await self.communicator.receive_output(timeout)
            if output["type"] == "websocket.close":
                self.connected = False
                return output.get("code", 1000)
            if "text" in output:
                self.received.append(json.loads(output["text"]))

    async def receive_error_close(self, timeout: float = 10) -> tuple[str, int]:
        """Read until the server closes; returns the `error` frame's code and the close code,
        once it is checked that the frame came with a message and named that close code."""
        close_code = await self.receive_close(timeout)
        [error] = self.of_type("error")
        assert error["close_code"] == close_code and error["message"]
        return error["code"], close_code

    async def connect_refused(self) -> tuple[str, int]:
        """Connect expecting a refusal; returns the error code and the close code."""
        assert (await self.connect())["type"] == "error"
        return await self.receive_error_close()

    async def send_bytes(self, data: bytes) -> None:
        await self.communicator.send_to(bytes_data=data)

    async def send_json(self, payload: dict | str) -> None:
        await self.communicator.send_to(text_data=payload if isinstance(payload, str) else json.dumps(payload))

    async def send_audio_json(self, pcm: bytes, timestamp: float = 0.0) -> None:
        await self.send_json({"type": "audio", "audio_chunk": base64.b64encode(pcm).decode(), "timestamp": timestamp})

    async def stream(self, pcm: bytes, *, as_json: bool = False, frame_bytes: int = FRAME_BYTES) -> int:
        """Send `pcm` in frames as fast as the rate limit allows; returns the frame count.

        The client keeps its own token bucket, smaller and slower than the server's, so long
        fixtures stream legally, across several calls too, without waiting in real time.
        """
        frames = frames_of(pcm, frame_bytes)
        for frame in frames:
            self.pacer.take(len(frame))
            if as_json:
                await self.send_audio_json(frame, timestamp=self.sent / BYTES_PER_SECOND)
            else:
                await self.send_bytes(frame)
            self.sent += len(frame)
        return len(frames)

    async def close_stream(self) -> tuple[dict, int]:
        """Send `close`; returns the `closed` summary and the close code."""
        await self.send_json({"type": "close"})
        summary = await self.receive_type("closed", timeout=30)
        return summary, await self.receive_close()

    def of_type(self, type_: str) -> list[dict]:
        return [message for message in self.received if message["type"] == type_]


@pytest_asyncio.fixture
async def audio_client(audio_clock):
    """Factory: `audio_client(session_id, token=...)` → an AudioClient, disconnected at teardown."""
    from linnet_site.asgi import application

    opened: list[AudioClient] = []

    def make(session_id, *, token: str | None = None, headers=None) -> AudioClient:
        path = f"/ws/sessions/{session_id}/audio" + (f"?token={token}" if token is not None else "")
        communicator = WebsocketCommunicator(application, path, headers=[ORIGIN] if headers is None else headers)
        client = AudioClient(communicator, token=token, clock=audio_clock)
        opened.append(client)
        return client

    yield make
    for client in opened:
        await client.communicator.disconnect()


@pytest.fixture
def audio_stream(amake_session, audio_client):
    """Factory: `await audio_stream(**session_options)` → (session, client): a new session and an
    audio socket past its `ready` (the first of `client.received`)."""

    async def attach(**options) -> tuple[Session, AudioClient]:
        session, token = await amake_session(**options)
        client = audio_client(session.id, token=token)
        assert (await client.connect())["type"] == "ready"
        return session, client

    return attach


def release_threads_joined(timeout: float = 5) -> None:
    """Wait for the allocation releases sent from threads (by a process with no client loop)."""
    for thread in threading.enumerate():
        if thread.name == RELEASE_THREAD_NAME:
            thread.join(timeout)


async def allocation_releases_settled(timeout: float = 5) -> None:
    """Wait for every allocation release already scheduled, on the loop or on a thread."""
    pending = [asyncio.wrap_future(f) if not isinstance(f, asyncio.Future) else f for f in RELEASES_IN_FLIGHT]
    if pending:
        await asyncio.wait(pending, timeout=timeout)
    await asyncio.to_thread(release_threads_joined, timeout)


@pytest_asyncio.fixture(autouse=True)
async def _sidecar_client_closed():
    # The pooled client belongs to this test's loop; close it here rather than leak it.
    yield
    await allocation_releases_settled()
    await sidecar_client_close()


@dataclass
class Recorded:
    method: str
    path: str
    body: dict | None


@dataclass
class FakeHTTPService:
    """A real HTTP server in a thread answering from `routes`; every request is recorded.

    `routes[(method, path)]` is a callable taking the JSON body and returning (status, body).
    """

    routes: dict[tuple[str, str], Callable[[dict | None], tuple[int, dict | None]]]
    requests: list[Recorded] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHTTPService:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                service.requests.append(Recorded(self.command, self.path, body))
                route = service.routes.get((self.command, self.path))
                status, payload = route(body) if route else (404, {"error": "no route"})
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, format, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def seen(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if (r.method, r.path) == (method, path)]

    async def wait_for(self, method: str, path: str, timeout: float = 5) -> list[Recorded]:
        deadline = time.monotonic() + timeout
        while not self.seen(method, path) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.seen(method, path)


@pytest.fixture
def fake_http():
    """Factory: `fake_http(routes)` → a started FakeHTTPService, stopped at teardown."""
    started: list[FakeHTTPService] = []

    def make(routes) -> FakeHTTPService:
        service = FakeHTTPService(routes).start()
        started.append(service)
        return service

    yield make
    for service in started:
        service.stop()


def dead_url() -> str:
    """A URL nothing listens on (the port was free a moment ago)."""
    return f"http://127.0.0.1:{free_port()}"


class SidecarProcess:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = LinnetProcess("voice_sidecar", "--port", str(self.port))

    def start(self) -> SidecarProcess:
        self.process.start()
        self.process.wait_for(self.healthy, what="voice_sidecar /health")
        return self

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    def health(self) -> dict:
        return httpx.get(f"{self.url}/health", timeout=2).json()

    def stop(self) -> int:
        return self.process.stop()


@pytest.fixture
def voice_sidecar():
    """`manage.py voice_sidecar` as a real subprocess on a free port, healthy before the test."""
    process = SidecarProcess().start()
    yield process
    if process.process.proc.poll() is None or not process.process.log.closed:
        process.stop()
