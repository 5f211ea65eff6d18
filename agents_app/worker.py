"""Agent-run loops for the worker: drain claims, lease expiry, compaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import close_old_connections

from agents_app.drains import DrainPool
from agents_app.services import compact_once, run_expire_once
from sessions_app.plugins import Loop


def _sync_pass(fn: Callable[[], int]) -> Callable[[], Awaitable[int]]:
    def run() -> int:
        # A long-idle worker may hold a connection the database already closed.
        close_old_connections()
        return fn()

    return database_sync_to_async(run)


def agent_loops() -> list[Loop]:
    pool = DrainPool()
    return [
        Loop(
            "drain",
            lambda: settings.AGENT_CLAIM_INTERVAL_S,
            pool.claim_once,
            on_shutdown=pool.shutdown,
            on_stop_requested=pool.stop_claiming,
        ),
        Loop("run_expire", lambda: settings.AGENT_EXPIRE_INTERVAL_S, _sync_pass(run_expire_once)),
        Loop("compact", lambda: settings.AGENT_COMPACT_INTERVAL_S, _sync_pass(compact_once)),
    ]
