"""The reaper and the GC: one-pass functions that end sessions nobody will come back to."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, Max, OuterRef
from django.db.models.functions import Coalesce, Greatest

from agents_app.models import IN_FLIGHT_RUN_STATUSES, Run
from sessions_app import errors
from sessions_app.clock import utcnow
from sessions_app.models import TERMINAL_STATES, Session, SessionState
from sessions_app.services.presence import live_subscriptions
from sessions_app.services.sessions import session_abort

logger = logging.getLogger(__name__)


def reap_once(*, now: datetime | None = None, limit: int | None = None) -> int:
    """End as `aborted`/`session_idle` every live session idle for more than SESSION_IDLE_TTL_S.

    Idle means: no live subscription (an audio producer does not count) and no run in
    flight; the idle clock starts at the latest of creation, the last subscriber leaving,
    and the last run ending. At most `limit` sessions are looked at. Returns how many
    sessions were reaped.
    """
    now = now or utcnow()
    cutoff = now - timedelta(seconds=settings.SESSION_IDLE_TTL_S)
    candidates = (
        Session.objects.exclude(state__in=TERMINAL_STATES)
        .filter(created_at__lt=cutoff)
        .filter(~Exists(live_subscriptions(now).filter(session_id=OuterRef("pk"))))
        .filter(~Exists(Run.objects.filter(session_id=OuterRef("pk"), status__in=IN_FLIGHT_RUN_STATUSES)))
        .annotate(last_run_ended_at=Max("runs__ended_at"))
        .annotate(
            idle_since=Greatest(
                "created_at",
                Coalesce("last_subscriber_left_at", "created_at"),
                Coalesce("last_run_ended_at", "created_at"),
            )
        )
        .filter(idle_since__lt=cutoff)
        .order_by("created_at")
    )
    reaped = 0
    for session in candidates[:limit]:
        ended = session_abort(session=session, code=errors.SESSION_IDLE, now=now)
        if ended.state == SessionState.ABORTED and (ended.error or {}).get("code") == errors.SESSION_IDLE:
            reaped += 1
    if reaped:
        logger.info("reaper ended %d idle session(s)", reaped)
    return reaped


def gc_once(*, now: datetime | None = None, limit: int | None = None) -> int:
    """Abort `input_required` sessions whose client stopped heartbeating SESSION_GC_AFTER_S ago.

    A tab that is still subscribed does not save the session: only a heartbeat (or the
    input itself) shows a person is there. The clock starts when the session began waiting.
    """
    now = now or utcnow()
    cutoff = now - timedelta(seconds=settings.SESSION_GC_AFTER_S)
    abandoned = (
        Session.objects.filter(state=SessionState.INPUT_REQUIRED)
        .annotate(seen_at=Greatest("state_changed_at", Coalesce("last_heartbeat_at", "state_changed_at")))
        .filter(seen_at__lt=cutoff)
        .order_by("created_at")
    )
    collected = 0
    for session in abandoned[:limit]:
        ended = session_abort(session=session, code=errors.SESSION_ABANDONED, now=now)
        if (ended.error or {}).get("code") == errors.SESSION_ABANDONED:
            collected += 1
    if collected:
        logger.info("GC aborted %d abandoned session(s)", collected)
    return collected
