"""`python manage.py linnet_worker`: the reaper, GC, presence sweep and run drains, alone."""

from __future__ import annotations

import asyncio
import logging
import signal

from django.core.management.base import BaseCommand

from sessions_app.services import presence
from sessions_app.worker import WorkerLoops, all_loops

logger = logging.getLogger("linnet.worker")


class Command(BaseCommand):
    help = "Run Linnet's worker loops (reaper, GC, presence sweep, run drains) until SIGTERM/SIGINT."

    def handle(self, *args, **options) -> None:
        presence.PROCESS.role = "worker"
        asyncio.run(self._main())

    async def _main(self) -> None:
        worker = WorkerLoops(all_loops())
        loop = asyncio.get_running_loop()
        stop_requested = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop_requested.set)
        running = asyncio.create_task(worker.run())
        logger.info("linnet_worker started (loops: %s)", ", ".join(loop.name for loop in worker.loops))
        await stop_requested.wait()
        logger.info("linnet_worker stopping")
        await worker.stop()
        await running
        logger.info("linnet_worker stopped")
