"""One audio stream's pipeline: rate limit, windows, classification off the loop, one log
append per window.

A single task per stream classifies its windows one at a time, in order. The CPU work runs
on a small shared thread pool and sidecar calls on the pooled HTTP client, so the event
loop only ever waits. Memory per stream is bounded: the partial window, plus at most
BACKLOG_S of complete windows waiting to be classified; past that the oldest waiting
window is skipped (annotations stay live rather than falling further behind).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np
from channels.db import database_sync_to_async
from django.conf import settings

from sessions_app.errors import LinnetError
from sessions_app.models import Session
from sessions_app.sockets import CLOSE_TOO_FAST
from voice_app import errors, metrics, services
from voice_app.classifier import SessionClassifier, process_session_classifier
from voice_app.frames import FrameError
from voice_app.sidecar import (
    SidecarError,
    SidecarShiftTracker,
    allocation_acquire,
    sidecar_classify,
    sidecar_events_map,
    sidecar_health,
)
from voice_app.windowing import AudioRateLimiter, AudioWindow, AudioWindower

logger = logging.getLogger(__name__)

BACKLOG_S = 10.0
# Audio may arrive at up to twice real time, with a burst on top: a client streaming in real
# time builds up to the backlog bound (a larger flush would only be skipped), so it can flush
# what a network stall of that long held back; a newly connected one starts with
# RATE_LIMIT_START_S (what it buffered while reconnecting). A client sending at 3× real time
# from the start is refused after RATE_LIMIT_START_S seconds, 3× that of audio.
RATE_LIMIT_FACTOR = 2.0
RATE_LIMIT_BURST_S = BACKLOG_S
RATE_LIMIT_START_S = 5.0
# After a failed sidecar call, windows go in-process for this long before it is tried again.
SIDECAR_RETRY_S = 5.0

# One event for the session log: (type, data).
LogItem = tuple[str, dict]

_events_append = database_sync_to_async(services.voice_events_append)
_allocation_record = database_sync_to_async(services.audio_stream_allocation_record)


class _ClassifyPool:
    executor: ThreadPoolExecutor | None = None


def classify_executor() -> ThreadPoolExecutor:
    """The process-wide pool the in-process classifier runs on (numpy releases the GIL)."""
    if _ClassifyPool.executor is None:
        _ClassifyPool.executor = ThreadPoolExecutor(
            max_workers=min(8, os.cpu_count() or 2), thread_name_prefix="linnet-classify"
        )
    return _ClassifyPool.executor


def service_item(status: str, detail: str) -> LogItem:
    return ("service", {"status": status, "detail": detail})


@dataclass(frozen=True)
class StreamOptions:
    """What a stream needs of its session and of the settings, read once when it attaches."""

    session_id: str
    sample_rate: int
    window_ms: int
    elcor: bool
    language: str
    num_speakers: int | None
    confidence_threshold: float

    @classmethod
    def for_session(cls, session: Session) -> StreamOptions:
        return cls(
            session_id=str(session.id),
            sample_rate=settings.VOICE_SAMPLE_RATE,
            window_ms=session.window_ms,
            elcor=session.elcor,
            language=session.language,
            num_speakers=session.num_speakers,
            confidence_threshold=settings.VOICE_CONFIDENCE_THRESHOLD,
        )


class InProcessClassifier:
    """The built-in classifier for one stream, on its session's running baseline."""

    name = "in_process"

    def __init__(self, options: StreamOptions) -> None:
        self.options = options
        self.session_classifier: SessionClassifier | None = None

    async def classify(self, window: AudioWindow) -> list[LogItem]:
        if self.session_classifier is None:
            self.session_classifier = process_session_classifier(
                session_id=self.options.session_id,
                elcor=self.options.elcor,
                sample_rate=self.options.sample_rate,
                confidence_threshold=self.options.confidence_threshold,
            )
        return await asyncio.get_running_loop().run_in_executor(classify_executor(), self._classify, window)

    def _classify(self, window: AudioWindow) -> list[LogItem]:
        started = time.perf_counter()
        pcm = np.frombuffer(window.pcm, dtype="<i2")
        events = self.session_classifier.classify(pcm, start=window.start, end=window.end)
        metrics.CLASSIFY_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        metrics.AUDIO_WINDOWS.labels(self.name).inc()
        return [(event.type, event.data) for event in events]


