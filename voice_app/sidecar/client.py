"""The one pooled HTTP client a process talks to cf-voice and cf-orch through.

The client is created lazily on the running loop (daphne has no lifespan hook to create it
at start-up), recreated when the loop changes, and closed when the reactor shuts down.
"""

from __future__ import annotations

import asyncio
import sys

import httpx

# Every call passes its own timeout; this only bounds one that does not.
DEFAULT_TIMEOUT = httpx.Timeout(4.0, connect=1.0)
POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class SidecarError(Exception):
    """A sidecar or allocator call that failed; the message says how, for the `service` event."""


class _ClientPool:
    def __init__(self) -> None:
        self.client: httpx.AsyncClient | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.shutdown_hooked = False


POOL = _ClientPool()


def sidecar_client() -> httpx.AsyncClient:
    """This process's pooled client, bound to the running loop."""
    loop = asyncio.get_running_loop()
    if POOL.client is None or POOL.loop is not loop or POOL.client.is_closed:
        # A client from another loop (a previous test's) cannot be closed from this one;
        # its connections die with that loop.
        POOL.client = httpx.AsyncClient(timeout=DEFAULT_TIMEOUT, limits=POOL_LIMITS)
        POOL.loop = loop
        _close_on_reactor_shutdown()
    return POOL.client


def sidecar_client_loop() -> asyncio.AbstractEventLoop | None:
    """The loop the pooled client belongs to, while that loop is still running."""
    loop = POOL.loop
    if loop is None or not loop.is_running() or loop.is_closed():
        return None
    return loop


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


def failure_reason(exc: Exception) -> str:
    """A short account of a failed call, for logs and `service` events."""
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, httpx.HTTPError):
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return str(exc)
