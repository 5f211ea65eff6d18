"""Presence: which sessions have live subscribers, correct across processes and crashes.

Each process holds a lease row (Worker) that it renews every PRESENCE_LEASE_RENEW_S.
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
from django.db.models import Exists, OuterRef

from sessions_app.clock import utcnow
from sessions_app.models import Session, Subscription, Worker

logger = logging.getLogger(__name__)


class _ProcessIdentity:
    """This process's lease id and role; the row is created lazily on first use."""

    def __init__(self) -> None:
        self.role = "web"
        self.worker_id: str | None = None
        self.renewed_at: datetime | None = None
        self.renew_task: asyncio.Task | None = None

    def new_id(self) -> str:
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        return self.worker_id


PROCESS = _ProcessIdentity()


def _lease_until(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.PRESENCE_LEASE_TTL_S)


def worker_register(*, role: str | None = None, now: datetime | None = None) -> Worker:
    """Create this process's lease row (a fresh id each time, so a swept lease never revives)."""
    now = now or utcnow()
    if role:
        PROCESS.role = role
    PROCESS.renewed_at = now
    return Worker.objects.create(
        id=PROCESS.new_id(),
        role=PROCESS.role,
        hostname=socket.gethostname(),
        pid=os.getpid(),
        started_at=now,
        lease_expires_at=_lease_until(now),
    )


def current_worker_id(*, now: datetime | None = None) -> str:
    """This process's live lease id, registering or re-registering it when needed."""
    now = now or utcnow()
    if PROCESS.worker_id is None:
        return worker_register(now=now).id
    if PROCESS.renewed_at and now - PROCESS.renewed_at < timedelta(seconds=settings.PRESENCE_LEASE_RENEW_S):
        return PROCESS.worker_id
    renewed = Worker.objects.filter(pk=PROCESS.worker_id, lease_expires_at__gte=now).update(
        lease_expires_at=_lease_until(now)
    )
    if not renewed:
        # The lease lapsed (a long pause) and may have been swept with its subscriptions;
        # a new lease keeps new subscriptions from being swept along with the old ones.
        logger.warning("presence lease %s lapsed; registering a new one", PROCESS.worker_id)
        return worker_register(now=now).id
    PROCESS.renewed_at = now
    return PROCESS.worker_id


def worker_renew(*, now: datetime | None = None) -> str:
    PROCESS.renewed_at = None
    return current_worker_id(now=now)


def worker_record_pass(*, loop: str, count: int, seconds: float, now: datetime | None = None) -> None:
    """Record a worker loop's last pass on this process's row, for the admin."""
    now = now or utcnow()
    worker_id = current_worker_id(now=now)
    with transaction.atomic():
        worker = Worker.objects.select_for_update().get(pk=worker_id)
        worker.passes = {**worker.passes, loop: {"at": now.isoformat(), "count": count, "ms": round(seconds * 1000, 2)}}
        worker.save(update_fields=["passes"])


def worker_stop(*, now: datetime | None = None) -> None:
    """Graceful shutdown: drop this process's subscriptions now instead of waiting for the sweep."""
    if PROCESS.worker_id is None:
        return
    now = now or utcnow()
    with transaction.atomic():
        session_ids = list(
            Subscription.objects.filter(worker_id=PROCESS.worker_id).values_list("session_id", flat=True).distinct()
        )
        Subscription.objects.filter(worker_id=PROCESS.worker_id).delete()
        _stamp_left_if_empty(session_ids, now)
        Worker.objects.filter(pk=PROCESS.worker_id).update(stopped_at=now, lease_expires_at=now)
    PROCESS.worker_id = None


def live_subscriptions(now: datetime):
    return Subscription.objects.filter(worker__lease_expires_at__gte=now, worker__stopped_at__isnull=True)


def _stamp_left_if_empty(session_ids: list, now: datetime) -> None:
    if not session_ids:
        return
    live = live_subscriptions(now).filter(session_id=OuterRef("pk"))
    Session.objects.filter(pk__in=session_ids).filter(~Exists(live)).update(last_subscriber_left_at=now)


def subscription_open(*, session: Session, transport: str, now: datetime | None = None) -> int:
    """Register a live subscriber and clear the session's idle clock."""
    now = now or utcnow()
    worker_id = current_worker_id(now=now)
    with transaction.atomic():
        # The row lock orders this against a concurrent last-subscriber-left stamp.
        Session.objects.select_for_update().filter(pk=session.pk).update(last_subscriber_left_at=None)
        subscription = Subscription.objects.create(session_id=session.pk, worker_id=worker_id, transport=transport)
    return subscription.pk


def subscription_close(*, subscription_id: int, now: datetime | None = None) -> None:
    """Drop a subscriber; the last one out starts the session's idle clock."""
    now = now or utcnow()
    with transaction.atomic():
        subscription = Subscription.objects.filter(pk=subscription_id).first()
        if subscription is None:
            return
        list(Session.objects.select_for_update().filter(pk=subscription.session_id).values_list("pk"))
        subscription.delete()
        _stamp_left_if_empty([subscription.session_id], now)


def presence_sweep_once(*, now: datetime | None = None) -> int:
    """Delete subscriptions held by expired leases; returns how many were removed."""
    now = now or utcnow()
    with transaction.atomic():
        expired = Worker.objects.filter(lease_expires_at__lt=now)
        stale = Subscription.objects.filter(worker__in=expired)
        session_ids = list(stale.values_list("session_id", flat=True).distinct())
        removed, _ = stale.delete()
        _stamp_left_if_empty(session_ids, now)
        expired.filter(stopped_at__isnull=True).update(stopped_at=now)
        # Keep dead processes visible in the admin for a day, then forget them.
        Worker.objects.filter(lease_expires_at__lt=now - timedelta(days=1)).delete()
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
    renew = database_sync_to_async(worker_renew)
    while True:
        await asyncio.sleep(settings.PRESENCE_LEASE_RENEW_S)
        try:
            await renew()
        except Exception:
            logger.exception("renewing the presence lease failed; retrying")
