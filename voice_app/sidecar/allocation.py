"""The cf-orch allocation lifecycle: ask the allocator for a cf-voice instance, hand it to the
stream that will release it, and release it exactly when nothing else will.

Who releases an allocation: until it is recorded on the stream's row, the stream's task that
asked for it (`allocation_acquire`); after that, whoever closes the stream or ends the session
first (voice_app.services claims it with a conditional UPDATE and calls
`allocation_release_soon` after commit). The allocator's TTL bounds what a killed process leaves.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import httpx
from django.conf import settings

from voice_app.sidecar.client import SidecarError, failure_reason, sidecar_client, sidecar_client_loop

logger = logging.getLogger(__name__)

ORCH_TIMEOUT = httpx.Timeout(5.0, connect=2.0)
ALLOCATION_CALLER = "linnet"
# A safety net only: Linnet releases the allocation when the stream or the session ends,
# so this bounds what a killed server process leaves allocated.
ALLOCATION_TTL_S = 3600
RELEASE_THREAD_NAME = "linnet-cf-orch-release"

# Releases scheduled onto the client's loop from any thread, kept referenced until they finish.
RELEASES_IN_FLIGHT: set[concurrent.futures.Future | asyncio.Task] = set()


@dataclass(frozen=True)
class Allocation:
    url: str
    allocation_id: str


async def allocation_acquire(*, orch_url: str, record: Callable[..., Awaitable[bool]]) -> Allocation:
    """Allocate a cf-voice instance and have `record(allocation_id=...)` store it where it will be
    released (the stream's row); `record` answers False when the stream is already closed.

    1. Request it. Should the caller be cancelled meanwhile, the request runs on and whatever
       it hands out is released.
    2. Record it. Until then only this call can release it: a record that fails or finds the
       stream closed releases it here; a record the caller stopped waiting for releases it
       once its outcome is known (the write goes on in its thread).

    Raises SidecarError when cf-orch fails or the stream closed while it was allocating.
    """
    request = asyncio.ensure_future(allocation_request(orch_url=orch_url))
    try:
        allocation = await asyncio.shield(request)
    except asyncio.CancelledError:
        request.add_done_callback(_release_orphan)
        raise
    allocation_id = allocation.allocation_id
    recording = asyncio.ensure_future(record(allocation_id=allocation_id))
    try:
        recorded = await asyncio.shield(recording)
    except asyncio.CancelledError:
        recording.add_done_callback(partial(_release_unrecorded, allocation_id))
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


def _release_unrecorded(allocation_id: str, recording: asyncio.Future) -> None:
    if recording.cancelled() or recording.exception() is not None or not recording.result():
        allocation_release_soon(allocation_id=allocation_id)


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
        raise SidecarError(f"cf-orch allocation failed ({failure_reason(exc)})") from exc
    url = payload.get("url") if isinstance(payload, dict) else None
    allocation_id = payload.get("allocation_id") if isinstance(payload, dict) else None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or allocation_id in (None, ""):
        raise SidecarError("cf-orch allocation failed (the answer has no usable `url` and `allocation_id`)")
    return Allocation(url=url.rstrip("/"), allocation_id=str(allocation_id))


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
    loop = sidecar_client_loop()
    if loop is None:
        threading.Thread(
            target=_release_blocking, args=(orch_url, allocation_id), name=RELEASE_THREAD_NAME, daemon=False
        ).start()
        return
    release = allocation_release(orch_url=orch_url, allocation_id=allocation_id)
    try:
        on_loop = asyncio.get_running_loop() is loop
    except RuntimeError:
        on_loop = False
    future = loop.create_task(release) if on_loop else asyncio.run_coroutine_threadsafe(release, loop)
    RELEASES_IN_FLIGHT.add(future)
    future.add_done_callback(RELEASES_IN_FLIGHT.discard)


async def allocation_release(*, orch_url: str, allocation_id: str) -> None:
    """DELETE the allocation; failures are logged, never raised (its TTL is the backstop)."""
    try:
        response = await sidecar_client().delete(_release_url(orch_url, allocation_id), timeout=ORCH_TIMEOUT)
    except httpx.HTTPError as exc:
        logger.warning("releasing cf-voice allocation %s failed: %s", allocation_id, failure_reason(exc))
        return
    _release_outcome(allocation_id, response.status_code)


def _release_blocking(orch_url: str, allocation_id: str) -> None:
    try:
        response = httpx.delete(_release_url(orch_url, allocation_id), timeout=ORCH_TIMEOUT)
    except httpx.HTTPError as exc:
        logger.warning("releasing cf-voice allocation %s failed: %s", allocation_id, failure_reason(exc))
        return
    _release_outcome(allocation_id, response.status_code)


def _release_url(orch_url: str, allocation_id: str) -> str:
    return f"{orch_url}/api/services/cf-voice/allocations/{allocation_id}"


def _release_outcome(allocation_id: str, status_code: int) -> None:
    # 404: the allocator already forgot it (its TTL ran out), which is what we wanted.
    if status_code < 300 or status_code == 404:
        logger.info("released cf-voice allocation %s (HTTP %d)", allocation_id, status_code)
    else:
        logger.warning("releasing cf-voice allocation %s answered HTTP %d", allocation_id, status_code)
