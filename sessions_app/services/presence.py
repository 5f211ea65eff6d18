"""Presence: which sessions have live subscribers, correct across processes and crashes.

Each process holds a lease row (ProcessLease) that it renews every PRESENCE_LEASE_RENEW_S.
Every subscription belongs to a lease, so a process killed without closing its sockets
leaves subscriptions that the sweep deletes once the lease has expired.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from datetime import datetime, timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, Max, OuterRef, Value
from django.db.models.functions import Coalesce, Greatest

from sessions_app.clock import utcnow
from sessions_app.models import ProcessLease, Session, Subscription, lease_alive_q

logger = logging.getLogger(__name__)


class _ProcessIdentity:
    """This process's lease id and role; the row is created lazily on first use."""

    def __init__(self) -> None:
        self.role = "web"
        self.lease_id: str | None = None
        self.renewed_at: datetime | None = None
        self.renew_task: asyncio.Task | None = None
        # The subscriptions this process holds open: what a revived lease must restore.
        self.subscriptions: dict[int, tuple[uuid.UUID, str]] = {}

    def forget(self) -> None:
        """Drop the lease and what it held (after a graceful stop, or a test's fresh database)."""
        self.lease_id = None
        self.renewed_at = None
        self.renew_task = None
        self.subscriptions.clear()

    def new_id(self) -> str:
        self.lease_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        return self.lease_id


PROCESS = _ProcessIdentity()


def _lease_until(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.PRESENCE_LEASE_TTL_S)


def lease_register(*, role: str | None = None, now: datetime | None = None) -> ProcessLease:
    """Create this process's lease row under a new id."""
    now = now or utcnow()
    if role:
        PROCESS.role = role
    PROCESS.renewed_at = now
    return ProcessLease.objects.create(
        id=PROCESS.new_id(),
        role=PROCESS.role,
        hostname=socket.gethostname(),
        pid=os.getpid(),
        started_at=now,
        lease_expires_at=_lease_until(now),
    )


def current_lease_id(*, now: datetime | None = None) -> str:
    """This process's live lease id, registering or re-registering it when needed."""
    now = now or utcnow()
    if PROCESS.lease_id is None:
        return lease_register(now=now).id
    if PROCESS.renewed_at and now - PROCESS.renewed_at < timedelta(seconds=settings.PRESENCE_LEASE_RENEW_S):
        return PROCESS.lease_id
    renewed = ProcessLease.objects.filter(lease_alive_q(now=now), pk=PROCESS.lease_id).update(
        lease_expires_at=_lease_until(now)
    )
    if not renewed:
        _lease_revive(now)
    PROCESS.renewed_at = now
    return PROCESS.lease_id


def _lease_revive(now: datetime) -> None:
    """Take a lapsed lease back (a long pause) and restore the subscriptions a sweep removed.

    The id stays the same: this process's open audio streams and draining runs point at
    it, and a new id would orphan them for another process to take over.
    """
    lease_id = PROCESS.lease_id
    logger.warning("presence lease %s lapsed; taking it back", lease_id)
    with transaction.atomic():
        revived = ProcessLease.objects.filter(pk=lease_id).update(lease_expires_at=_lease_until(now), stopped_at=None)
        if not revived:
            ProcessLease.objects.create(
                id=lease_id,
                role=PROCESS.role,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                started_at=now,
                lease_expires_at=_lease_until(now),
            )
        held = dict(PROCESS.subscriptions)
        surviving = set(Subscription.objects.filter(pk__in=held).values_list("pk", flat=True))
        Subscription.objects.bulk_create(
            Subscription(pk=pk, session_id=session_id, lease_id=lease_id, transport=transport)
            for pk, (session_id, transport) in held.items()
            if pk not in surviving
        )
        Session.objects.filter(pk__in={session_id for session_id, _ in held.values()}).update(
            last_subscriber_left_at=None
        )


def lease_renew(*, now: datetime | None = None) -> str:
    PROCESS.renewed_at = None
    return current_lease_id(now=now)


def lease_record_pass(
    *, loop: str, count: int, seconds: float, interval_s: float | None = None, now: datetime | None = None
) -> None:
    """Record a worker loop's last pass on this process's row, for the admin and the live console.

    The loop's own interval is kept with its pass, so the console can tell a lagging loop
    without knowing every app's loops and how each process was configured.
    """
    now = now or utcnow()
    lease_id = current_lease_id(now=now)
    last_pass = {"at": now.isoformat(), "count": count, "ms": round(seconds * 1000, 2)}
    if interval_s is not None:
        last_pass["every_s"] = interval_s
    with transaction.atomic():
        lease = ProcessLease.objects.select_for_update().get(pk=lease_id)
        lease.passes = {**lease.passes, loop: last_pass}
        lease.save(update_fields=["passes"])


