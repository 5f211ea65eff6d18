"""The worker loops: each one a pass function run on an interval until shutdown.

`linnet_worker` runs them alone; `serve` runs them inside the daphne process. Tests call
the pass functions (`reap_once`, `gc_once`, `presence_sweep_once`, ...) directly.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable

from channels.db import database_sync_to_async
from django.conf import settings

from sessions_app import metrics, plugins
from sessions_app.plugins import Loop
from sessions_app.services import presence
from sessions_app.services.lifecycle import gc_once, reap_once
from sessions_app.services.presence import presence_sweep_once

logger = logging.getLogger(__name__)


# Sessions ended per database hop: in `serve` the worker shares the process's one database
# thread with every socket, so a pass that ends hundreds of sessions must let them in between.
LIFECYCLE_BATCH = 25


def in_batches(pass_fn: Callable[..., int], batch: int = LIFECYCLE_BATCH) -> Callable[[], Awaitable[int]]:
    """A one-pass function run as hops of at most `batch` items until a hop comes up short."""
    # database_sync_to_async also drops connections the database closed while the loop slept.
    run_batch = database_sync_to_async(functools.partial(pass_fn, limit=batch))

    async def run() -> int:
        total = 0
        while True:
            handled = await run_batch()
            total += handled
            if handled < batch:
                return total

    return run


def session_loops() -> list[Loop]:
    return [
        Loop("reap", lambda: settings.SESSION_REAP_INTERVAL_S, in_batches(reap_once)),
        Loop("gc", lambda: settings.SESSION_GC_INTERVAL_S, in_batches(gc_once)),
        Loop("sweep", lambda: settings.PRESENCE_SWEEP_INTERVAL_S, database_sync_to_async(presence_sweep_once)),
    ]


def all_loops() -> list[Loop]:
    """The core's loops and every loop another app registered."""
    return [*session_loops(), *(loop for factory in plugins.worker_loop_factories() for loop in factory())]


class WorkerLoops:
    """Runs every loop until `stop()`; a failing pass is logged and retried next interval."""

    def __init__(self, loops: list[Loop]) -> None:
        self.loops = loops
        self.stopping = asyncio.Event()
        self.tasks: list[asyncio.Task] = []

    async def run(self) -> None:
        await database_sync_to_async(presence.current_lease_id)()
        await presence.lease_keepalive_start()
        self.tasks = [asyncio.create_task(self._run_loop(loop), name=f"linnet-{loop.name}") for loop in self.loops]
        await asyncio.gather(*self.tasks)

    async def _run_loop(self, loop: Loop) -> None:
        record = database_sync_to_async(presence.lease_record_pass)
        while not self.stopping.is_set():
            started = time.perf_counter()
            try:
                count = await loop.run_once()
                elapsed = time.perf_counter() - started
                metrics.LOOP_PASS_SECONDS.labels(loop.name).observe(elapsed)
                await record(loop=loop.name, count=count, seconds=elapsed, interval_s=loop.interval_s())
            except Exception:
                logger.exception("worker loop %s: pass failed; retrying next interval", loop.name)
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=loop.interval_s())
            except TimeoutError:
                pass

    async def stop(self, *, timeout_s: float = 20.0) -> None:
        """Stop claiming work, let each loop finish its pass, run shutdown hooks, drop presence."""
        self.stopping.set()
        for loop in self.loops:
            if loop.on_stop_requested is not None:
                try:
                    loop.on_stop_requested()
                except Exception:
                    logger.exception("worker loop %s: stop hook failed", loop.name)
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=timeout_s)
        for loop in self.loops:
            if loop.on_shutdown is not None:
                try:
                    await asyncio.wait_for(loop.on_shutdown(), timeout=timeout_s)
                except Exception:
                    logger.exception("worker loop %s: shutdown hook failed", loop.name)
        await database_sync_to_async(presence.lease_stop)()
