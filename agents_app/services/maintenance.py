"""The worker's run passes: end runs whose drain stopped renewing its lease, and compact finished runs."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef

from agents_app import errors
from agents_app.models import DRAINING_RUN_STATUSES, FINISHED_RUN_STATUSES, Run, RunStatus
from agents_app.services.transitions import run_and_session_lock, run_end_locked
from sessions_app.clock import utcnow
from sessions_app.models import Event
from sessions_app.services.presence import live_subscriptions

logger = logging.getLogger(__name__)

COMPACT_BATCH = 200


def run_expire_once(*, now: datetime | None = None) -> int:
    """End as `interrupted` every draining run whose lease lapsed (its worker died or hung).

    The partial saved with its last flush becomes its message. Returns how many ended.
    """
    now = now or utcnow()
    expired = list(
        Run.objects.filter(status__in=DRAINING_RUN_STATUSES, lease_expires_at__lt=now).values_list("pk", flat=True)
    )
    interrupted = 0
    for run_id in expired:
        with transaction.atomic():
            locked = run_and_session_lock(run_id)
            if locked is None:
                continue
            run, session = locked
            # Re-read under the lock: the drain may have renewed since the scan.
            if not run.is_draining or run.lease_expires_at >= now:
                continue
            lost = errors.error_json(errors.WORKER_LOST)
            run_end_locked(run=run, session=session, status=RunStatus.INTERRUPTED, error=lost, now=now)
            interrupted += 1
    if interrupted:
        logger.warning("ended %d run(s) whose worker stopped renewing the lease", interrupted)
    return interrupted


def compact_once(*, now: datetime | None = None) -> int:
    """Delete the `run.delta` rows of runs that ended RUN_EVICT_GRACE_S ago in unwatched sessions.

    Only rows whose `data.run_id` is that run's are deleted; `run.started` and `run.done`
    (which carries the whole output) stay, so a later replay still converges. A session
    with a live subscriber keeps its deltas until the subscriber leaves. Returns how many
    runs were compacted.
    """
    now = now or utcnow()
    cutoff = now - timedelta(seconds=settings.RUN_EVICT_GRACE_S)
    watched = live_subscriptions(now).filter(session_id=OuterRef("session_id"))
    due = list(
        Run.objects.filter(status__in=FINISHED_RUN_STATUSES, compacted_at__isnull=True, ended_at__lte=cutoff)
        .filter(~Exists(watched))
        .order_by("ended_at")
        .values_list("pk", "session_id")[:COMPACT_BATCH]
    )
    compacted = 0
    for run_id, session_id in due:
        with transaction.atomic():
            Event.objects.filter(session_id=session_id, type="run.delta", data__run_id=str(run_id)).delete()
            compacted += Run.objects.filter(pk=run_id, compacted_at__isnull=True).update(compacted_at=now)
    return compacted
