"""Talking to a cf-voice sidecar and to the cf-orch allocator, through one pooled HTTP client.

The client is created lazily on the running loop (daphne has no lifespan hook to create it
at start-up), recreated when the loop changes, and closed when the reactor shuts down.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import logging
import sys
import threading
from dataclasses import dataclass

import httpx
from django.conf import settings

from voice_app.annotation import tone_annotation

logger = logging.getLogger(__name__)

# A window is a second or so of audio: a sidecar slower than this is worse than the
# in-process classifier, which takes over for the window.
CLASSIFY_TIMEOUT = httpx.Timeout(4.0, connect=1.0)
HEALTH_TIMEOUT = httpx.Timeout(2.0, connect=1.0)
ORCH_TIMEOUT = httpx.Timeout(5.0, connect=2.0)
POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
ALLOCATION_CALLER = "linnet"
# A safety net only: Linnet releases the allocation when the stream or the session ends,
# so this bounds what a killed server process leaves allocated.
ALLOCATION_TTL_S = 3600

SHIFT_DIRECTIONS = frozenset({"stable", "escalating", "de-escalating"})
# How much vocal intensity (loudness, pitch, rate) each tone label of the vocabulary implies;
# a sidecar gives only an unsigned shift_magnitude, so its direction comes from the move
# between consecutive labels. Labels outside this table carry no direction.
TONE_INTENSITY = {"subdued": 0, "hesitant": 1, "calm": 2, "questioning": 2, "animated": 3, "tense": 4}
# Below this magnitude a change of label is noise, not a shift.
SHIFT_STABLE_BELOW = 0.15
MAPPED_TYPES = frozenset({"tone", "speaker", "transcript", "queue", "environ"})


class SidecarError(Exception):
    """A sidecar or allocator call that failed; the message says how, for the `service` event."""


@dataclass(frozen=True)
class Allocation:
    url: str
    allocation_id: str


class _ClientPool:
    def __init__(self) -> None:
        self.client: httpx.AsyncClient | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.shutdown_hooked = False
        # Releases scheduled from other threads: kept referenced until they finish.
        self.pending: set[concurrent.futures.Future | asyncio.Task] = set()


POOL = _ClientPool()


def sidecar_client() -> httpx.AsyncClient:
    """This process's pooled client, bound to the running loop."""
    loop = asyncio.get_running_loop()
    if POOL.client is None or POOL.loop is not loop or POOL.client.is_closed:
        # A client from another loop (a previous test's) cannot be closed from this one;
        # its connections die with that loop.
        POOL.client = httpx.AsyncClient(timeout=CLASSIFY_TIMEOUT, limits=POOL_LIMITS)
        POOL.loop = loop
        _close_on_reactor_shutdown()
    return POOL.client


async def sidecar_client_close() -> None:
    """Close the pooled client if it belongs to the running loop (shutdown, test teardown)."""
    client = POOL.client
    if client is None or POOL.loop is not asyncio.get_running_loop():
        return
    POOL.client = None
    POOL.loop = None
    await client.aclose()


def _close_on_reactor_shutdown() -> None:
    # Under daphne the Twisted reactor drives this loop and its shutdown is the only hook
    # there is; importing the reactor module here would install one, so only look it up.
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is None or POOL.shutdown_hooked or not getattr(reactor, "running", False):
        return
    from twisted.internet import defer

    POOL.shutdown_hooked = True
    reactor.addSystemEventTrigger(
        "before", "shutdown", lambda: defer.Deferred.fromFuture(asyncio.ensure_future(sidecar_client_close()))
    )


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, httpx.HTTPError):
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return str(exc)


async def sidecar_health(*, url: str) -> bool:
    """True when the sidecar's /health answers 200, False while it answers anything else.

    Raises SidecarError when it cannot be reached at all.
    """
    try:
        response = await sidecar_client().get(f"{url}/health", timeout=HEALTH_TIMEOUT)
    except httpx.HTTPError as exc:
        raise SidecarError(f"sidecar {url} unreachable ({_describe(exc)})") from exc
    return response.status_code == 200


async def sidecar_classify(
    *,
    url: str,
    pcm: bytes,
    timestamp: float,
    elcor: bool,
    session_id: str,
    language: str,
    num_speakers: int | None,
) -> list:
    """POST one window to {url}/classify and return its raw `events` list."""
    body = {
        "audio_chunk": base64.b64encode(pcm).decode("ascii"),
        "timestamp": timestamp,
        "elcor": elcor,
        "session_id": session_id,
        "language": language,
        "num_speakers": num_speakers,
    }
    try:
        response = await sidecar_client().post(f"{url}/classify", json=body, timeout=CLASSIFY_TIMEOUT)
        response.raise_for_status()
        payload = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SidecarError(f"sidecar {url} failed ({_describe(exc)})") from exc
    events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(events, list):
        raise SidecarError(f"sidecar {url} answered without an `events` list")
    return events


async def allocation_request(*, orch_url: str) -> Allocation:
    """Ask cf-orch for a cf-voice instance."""
    try:
        response = await sidecar_client().post(
            f"{orch_url}/api/services/cf-voice/allocate",
            json={"caller": ALLOCATION_CALLER, "ttl_s": ALLOCATION_TTL_S},
            timeout=ORCH_TIMEOUT,
        )
        response.raise_for_status()
        payload = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SidecarError(f"cf-orch allocation failed ({_describe(exc)})") from exc
    url = payload.get("url") if isinstance(payload, dict) else None
    allocation_id = payload.get("allocation_id") if isinstance(payload, dict) else None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or allocation_id in (None, ""):
        raise SidecarError("cf-orch allocation failed (the answer has no usable `url` and `allocation_id`)")
    return Allocation(url=url.rstrip("/"), allocation_id=str(allocation_id))


