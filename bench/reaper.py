"""Reaper and GC pass time over many sessions, in this process, against the run's SQLite file.

How: the session table is filled with a realistic mix (sessions written in bulk, their
clocks set directly), then `reap_once(now=...)` and `gc_once(now=...)` are timed the way
the worker runs them, on the database thread of a running event loop (so each end's
publish hops to that loop, as it does in `serve` and `linnet_worker`):

- the first pass of each, which ends the sessions it should (each end is the real
  transition: row lock, `session.state` + `session.ended` events, the ended signal);
- the steady pass that follows, which finds nothing to do (what most passes are).

The mix, of N sessions: 65% running with a live subscriber, 15% pending and younger than
the idle TTL, 10% running whose last subscriber left within the TTL, 5% idle past the TTL
(the reaper ends them), 3% `input_required` with a subscriber but no heartbeat past
SESSION_GC_AFTER_S (the GC aborts them), 2% already ended. Subscriptions belong to one
live process lease, as they would to a web process that is up.

Baseline: a plain `Session.objects.filter(...).count()` over the same table, with the
filter that finds the pass's candidates (live sessions older than the cutoff; for the GC,
`input_required` sessions waiting since before it), so the ratio is what the pass costs
beyond scanning for its candidates once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import transaction

from bench.environment import BenchContext
from bench.report import Result, median
from sessions_app.clock import utcnow
from sessions_app.models import TERMINAL_STATES, ProcessLease, Session, SessionState, Subscription
from sessions_app.services.lifecycle import gc_once, reap_once

SIZES = (1_000, 10_000)
QUICK_SIZES = (50,)
REPEATS = 5
BATCH = 500

# share of the table, and what the reaper / GC should do with it
MIX: tuple[tuple[str, float], ...] = (
    ("subscribed", 0.65),
    ("fresh", 0.15),
    ("recently_left", 0.10),
    ("idle", 0.05),
    ("input_stale", 0.03),
    ("ended", 0.02),
)


async def _timed(fn: Callable[[], int]) -> tuple[float, int]:
    on_database_thread = database_sync_to_async(fn)
    started = time.perf_counter()
    outcome = await on_database_thread()
    return time.perf_counter() - started, outcome


async def _repeat_ms(fn: Callable[[], int]) -> float:
    return median([(await _timed(fn))[0] for _ in range(REPEATS)]) * 1000


def table_clear() -> None:
    """Empty the run's own temporary database of sessions (events and subscriptions cascade)."""
    Subscription.objects.all().delete()
    Session.objects.all().delete()
    ProcessLease.objects.all().delete()


def table_fill(*, size: int, now: datetime) -> dict[str, int]:
    """Write `size` sessions in the MIX; returns how many of each kind."""
    ttl = timedelta(seconds=settings.SESSION_IDLE_TTL_S)
    gc_after = timedelta(seconds=settings.SESSION_GC_AFTER_S)
    lease = ProcessLease.objects.create(
        id="bench-web",
        role="web",
        hostname="bench",
        pid=0,
        started_at=now - timedelta(hours=1),
        lease_expires_at=now + timedelta(days=1),
    )
    # kind -> (state, created_at, state_changed_at, last_subscriber_left_at, subscribed)
    shapes = {
        "subscribed": (SessionState.RUNNING, now - timedelta(minutes=20), now - timedelta(minutes=20), None, True),
        "fresh": (SessionState.PENDING, now - ttl / 3, now - ttl / 3, None, False),
        "recently_left": (SessionState.RUNNING, now - timedelta(minutes=30), now - ttl, now - ttl / 3, False),
        "idle": (SessionState.RUNNING, now - timedelta(hours=2), now - timedelta(hours=2), now - 3 * ttl, False),
        "input_stale": (
            SessionState.INPUT_REQUIRED,
            now - gc_after - timedelta(hours=1),
            now - gc_after - timedelta(minutes=5),
            None,
            True,
        ),
        "ended": (
            SessionState.DONE,
            now - timedelta(days=1),
            now - timedelta(hours=20),
            now - timedelta(hours=20),
            False,
        ),
    }
    counts = {kind: int(size * share) for kind, share in MIX}
    counts["subscribed"] += size - sum(counts.values())
    with transaction.atomic():
        for kind, count in counts.items():
            state, created_at, changed_at, left_at, subscribed = shapes[kind]
            sessions = Session.objects.bulk_create(
                [
                    Session(state=state, window_ms=1000, token_hash="0" * 64, last_subscriber_left_at=left_at)
                    for _ in range(count)
                ],
                batch_size=BATCH,
            )
            ids = [session.pk for session in sessions]
            for start in range(0, len(ids), BATCH):
                # auto_now_add overrides values given at insert, so the clocks are set afterwards.
                Session.objects.filter(pk__in=ids[start : start + BATCH]).update(
                    created_at=created_at,
                    state_changed_at=changed_at,
                    ended_at=changed_at if state in TERMINAL_STATES else None,
                )
            if subscribed:
                Subscription.objects.bulk_create(
                    [Subscription(session_id=pk, lease=lease, transport="ws") for pk in ids], batch_size=BATCH
                )
    return counts