class SidecarClassifier:
    """Windows go to the sidecar while it answers; when it does not, the in-process
    classifier takes the window, and the sidecar is tried again after SIDECAR_RETRY_S.

    A failure streak is reported once (`service` warning) and its end once (`service` ready).
    """

    name = "sidecar"

    def __init__(
        self,
        *,
        url: str,
        options: StreamOptions,
        fallback: InProcessClassifier,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.options = options
        self.fallback = fallback
        self.clock = clock
        self.shift_tracker = SidecarShiftTracker()
        self.ready = False
        self.retry_at = 0.0

    async def probe(self) -> LogItem:
        """The stream's opening `service` event, from the sidecar's /health."""
        try:
            healthy = await sidecar_health(url=self.url)
        except SidecarError as exc:
            self.retry_at = self.clock() + SIDECAR_RETRY_S
            return service_item("warning", f"{exc}; classifying in-process")
        if healthy:
            self.ready = True
            return service_item("ready", f"cf-voice sidecar at {self.url}")
        return service_item("loading", f"cf-voice sidecar at {self.url} is loading; classifying in-process meanwhile")

    async def classify(self, window: AudioWindow) -> list[LogItem]:
        if not self.ready and self.clock() < self.retry_at:
            return await self._fallback(window)
        started = time.perf_counter()
        try:
            events = await sidecar_classify(
                url=self.url,
                pcm=window.pcm,
                timestamp=window.start,
                elcor=self.options.elcor,
                session_id=self.options.session_id,
                language=self.options.language,
                num_speakers=self.options.num_speakers,
            )
        except SidecarError as exc:
            logger.warning("session %s: %s", self.options.session_id, exc)
            notices = [service_item("warning", f"{exc}; classifying in-process")] if self.ready else []
            self.ready = False
            self.retry_at = self.clock() + SIDECAR_RETRY_S
            return [*notices, *await self._fallback(window)]
        metrics.CLASSIFY_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        metrics.AUDIO_WINDOWS.labels(self.name).inc()
        notices = [] if self.ready else [service_item("ready", f"cf-voice sidecar at {self.url} is answering")]
        self.ready = True
        items = sidecar_events_map(
            events=events,
            start=window.start,
            end=window.end,
            elcor=self.options.elcor,
            threshold=self.options.confidence_threshold,
            shift_tracker=self.shift_tracker,
        )
        return [*notices, *items]

    async def _fallback(self, window: AudioWindow) -> list[LogItem]:
        metrics.SIDECAR_FALLBACKS.inc()
        return await self.fallback.classify(window)


class VoicePipeline:
    """Audio in, ordered windows classified and logged, one callback per logged window.

    `clock` is the monotonic time the rate limit and the sidecar's retry delay read.
    """

    def __init__(
        self,
        *,
        session: Session,
        stream_id: int,
        start_s: float,
        on_window_logged: Callable[[], Awaitable[None]],
        on_log_refused: Callable[[LinnetError], Awaitable[None]],
        on_failure: Callable[[], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = StreamOptions.for_session(session)
        self.stream_id = stream_id
        self.on_window_logged = on_window_logged
        self.on_log_refused = on_log_refused
        self.on_failure = on_failure
        self.clock = clock
        self.windower = AudioWindower(
            sample_rate=self.options.sample_rate, window_ms=self.options.window_ms, start_s=start_s
        )
        self.limiter = AudioRateLimiter(
            sample_rate=self.options.sample_rate,
            factor=RATE_LIMIT_FACTOR,
            burst_s=RATE_LIMIT_BURST_S,
            start_s=RATE_LIMIT_START_S,
            max_frame_bytes=settings.AUDIO_MAX_FRAME_BYTES,
            clock=clock,
        )
        self.backlog: deque[AudioWindow] = deque()
        self.backlog_limit = max(2, math.ceil(BACKLOG_S * 1000 / self.options.window_ms))
        self.falling_behind = False
        self.classify_failing = False
        self.pending_notices: list[LogItem] = []
        self.window_arrived = asyncio.Event()
        self.finishing = False
        self.classifier: InProcessClassifier | SidecarClassifier = InProcessClassifier(self.options)
        self.task: asyncio.Task | None = None
        self.frames = 0
        self.bytes = 0
        self.windows = 0

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"linnet-voice-{self.options.session_id}")

    def feed(self, pcm: bytes) -> None:
        """Take one frame of audio; raises FrameError (4429) past the rate limit."""
        if not self.limiter.admit(len(pcm)):
            raise FrameError(CLOSE_TOO_FAST, errors.AUDIO_TOO_FAST)
        self.frames += 1
        self.bytes += len(pcm)
        for window in self.windower.feed(pcm):
            self._enqueue(window)

    def finalize(self) -> None:
        """Classify the partial window now instead of waiting for it to fill."""
        window = self.windower.flush()
        if window is not None:
            self._enqueue(window)

    async def finish(self) -> None:
        """Classify everything received, then return."""
        self.finalize()
        self.finishing = True
        self.window_arrived.set()
        if self.task is not None and not self.task.done():
            await self.task

    async def stop(self) -> None:
        """Drop what is not classified yet (the session ended or the client went away)."""
        if self.task is None or self.task.done() or self.task is asyncio.current_task():
            return
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():
                raise

    def _enqueue(self, window: AudioWindow) -> None:
        if len(self.backlog) >= self.backlog_limit:
            skipped = self.backlog.popleft()
            metrics.AUDIO_WINDOWS_SKIPPED.inc()
            if not self.falling_behind:
                self.falling_behind = True
                self.pending_notices.append(
                    service_item(
                        "warning",
                        f"classification is behind real time; skipping audio from {skipped.start:.1f} s "
                        "until it catches up",
                    )
                )
        self.backlog.append(window)
        self.window_arrived.set()

    async def _run(self) -> None:
        try:
            await self._append(await self._classifier_choose())
            while True:
                if not self.backlog:
                    self.falling_behind = False
                    if self.finishing:
                        return
                    self.window_arrived.clear()
                    await self.window_arrived.wait()
                    continue
                window = self.backlog.popleft()
                items = await self._classify(window)
                notices, self.pending_notices = self.pending_notices, []
                await self._append([*notices, *items])
                self.windows += 1
                await self.on_window_logged()
        except asyncio.CancelledError:
            raise
        except LinnetError as exc:
            # Only the log raises it: the session ended (maybe without its layer message ever
            # reaching this socket) or another producer took the stream over.
            await self.on_log_refused(exc)
        except Exception:
            logger.exception("voice pipeline of session %s failed", self.options.session_id)
            await self.on_failure()

    async def _append(self, items: list[LogItem]) -> None:
        await _events_append(session_id=self.options.session_id, stream_id=self.stream_id, items=items)

    async def _classify(self, window: AudioWindow) -> list[LogItem]:
        try:
            items = await self.classifier.classify(window)
        except Exception:
            # One bad window must not end the stream; a classifier that keeps failing is
            # reported once per streak.
            logger.exception(
                "classifying %.1f-%.1f s of session %s failed", window.start, window.end, self.options.session_id
            )
            notices = [] if self.classify_failing else [service_item("error", "a window could not be classified")]
            self.classify_failing = True
            return notices
        self.classify_failing = False
        return items

    async def _classifier_choose(self) -> list[LogItem]:
        """Pick the classifier for this stream: CF_VOICE_URL, else a cf-orch allocation, else in-process."""
        if settings.CF_VOICE_URL:
            url = settings.CF_VOICE_URL
        elif settings.CF_ORCH_URL:
            record = partial(_allocation_record, stream_id=self.stream_id)
            try:
                url = (await allocation_acquire(orch_url=settings.CF_ORCH_URL, record=record)).url
            except SidecarError as exc:
                return [service_item("warning", f"{exc}; classifying in-process")]
        else:
            return [service_item("ready", "in-process classifier")]
        fallback = self.classifier
        self.classifier = SidecarClassifier(url=url, options=self.options, fallback=fallback, clock=self.clock)
        return [await self.classifier.probe()]
