"""`python manage.py voice_sidecar`: the built-in classifier as a cf-voice-compatible HTTP service."""

from __future__ import annotations

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from voice_app.classifier import MAX_SESSIONS, ClassifierCache
from voice_app.sidecar_server import SidecarServer


class Command(BaseCommand):
    help = "Serve POST /classify and GET /health (cf-voice protocol) with the in-process classifier."
    # The sidecar runs on machines without the database; nothing here may need it.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8100, help="0 picks a free port (printed on start).")
        parser.add_argument("--max-sessions", type=int, default=MAX_SESSIONS, help="Per-session classifiers kept.")

    def handle(self, *args, host: str, port: int, max_sessions: int, **options) -> None:
        classifiers = ClassifierCache(
            sample_rate=settings.VOICE_SAMPLE_RATE,
            confidence_threshold=settings.VOICE_CONFIDENCE_THRESHOLD,
            max_sessions=max_sessions,
        )
        server = SidecarServer((host, port), classifiers=classifiers)

        def stop(signum, frame) -> None:
            # shutdown() waits for serve_forever(), which runs on this very thread.
            threading.Thread(target=server.shutdown, name="voice-sidecar-shutdown").start()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.stdout.write(f"voice sidecar listening on {server.url} ({settings.VOICE_SAMPLE_RATE} Hz PCM16)")
        self.stdout.flush()
        try:
            server.serve_forever()
        finally:
            server.server_close()