def size_measure(size: int) -> list[Result]:
    now = utcnow()
    table_clear()
    counts = table_fill(size=size, now=now)
    return asyncio.run(passes_measure(size=size, now=now, counts=counts))


async def passes_measure(*, size: int, now: datetime, counts: dict[str, int]) -> list[Result]:
    reap_cutoff = now - timedelta(seconds=settings.SESSION_IDLE_TTL_S)
    gc_cutoff = now - timedelta(seconds=settings.SESSION_GC_AFTER_S)

    def reap_scan() -> int:
        return Session.objects.exclude(state__in=TERMINAL_STATES).filter(created_at__lt=reap_cutoff).count()

    def gc_scan() -> int:
        return Session.objects.filter(state=SessionState.INPUT_REQUIRED, state_changed_at__lt=gc_cutoff).count()

    reap_scan_ms = await _repeat_ms(reap_scan)
    gc_scan_ms = await _repeat_ms(gc_scan)
    reap_first_s, reaped = await _timed(lambda: reap_once(now=now))
    reap_steady_ms = await _repeat_ms(lambda: reap_once(now=now))
    gc_first_s, collected = await _timed(lambda: gc_once(now=now))
    gc_steady_ms = await _repeat_ms(lambda: gc_once(now=now))
    if reaped != counts["idle"] or collected != counts["input_stale"]:
        raise AssertionError(
            f"{size} sessions: reaped {reaped} (expected {counts['idle']}), "
            f"collected {collected} (expected {counts['input_stale']})"
        )
    print(
        f"  {size} sessions: reap {reap_first_s * 1000:.0f} ms ({reaped} ended), steady {reap_steady_ms:.1f} ms; "
        f"gc {gc_first_s * 1000:.0f} ms ({collected} aborted), steady {gc_steady_ms:.1f} ms",
        flush=True,
    )
    details = {"sessions": size, "mix": counts, "reaped": reaped, "collected": collected}
    label = f"{size:,} sessions"
    return [
        Result(
            "reaper", f"reap pass, {label}, {reaped} idle", reap_first_s * 1000, reap_scan_ms, "ms", details=details
        ),
        Result("reaper", f"reap pass, {label}, none idle", reap_steady_ms, reap_scan_ms, "ms", details=details),
        Result("reaper", f"GC pass, {label}, {collected} stale", gc_first_s * 1000, gc_scan_ms, "ms", details=details),
        Result("reaper", f"GC pass, {label}, none stale", gc_steady_ms, gc_scan_ms, "ms", details=details),
    ]


def run(ctx: BenchContext) -> list[Result]:
    results = []
    try:
        for size in QUICK_SIZES if ctx.quick else SIZES:
            results += size_measure(size)
    finally:
        table_clear()
    return results