def lease_stop(*, now: datetime | None = None) -> None:
    """Graceful shutdown: drop this process's subscriptions now instead of waiting for the sweep."""
    if PROCESS.lease_id is None:
        return
    now = now or utcnow()
    with transaction.atomic():
        session_ids = list(
            Subscription.objects.filter(lease_id=PROCESS.lease_id).values_list("session_id", flat=True).distinct()
        )
        Subscription.objects.filter(lease_id=PROCESS.lease_id).delete()
        _stamp_left_if_empty(session_ids, now)
        ProcessLease.objects.filter(pk=PROCESS.lease_id).update(stopped_at=now, lease_expires_at=now)
    PROCESS.forget()


def live_subscriptions(now: datetime):
    return Subscription.objects.filter(lease_alive_q(now=now, via="lease__"))


def _stamp_left_if_empty(session_ids: list, now: datetime, *, left_at: datetime | None = None) -> None:
    """Start the idle clock (at `left_at`, default now) of those sessions nobody watches any more."""
    if not session_ids:
        return
    left_at = left_at or now
    live = live_subscriptions(now).filter(session_id=OuterRef("pk"))
    Session.objects.filter(pk__in=session_ids).filter(~Exists(live)).update(
        # Never move a clock backwards that a later leave already started.
        last_subscriber_left_at=Greatest(Coalesce("last_subscriber_left_at", Value(left_at)), Value(left_at))
    )


def subscription_open(*, session: Session, transport: str, now: datetime | None = None) -> int:
    """Register a live subscriber and clear the session's idle clock."""
    now = now or utcnow()
    lease_id = current_lease_id(now=now)
    with transaction.atomic():
        # The row lock orders this against a concurrent last-subscriber-left stamp.
        Session.objects.select_for_update().filter(pk=session.pk).update(last_subscriber_left_at=None)
        subscription = Subscription.objects.create(session_id=session.pk, lease_id=lease_id, transport=transport)
    PROCESS.subscriptions[subscription.pk] = (session.pk, transport)
    return subscription.pk


def subscription_close(*, subscription_id: int, now: datetime | None = None) -> None:
    """Drop a subscriber; the last one out starts the session's idle clock."""
    now = now or utcnow()
    PROCESS.subscriptions.pop(subscription_id, None)
    with transaction.atomic():
        subscription = Subscription.objects.filter(pk=subscription_id).first()
        if subscription is None:
            return
        list(Session.objects.select_for_update().filter(pk=subscription.session_id).values_list("pk"))
        subscription.delete()
        _stamp_left_if_empty([subscription.session_id], now)


def presence_sweep_once(*, now: datetime | None = None) -> int:
    """Delete subscriptions held by expired leases; returns how many were removed.

    A session they leave empty counts as left when the lease expired — the moment those
    subscribers stopped counting — so it gets its full idle TTL from then, no more, no less.
    """
    now = now or utcnow()
    with transaction.atomic():
        expired = ProcessLease.objects.filter(lease_expires_at__lt=now)
        stale = Subscription.objects.filter(lease__in=expired)
        per_session = stale.values("session_id").annotate(left_at=Max("lease__lease_expires_at"))
        left_at_by_session = {row["session_id"]: row["left_at"] for row in per_session}
        # Sessions first, in pk order, as subscription_open/close lock them: a close racing
        # the sweep then waits for it instead of deadlocking with it.
        list(Session.objects.select_for_update().filter(pk__in=left_at_by_session).order_by("pk").values_list("pk"))
        removed, _ = stale.delete()
        for session_id, left_at in left_at_by_session.items():
            _stamp_left_if_empty([session_id], now, left_at=left_at)
        expired.filter(stopped_at__isnull=True).update(stopped_at=now)
        # Keep dead processes visible in the admin for a day, then forget them.
        ProcessLease.objects.filter(lease_expires_at__lt=now - timedelta(days=1)).delete()
    if removed:
        logger.info("presence sweep removed %d subscription(s) of expired processes", removed)
    return removed


async def lease_keepalive_start() -> None:
    """Start this process's lease renewal on the running loop (daphne has no lifespan hook)."""
    task = PROCESS.renew_task
    if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
        return
    PROCESS.renew_task = asyncio.get_running_loop().create_task(_lease_keepalive(), name="linnet-lease")


async def _lease_keepalive() -> None:
    renew = database_sync_to_async(lease_renew)
    while True:
        await asyncio.sleep(settings.PRESENCE_LEASE_RENEW_S)
        try:
            await renew()
        except Exception:
            logger.exception("renewing the presence lease failed; retrying")
