"""`python manage.py serve`: daphne and the worker loops in one process (the embedded default).

With the in-memory channel layer, events only reach sockets in the same process, so the
worker loops must run inside the daphne process for the all-in-one setup to work.
"""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from sessions_app.services import presence

logger = logging.getLogger("linnet.serve")


class Command(BaseCommand):
    help = "Serve HTTP, WebSocket and SSE with daphne, and run the worker loops in the same process."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-worker", action="store_true", help="Serve only; run linnet_worker elsewhere.")

    def handle(self, *args, host: str, port: int, no_worker: bool, **options) -> None:
        if not settings.DEBUG:
            # The all-in-one server is also the one-command deployment: the hashed, compressed
            # static files the pages name must exist before the app (whose static middleware
            # reads the manifest once) is built. Unchanged files are skipped.
            call_command("collectstatic", interactive=False, verbosity=0)
        # daphne.server installs Twisted's asyncio reactor; it must be imported before the reactor.
        from channels.routing import get_default_application
        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server
        from twisted.internet import defer, reactor

        from sessions_app.worker import WorkerLoops, all_loops

        presence.PROCESS.role = "web" if no_worker else "serve"
        worker = None if no_worker else WorkerLoops(all_loops())

        running: list[asyncio.Future] = []

        def start_worker() -> None:
            if worker is not None:
                running.append(asyncio.ensure_future(worker.run()))
            self.stdout.write(f"Linnet serving on http://{host}:{port}/ (admin: http://{host}:{port}/admin/)")

        def stop_worker():
            if worker is None:
                return None
            return defer.Deferred.fromFuture(asyncio.ensure_future(worker.stop()))

        reactor.callWhenRunning(start_worker)
        reactor.addSystemEventTrigger("before", "shutdown", stop_worker)
        Server(
            application=get_default_application(),
            endpoints=build_endpoint_description_strings(host=host, port=port),
            signal_handlers=True,
            action_logger=None,
            websocket_timeout=86400,
        ).run()
