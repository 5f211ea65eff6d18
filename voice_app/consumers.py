"""The audio ingest WebSocket: parse frames, authorise, and hand audio to the stream's pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from channels.db import database_sync_to_async
from django.conf import settings

from sessions_app.errors import LinnetError
from sessions_app.services import presence
from sessions_app.sockets import (
    CLOSE_IDLE,
    CLOSE_INTERNAL_ERROR,
    CLOSE_NORMAL,
    CLOSE_NOT_ACTIVE,
    SessionSocketConsumer,
)
from voice_app import errors, selectors, services
from voice_app.frames import AudioFrame, FrameError, frame_from_bytes, frame_from_text
from voice_app.pipeline import VoicePipeline

logger = logging.getLogger(__name__)

_stream_open = database_sync_to_async(services.audio_stream_open)
_stream_close = database_sync_to_async(services.audio_stream_close)
_audio_end_s = database_sync_to_async(selectors.session_audio_end_s)


class AudioConsumer(SessionSocketConsumer):
    endpoint = "audio"
    # Monotonic seconds, for the rate limit, the idle timeout and the sidecar's retry delay;
    # tests put a clock of their own here.
    clock: Callable[[], float] = staticmethod(time.monotonic)

    async def connect(self) -> None:
        self.pipeline: VoicePipeline | None = None
        self.stream_id: int | None = None
        self.joined_group = False
        self.finishing = False
        self.ending = False
        self.idle_watch: asyncio.Task | None = None
        self.teardown_lock = asyncio.Lock()
        self.torn_down = False
        async with self.faults_end_stream():
            await self.attach()

    async def attach(self) -> None:
        """Authorise, claim the session's stream and start its pipeline where its audio left off."""
        session = await self.open_session()
        if session is None:
            return
        self.session = session
        # Join before claiming, so an end that lands right after the claim still reaches us.
        await self.channel_layer.group_add(session.group_name, self.channel_name)
        self.joined_group = True
        try:
            stream = await _stream_open(session=session)
        except LinnetError as exc:
            await self.end_stream(CLOSE_NOT_ACTIVE, error=exc.code, message=exc.message)
            return
        self.stream_id = stream.pk
        # The claim is only as alive as this process's lease, so keep the lease renewed.
        await presence.lease_keepalive_start()
        start_s = await _audio_end_s(session_id=session.pk)
        self.last_activity = self.clock()
        self.pipeline = VoicePipeline(
            session=session,
            stream_id=stream.pk,
            start_s=start_s,
            on_window_logged=self.send_ack,
            on_log_refused=self.log_refused,
            on_failure=self.internal_error,
            clock=self.clock,
        )
        await self.send_json(
            {
                "type": "ready",
                "session_id": str(session.id),
                "sample_rate": self.pipeline.options.sample_rate,
                "window_ms": self.pipeline.options.window_ms,
            }
        )
        self.pipeline.start()
        self.idle_watch = asyncio.get_running_loop().create_task(self.watch_idle())

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        async with self.faults_end_stream():
            await self.take_frame(text_data, bytes_data)

    async def take_frame(self, text_data: str | None, bytes_data: bytes | None) -> None:
        if self.ending or self.pipeline is None:
            return
        max_bytes = settings.AUDIO_MAX_FRAME_BYTES
        try:
            if bytes_data is not None:
                frame = frame_from_bytes(bytes_data, max_bytes=max_bytes)
            else:
                frame = frame_from_text(text_data or "", max_bytes=max_bytes)
            if isinstance(frame, AudioFrame):
                self.pipeline.feed(frame.pcm)
        except FrameError as exc:
            await self.end_stream(exc.close_code, error=exc.code, message=exc.message)
            return
        self.last_activity = self.clock()
        if isinstance(frame, AudioFrame):
            return
        if frame.type == "finalize":
            self.pipeline.finalize()
        elif frame.type == "close":
            await self.finish()

    async def finish(self) -> None:
        """The client's `close`: classify what is buffered, send the summary, close 1000."""
        self.finishing = True
        await self.pipeline.finish()
        await self.end_stream(CLOSE_NORMAL)

    async def session_events(self, message: dict) -> None:
        async with self.faults_end_stream():
            if self.ending or self.pipeline is None:
                return
            if any(envelope.get("type") == "session.ended" for envelope in message.get("events", [])):
                await self.end_stream(CLOSE_NORMAL)

    @contextlib.asynccontextmanager
    async def faults_end_stream(self) -> AsyncIterator[None]:
        """An unexpected exception in a handler ends the stream with 1011 instead of the consumer.

        Escaping the handler, it would kill the consumer without `disconnect`: no error frame,
        no teardown, and the stream row left open would refuse every reconnect with 4409.
        """
        try:
            yield
        except Exception:
            logger.exception("audio socket %s failed", self.scope.get("path"))
            await self.internal_error()

    async def end_stream(self, close_code: int, *, error: str | None = None, message: str | None = None) -> None:
        """Free the session first, then tell the client: once it sees the close, it may reattach.

        A normal close carries the `closed` summary; a close with an `error` code carries the
        `error` frame (`message`, or the code's registered one).
        """
        if self.ending:
            return
        self.ending = True
        try:
            await self.teardown(close_code)
        except Exception:
            # The client must still hear that its stream is over.
            logger.exception("tearing down audio socket %s failed", self.scope.get("path"))
            close_code, error, message = CLOSE_INTERNAL_ERROR, errors.INTERNAL_ERROR, None
        if error is not None:
            await self.close_with_error(close_code, error, message)
            return
        await self.send_json(self.summary())
        await self.close_normally(close_code)

    def summary(self) -> dict:
        return {
            "type": "closed",
            "frames": self.pipeline.frames,
            "bytes": self.pipeline.bytes,
            "windows": self.pipeline.windows,
        }

    async def send_ack(self) -> None:
        if not self.ending:
            await self.send_json({"type": "ack", "frames": self.pipeline.frames, "bytes": self.pipeline.bytes})

    async def log_refused(self, reason: LinnetError) -> None:
        """The log refused a window: the session ended, or another producer holds the stream now."""
        if reason.code == errors.SESSION_NOT_ACTIVE:
            await self.end_stream(CLOSE_NORMAL)
        else:
            await self.end_stream(CLOSE_NOT_ACTIVE, error=reason.code, message=reason.message)

    async def internal_error(self) -> None:
        await self.end_stream(CLOSE_INTERNAL_ERROR, error=errors.INTERNAL_ERROR)

    async def watch_idle(self) -> None:
        timeout = settings.AUDIO_IDLE_TIMEOUT_S
        while not (self.ending or self.finishing):
            remaining = self.last_activity + timeout - self.clock()
            if remaining <= 0:
                await self.end_stream(
                    CLOSE_IDLE, error=errors.AUDIO_IDLE, message=f"No audio or keepalive for {timeout:g} s."
                )
                return
            await asyncio.sleep(remaining)

    async def teardown(self, close_code: int | None) -> None:
        """Stop the pipeline, leave the group and free the session for the next producer (once)."""
        async with self.teardown_lock:
            if self.torn_down:
                return
            self.torn_down = True
            try:
                if self.idle_watch is not None and self.idle_watch is not asyncio.current_task():
                    self.idle_watch.cancel()
                if self.pipeline is not None:
                    await self.pipeline.stop()
                if self.joined_group:
                    await self.channel_layer.group_discard(self.session.group_name, self.channel_name)
            finally:
                # Whatever failed above, the next producer must not be refused for good.
                if self.stream_id is not None:
                    await _stream_close(
                        stream_id=self.stream_id,
                        frames=self.pipeline.frames if self.pipeline else 0,
                        bytes_received=self.pipeline.bytes if self.pipeline else 0,
                        windows=self.pipeline.windows if self.pipeline else 0,
                        close_code=close_code,
                    )

    async def disconnect(self, code: int) -> None:
        await self.teardown(code)
