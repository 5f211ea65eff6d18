"""Agent-run loops for the worker: drain claims, lease expiry, compaction."""

from __future__ import annotations

from sessions_app.worker import Loop


def agent_loops() -> list[Loop]:
    return []
