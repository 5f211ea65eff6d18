"""Reads for the staff live console: one snapshot of the whole server, cheap enough to take every second.

Events per second never counts the log. Event ids come from a BigAutoField that only
grows, so each snapshot reads `max(id)` — one index lookup however long the log is — and
the rate of an interval is how far it moved divided by the time between two readings.
The readings live in a `ConsoleSampler` per process, shared by every console socket the
process serves: a dashboard opened a minute ago and one opened now draw the same history,
and N open dashboards cost one database read per interval, not N.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime, timedelta
from enum import StrEnum

from django.db.models import F, Max

from sessions_app import selectors
from sessions_app.clock import utcnow
from sessions_app.models import Event, ProcessLease, SessionState

# How far back the events/s history goes.
EVENT_RATE_WINDOW_S = 300.0
# A loop is stalled when its last pass is older than this many of its intervals (and never
# before LOOP_STALL_MIN_S, so a 1 s loop is not flagged for one slow pass).
LOOP_STALL_FACTOR = 3
LOOP_STALL_MIN_S = 10.0
# The interval assumed for a pass recorded without one (a process on older code).
LOOP_DEFAULT_INTERVAL_S = 60.0
# Dead processes stay in the table for a day: the console lists those not stopped, then the
# most recently stopped, up to this many.
PROCESS_LIMIT = 100


class ProcessStatus(StrEnum):
    ALIVE = "alive"
    # Alive, but one of its loops has not passed for several intervals.
    LAGGING = "lagging"
    # The lease lapsed without a clean stop: killed, frozen or cut off from the database.
    EXPIRED = "expired"
    STOPPED = "stopped"


STALLED_STATUSES = frozenset({ProcessStatus.LAGGING, ProcessStatus.EXPIRED})


class ConsoleSampler:
    """This process's console readings: the events/s history and the latest snapshot."""

    def __init__(self, *, window_s: float = EVENT_RATE_WINDOW_S) -> None:
        self.window = timedelta(seconds=window_s)
        self.lock = threading.Lock()
        self.baseline: tuple[datetime, int] | None = None
        self.rates: deque[tuple[datetime, float]] = deque()
        self.latest: dict | None = None
        self.latest_at: datetime | None = None

    def events_per_second(self, *, at: datetime, max_event_id: int) -> list[dict]:
        """Record a reading of max(Event.id) and return each interval's rate in the window, oldest first.

        1. The first reading only sets the baseline: one max(id) says nothing about a rate,
           and differencing it against 0 would draw the whole log's history as one spike.
        2. A reading that cannot be differenced against the baseline starts over the same
           way: the baseline fell out of the window, or the id went down (the newest rows
           were purged). A clock that stepped back also drops the rates it would misplace.
        3. Otherwise the interval's rate is appended, and rates older than the window dropped.
        """
        previous, self.baseline = self.baseline, (at, max_event_id)
        if previous is not None:
            elapsed = (at - previous[0]).total_seconds()
            if elapsed <= 0:
                self.rates.clear()
            elif elapsed <= self.window.total_seconds() and max_event_id >= previous[1]:
                self.rates.append((at, (max_event_id - previous[1]) / elapsed))
        while self.rates and self.rates[0][0] < at - self.window:
            self.rates.popleft()
        return [{"at": sampled_at.isoformat(), "per_s": round(rate, 2)} for sampled_at, rate in self.rates]


CONSOLE_SAMPLER = ConsoleSampler()


def console_snapshot(*, sampler: ConsoleSampler, now: datetime | None = None, reuse_within_s: float = 0.0) -> dict:
    """The live dashboard's snapshot: the sampler's latest when younger than `reuse_within_s`, else a new one.

    Every count comes from the database in this one call, so a console socket makes one
    thread hop per snapshot.
    """
    now = now or utcnow()
    with sampler.lock:
        if sampler.latest is not None and 0 <= (now - sampler.latest_at).total_seconds() < reuse_within_s:
            return sampler.latest
        sampler.latest, sampler.latest_at = _snapshot_read(sampler=sampler, now=now), now
        return sampler.latest


def _snapshot_read(*, sampler: ConsoleSampler, now: datetime) -> dict:
    max_event_id = Event.objects.aggregate(max_id=Max("id"))["max_id"] or 0
    by_state = selectors.session_counts_by_state()
    leases = ProcessLease.objects.order_by(F("stopped_at").desc(nulls_first=True), "-started_at")[:PROCESS_LIMIT]
    return {
        "type": "snapshot",
        "at": now.isoformat(),
        "sessions_by_state": {state: by_state.get(state, 0) for state in SessionState.values},
        "events_per_second": sampler.events_per_second(at=now, max_event_id=max_event_id),
        "subscribers": selectors.live_subscription_count(now=now),
        # What the other apps registered: audio streams, runs by status, runs in flight.
        **selectors.gauges_read(now=now),
        "processes": [process_json(lease, now=now) for lease in leases],
    }


def process_json(lease: ProcessLease, *, now: datetime) -> dict:
    """One process lease as the console shows it, with each loop's last pass and whether it is stalled."""
    loops = {
        name: loop_pass_json(last_pass, now=now, running=lease.stopped_at is None)
        for name, last_pass in sorted(lease.passes.items())
    }
    status = process_status(lease, now=now, any_loop_stalled=any(loop["stalled"] for loop in loops.values()))
    return {
        "id": lease.id,
        "role": lease.role,
        "hostname": lease.hostname,
        "pid": lease.pid,
        "alive": lease.is_alive(now),
        "status": status,
        "stalled": status in STALLED_STATUSES,
        "started_at": lease.started_at.isoformat(),
        "lease_expires_at": lease.lease_expires_at.isoformat(),
        "lease_left_s": round((lease.lease_expires_at - now).total_seconds(), 1),
        "stopped_at": lease.stopped_at.isoformat() if lease.stopped_at else None,
        "loops": loops,
    }


def process_status(lease: ProcessLease, *, now: datetime, any_loop_stalled: bool) -> str:
    """Alive, lagging (a loop stalled), expired (the lease lapsed without a clean stop) or stopped."""
    if lease.stopped_at is not None:
        # A clean stop ends the lease the moment it stops; the sweep stamps a lapsed lease
        # stopped only later, so a stop after the lease ran out was no clean stop.
        return ProcessStatus.STOPPED if lease.stopped_at <= lease.lease_expires_at else ProcessStatus.EXPIRED
    if lease.lease_expires_at < now:
        return ProcessStatus.EXPIRED
    return ProcessStatus.LAGGING if any_loop_stalled else ProcessStatus.ALIVE


def loop_pass_json(last_pass: dict, *, now: datetime, running: bool) -> dict:
    """A loop's last pass with its age; stalled when the process runs and the pass is several intervals old."""
    every_s = float(last_pass.get("every_s") or LOOP_DEFAULT_INTERVAL_S)
    age_s = max(0.0, (now - datetime.fromisoformat(last_pass["at"])).total_seconds())
    return {
        "at": last_pass["at"],
        "count": last_pass.get("count"),
        "ms": last_pass.get("ms"),
        "every_s": every_s,
        "age_s": round(age_s, 1),
        "stalled": running and age_s > max(LOOP_STALL_FACTOR * every_s, LOOP_STALL_MIN_S),
    }
