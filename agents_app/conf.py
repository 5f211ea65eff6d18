"""Agent-run tuning knobs: plain Django settings with defaults, read at use so tests can override them.

The README documents the operator-facing settings (LINNET_AGENT, OPENAI_*,
RUN_EVICT_GRACE_S); these are the internals an operator rarely needs to touch.
"""

from __future__ import annotations

from django.conf import settings


def _number(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def drain_concurrency() -> int:
    """How many runs one worker process drains at once."""
    return int(getattr(settings, "AGENT_DRAIN_CONCURRENCY", 8))


def claim_interval_s() -> float:
    """How often a worker looks for queued runs; a queued-run layer message wakes it sooner."""
    return _number("AGENT_CLAIM_INTERVAL_S", 1.0)


def run_lease_ttl_s() -> float:
    """A draining run whose lease is not renewed for this long is ended `interrupted`."""
    return _number("AGENT_RUN_LEASE_TTL_S", 20.0)


def run_poll_s() -> float:
    """How often a drain reads its run row for a stop or an input answer it was not told about."""
    return _number("AGENT_RUN_POLL_S", 0.25)


def delta_flush_s() -> float:
    """The longest a delta waits in the drain before it is stored and published."""
    return _number("AGENT_DELTA_FLUSH_S", 0.05)


def delta_flush_max() -> int:
    """Buffered items that force a write before AGENT_DELTA_FLUSH_S is up (and make the agent wait)."""
    return int(getattr(settings, "AGENT_DELTA_FLUSH_MAX", 64))


def expire_interval_s() -> float:
    return _number("AGENT_EXPIRE_INTERVAL_S", 5.0)


def compact_interval_s() -> float:
    return _number("AGENT_COMPACT_INTERVAL_S", 30.0)


def shutdown_grace_s() -> float:
    """On SIGTERM, how long drains get to save their partial before they are cut off."""
    return _number("AGENT_SHUTDOWN_GRACE_S", 5.0)


def context_max_events() -> int:
    """The most session-log events a run reads at its start (the latest ones, of the types its agent reads)."""
    return int(getattr(settings, "AGENT_CONTEXT_MAX_EVENTS", 10_000))


def notes_pace_s() -> float:
    """The `notes` agent's pause between chunks, so its notes read as they are written."""
    return _number("AGENT_NOTES_PACE_S", 0.12)


def openai_timeout_s() -> float:
    """The `openai` agent's limit for connecting and for each wait on the upstream stream."""
    return _number("AGENT_OPENAI_TIMEOUT_S", 60.0)