def _release_url(orch_url: str, allocation_id: str) -> str:
    return f"{orch_url}/api/services/cf-voice/allocations/{allocation_id}"


def _release_outcome(allocation_id: str, status_code: int) -> None:
    # 404: the allocator already forgot it (its TTL ran out), which is what we wanted.
    if status_code < 300 or status_code == 404:
        logger.info("released cf-voice allocation %s (HTTP %d)", allocation_id, status_code)
    else:
        logger.warning("releasing cf-voice allocation %s answered HTTP %d", allocation_id, status_code)


async def allocation_release(*, orch_url: str, allocation_id: str) -> None:
    """DELETE the allocation; failures are logged, never raised (its TTL is the backstop)."""
    try:
        response = await sidecar_client().delete(_release_url(orch_url, allocation_id), timeout=ORCH_TIMEOUT)
    except httpx.HTTPError as exc:
        logger.warning("releasing cf-voice allocation %s failed: %s", allocation_id, _describe(exc))
        return
    _release_outcome(allocation_id, response.status_code)


def _release_blocking(orch_url: str, allocation_id: str) -> None:
    try:
        response = httpx.delete(_release_url(orch_url, allocation_id), timeout=ORCH_TIMEOUT)
    except httpx.HTTPError as exc:
        logger.warning("releasing cf-voice allocation %s failed: %s", allocation_id, _describe(exc))
        return
    _release_outcome(allocation_id, response.status_code)


def allocation_release_soon(*, allocation_id: str) -> None:
    """Release an allocation without blocking the caller (an on_commit hook on any thread).

    The DELETE runs on the loop that owns the pooled client when that loop is alive;
    a process with no such loop (a worker that never streamed audio, a sync command)
    sends it from a short-lived thread instead.
    """
    orch_url = settings.CF_ORCH_URL
    if not orch_url:
        logger.warning("cf-voice allocation %s not released: CF_ORCH_URL is no longer set", allocation_id)
        return
    loop = POOL.loop
    if loop is not None and loop.is_running() and not loop.is_closed():
        release = allocation_release(orch_url=orch_url, allocation_id=allocation_id)
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        future = loop.create_task(release) if on_loop else asyncio.run_coroutine_threadsafe(release, loop)
        POOL.pending.add(future)
        future.add_done_callback(POOL.pending.discard)
        return
    threading.Thread(
        target=_release_blocking, args=(orch_url, allocation_id), name="linnet-cf-orch-release", daemon=False
    ).start()


class ToneDirection:
    """Derives shift_direction for sidecar tones from the move between consecutive labels."""

    def __init__(self) -> None:
        self.previous: int | None = None

    def direction(self, *, label: str, shift_magnitude: float) -> str:
        level = TONE_INTENSITY.get(label.strip().lower())
        previous = self.previous
        if level is not None:
            self.previous = level
        if level is None or previous is None or shift_magnitude < SHIFT_STABLE_BELOW or level == previous:
            return "stable"
        return "escalating" if level > previous else "de-escalating"


def _unit(value: object, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return min(1.0, max(0.0, float(value)))


def _event_start(timestamp: object, *, start: float, end: float) -> float:
    # An event may start inside the window (speech onset) or before it (a silence that has
    # lasted several windows); anything else is not a time in this stream.
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float) or not 0 <= timestamp <= end:
        return round(start, 3)
    return round(float(timestamp), 3)


def sidecar_events_map(
    *,
    events: list,
    start: float,
    end: float,
    elcor: bool,
    threshold: float,
    direction: ToneDirection,
) -> list[tuple[str, dict]]:
    """Turn a sidecar's `events` into Linnet log items for one window.

    Entries that are not objects with a string `event_type` and `label`, and event types
    Linnet does not know, are skipped. A missing confidence counts as 1.0 (the sidecar
    asserted the label); tones under `threshold` are dropped. An event spans from its
    `timestamp` (the window's start when it has none) to the window's end.
    """
    items: list[tuple[str, dict]] = []
    window_end = round(end, 3)
    for event in events:
        if not isinstance(event, dict):
            continue
        event_type, label = event.get("event_type"), event.get("label")
        if event_type not in MAPPED_TYPES or not isinstance(label, str) or not label.strip():
            continue
        confidence = _unit(event.get("confidence"), 1.0)
        event_start = _event_start(event.get("timestamp"), start=start, end=end)
        speaker_id = event.get("speaker_id")
        speaker_id = speaker_id if isinstance(speaker_id, str | int) and not isinstance(speaker_id, bool) else None
        if event_type == "transcript":
            items.append(
                ("transcript", {"text": label, "speaker_id": speaker_id, "start": event_start, "end": window_end})
            )
        elif event_type == "tone":
            if confidence < threshold:
                continue
            magnitude = _unit(event.get("shift_magnitude"), 0.0)
            derived = direction.direction(label=label, shift_magnitude=magnitude)
            given = event.get("shift_direction")
            shift_direction = given if given in SHIFT_DIRECTIONS else derived
            flags = event.get("prosody_flags")
            items.append(
                (
                    "tone",
                    {
                        "label": label,
                        "confidence": confidence,
                        "speaker_id": speaker_id,
                        "shift_magnitude": magnitude,
                        "shift_direction": shift_direction,
                        **tone_annotation(
                            label=label, confidence=confidence, shift_direction=shift_direction, elcor=elcor
                        ),
                        "prosody_flags": [f for f in flags if isinstance(f, str)] if isinstance(flags, list) else [],
                        "start": event_start,
                        "end": window_end,
                    },
                )
            )
        else:
            items.append(
                (event_type, {"label": label, "confidence": confidence, "start": event_start, "end": window_end})
            )
    return items
