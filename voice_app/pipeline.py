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

from sessions_app.errors import LinnetError, message_for
from sessions_app.models import Session
from sessions_app.sockets import CLOSE_TOO_FAST
from voice_app import errors, metrics, services
from voice_app.classifier import ClassifierCache, SessionClassifier
from voice_app.frames import FrameError
from voice_app.sidecar import (
    Allocation,
    SidecarError,
    ToneDirection,
    allocation_release_soon,
    allocation_request,
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
# A stream that reattaches on the same process carries on with its session's baseline.
# About 9 kB each, so at most ~9 MB; an active stream keeps its own even once evicted.
IN_PROCESS_BASELINES = 1024
# After a failed sidecar call, windows go in-process for this long before it is tried again.
SIDECAR_RETRY_S = 5.0

Item = tuple[str, dict]

_events_append = database_sync_to_async(services.voice_events_append)
_allocation_record = database_sync_to_async(services.audio_stream_allocation_record)


class _ClassifyPool:
    executor: ThreadPoolExecutor | None = None
    baselines: ClassifierCache | None = None


def classify_executor() -> ThreadPoolExecutor:
    """The process-wide pool the in-process classifier runs on (numpy releases the GIL)."""
    if _ClassifyPool.executor is None:
        _ClassifyPool.executor = ThreadPoolExecutor(
            max_workers=min(8, os.cpu_count() or 2), thread_name_prefix="linnet-classify"
        )
    return _ClassifyPool.executor


def session_baseline(options: StreamOptions) -> SessionClassifier:
    """This process's classifier of the session: a reconnecting stream keeps its baseline."""
    baselines = _ClassifyPool.baselines
    if baselines is None or (baselines.sample_rate, baselines.confidence_threshold) != (
        options.sample_rate,
        options.confidence_threshold,
    ):
        baselines = _ClassifyPool.baselines = ClassifierCache(
            sample_rate=options.sample_rate,
            confidence_threshold=options.confidence_threshold,
            max_sessions=IN_PROCESS_BASELINES,
        )
    classifier, _ = baselines.get(session_id=options.session_id, elcor=options.elcor)
    return classifier


def service_item(status: str, detail: str) -> Item:
    return ("service", {"status": status, "detail": detail})


@dataclass(frozen=True)
class StreamOptions:
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
        self.classifier: SessionClassifier | None = None

    async def classify(self, window: AudioWindow) -> list[Item]:
        if self.classifier is None:
            self.classifier = session_baseline(self.options)
        return await asyncio.get_running_loop().run_in_executor(classify_executor(), self._classify, window)

    def _classify(self, window: AudioWindow) -> list[Item]:
        started = time.perf_counter()
        pcm = np.frombuffer(window.pcm, dtype="<i2")
        events = self.classifier.classify(pcm, start=window.start, end=window.end)
        metrics.CLASSIFY_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        metrics.AUDIO_WINDOWS.labels(self.name).inc()
        return [(event.type, event.data) for event in events]


class SidecarClassifier:
    """Windows go to the sidecar while it answers; when it does not, the in-process
    classifier takes the window, and the sidecar is tried again after SIDECAR_RETRY_S.

    A failure streak is reported once (`service` warning) and its end once (`service` ready).
    """

    name = "sidecar"

    def __init__(self, *, url: str, options: StreamOptions, fallback: InProcessClassifier) -> None:
        self.url = url
        self.options = options
        self.fallback = fallback
        self.direction = ToneDirection()
        self.ready = False
        self.retry_at = 0.0

    async def probe(self) -> Item:
        """The stream's opening `service` event, from the sidecar's /health."""
        try:
            healthy = await sidecar_health(url=self.url)
        except SidecarError as exc:
            self.retry_at = time.monotonic() + SIDECAR_RETRY_S
            return service_item("warning", f"{exc}; classifying in-process")
        if healthy:
            self.ready = True
            return service_item("ready", f"cf-voice sidecar at {self.url}")
        return service_item("loading", f"cf-voice sidecar at {self.url} is loading; classifying in-process meanwhile")

    async def classify(self, window: AudioWindow) -> list[Item]:
        if not self.ready and time.monotonic() < self.retry_at:
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
            self.retry_at = time.monotonic() + SIDECAR_RETRY_S
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
            direction=self.direction,
        )
        return [*notices, *items]

    async def _fallback(self, window: AudioWindow) -> list[Item]:
        metrics.SIDECAR_FALLBACKS.inc()
        return await self.fallback.classify(window)


class VoicePipeline:
    """Audio in, ordered windows classified and logged, one callback per classified window."""

    def __init__(
        self,
        *,
        session: Session,
        stream_id: int,
        start_s: float,
        on_window: Callable[[], Awaitable[None]],
        on_ended: Callable[[LinnetError], Awaitable[None]],
        on_failure: Callable[[], Awaitable[None]],
        now: float,
    ) -> None:
        self.options = StreamOptions.for_session(session)
        self.stream_id = stream_id
        self.on_window = on_window
        self.on_ended = on_ended
        self.on_failure = on_failure
        self.windower = AudioWindower(
            sample_rate=self.options.sample_rate, window_ms=self.options.window_ms, start_s=start_s
        )
        self.limiter = AudioRateLimiter(
            sample_rate=self.options.sample_rate,
            factor=RATE_LIMIT_FACTOR,
            burst_s=RATE_LIMIT_BURST_S,
            start_s=RATE_LIMIT_START_S,
            max_frame_bytes=settings.AUDIO_MAX_FRAME_BYTES,
            now=now,
        )
        self.backlog: deque[AudioWindow] = deque()
        self.backlog_limit = max(2, math.ceil(BACKLOG_S * 1000 / self.options.window_ms))
        self.behind = False
        self.classify_failing = False
        self.notices: list[Item] = []
        self.arrived = asyncio.Event()
        self.finishing = False
        self.route: InProcessClassifier | SidecarClassifier = InProcessClassifier(self.options)
        self.task: asyncio.Task | None = None
        self.frames = 0
        self.bytes = 0
        self.windows = 0

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"linnet-voice-{self.options.session_id}")

    def feed(self, pcm: bytes, *, now: float) -> None:
        """Take one frame of audio; raises FrameError (4429) past the rate limit."""
        if not self.limiter.admit(len(pcm), now=now):
            raise FrameError(CLOSE_TOO_FAST, errors.AUDIO_TOO_FAST, message_for(errors.AUDIO_TOO_FAST))
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
        self.arrived.set()
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
            if not self.behind:
                self.behind = True
                self.notices.append(
                    service_item(
                        "warning",
                        f"classification is behind real time; skipping audio from {skipped.start:.1f} s "
                        "until it catches up",
                    )
                )
        self.backlog.append(window)
        self.arrived.set()

    async def _run(self) -> None:
        try:
            await self._log(await self._route_start())
            while True:
                if not self.backlog:
                    self.behind = False
                    if self.finishing:
                        return
                    self.arrived.clear()
                    await self.arrived.wait()
                    continue
                window = self.backlog.popleft()
                items = await self._classify(window)
                notices, self.notices = self.notices, []
                await self._log([*notices, *items])
                self.windows += 1
                await self.on_window()
        except asyncio.CancelledError:
            raise
        except LinnetError as exc:
            # Only the log raises it: the session ended (maybe without its layer message ever
            # reaching this socket) or another producer took the stream over.
            await self.on_ended(exc)
        except Exception:
            logger.exception("voice pipeline of session %s failed", self.options.session_id)
            await self.on_failure()

    async def _log(self, items: list[Item]) -> None:
        await _events_append(session_id=self.options.session_id, stream_id=self.stream_id, items=items)

    async def _classify(self, window: AudioWindow) -> list[Item]:
        try:
            items = await self.route.classify(window)
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

    async def _route_start(self) -> list[Item]:
        """Pick the classifier for this stream: CF_VOICE_URL, else a cf-orch allocation, else in-process."""
        if settings.CF_VOICE_URL:
            url = settings.CF_VOICE_URL
        elif settings.CF_ORCH_URL:
            try:
                url = (await self._allocate(orch_url=settings.CF_ORCH_URL)).url
            except SidecarError as exc:
                return [service_item("warning", f"{exc}; classifying in-process")]
        else:
            return [service_item("ready", "in-process classifier")]
        fallback = self.route
        self.route = SidecarClassifier(url=url, options=self.options, fallback=fallback)
        return [await self.route.probe()]

    async def _allocate(self, *, orch_url: str) -> Allocation:
        request = asyncio.ensure_future(allocation_request(orch_url=orch_url))
        try:
            allocation = await asyncio.shield(request)
        except asyncio.CancelledError:
            # The stream closed mid-request; whatever the allocator hands out must go back.
            request.add_done_callback(_release_orphan)
            raise
        allocation_id = allocation.allocation_id
        # Until the stream's row holds the allocation, only this task can release it; the
        # release goes through the deferred path, which outlives this task.
        record = asyncio.ensure_future(_allocation_record(stream_id=self.stream_id, allocation_id=allocation_id))
        try:
            recorded = await asyncio.shield(record)
        except asyncio.CancelledError:
            # The write goes on in its thread: whether the row took the allocation is known
            # only once it lands.
            record.add_done_callback(partial(_release_unrecorded, allocation_id))
            raise
        except Exception:
            allocation_release_soon(allocation_id=allocation_id)
            raise
        if not recorded:
            allocation_release_soon(allocation_id=allocation_id)
            raise SidecarError("the stream closed while cf-orch was allocating")
        return allocation


def _release_orphan(request: asyncio.Future) -> None:
    if not request.cancelled() and request.exception() is None:
        allocation_release_soon(allocation_id=request.result().allocation_id)


def _release_unrecorded(allocation_id: str, record: asyncio.Future) -> None:
    if record.cancelled() or record.exception() is not None or not record.result():
        allocation_release_soon(allocation_id=allocation_id)
