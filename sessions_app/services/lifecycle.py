"""The reaper and the GC: one-pass functions that end sessions nobody will come back to."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.db.models.functions import Coalesce, Greatest

from sessions_app import errors
from sessions_app.clock import utcnow
from sessions_app.models import TERMINAL_STATES, Session, SessionState
from sessions_app.selectors import sessions_idleness
from sessions_app.services.presence import presence_sweep_once
from sessions_app.services.sessions import session_transition

logger = logging.getLogger(__name__)


def reap_once(*, now: datetime | None = None, limit: int | None = None) -> int:
    """End as `aborted`/`session_idle` every live session idle for more than SESSION_IDLE_TTL_S.

    Idle means: nothing holds it (no live subscription, and no keep-alive another app
    registered: a run in flight, an attached audio stream); the idle clock starts at the
    latest of creation, the last subscriber leaving and each keep-alive's last end
    (`selectors.sessions_idleness`). At most `limit` sessions are looked at. Returns how
    many sessions were reaped.
    """
    now = now or utcnow()
    # Subscriptions of dead processes must have left (at their lease's expiry) before
    # idleness is judged, or a session would count as idle since its creation.
    presence_sweep_once(now=now)
    return _abort_each(idle_sessions(now), code=errors.SESSION_IDLE, now=now, limit=limit)


def idle_sessions(now: datetime) -> QuerySet[Session]:
    """Live sessions nothing has held for over SESSION_IDLE_TTL_S."""
    cutoff = now - timedelta(seconds=settings.SESSION_IDLE_TTL_S)
    live = Session.objects.exclude(state__in=TERMINAL_STATES).filter(created_at__lt=cutoff)
    return sessions_idleness(live, now=now).filter(busy=False, idle_since__lt=cutoff).order_by("created_at")


def _abort_each(candidates: QuerySet[Session], *, code: str, now: datetime, limit: int | None) -> int:
    """Abort up to `limit` of the candidates, each only if it still qualifies; returns how many."""
    aborted = sum(_abort_if_still_candidate(candidates, session, code, now) for session in candidates[:limit])
    if aborted:
        logger.info("aborted %d session(s) with %s", aborted, code)
    return aborted


def _abort_if_still_candidate(candidates: QuerySet[Session], session: Session, code: str, now: datetime) -> bool:
    """Abort `session` if, under its row lock, it still is one of `candidates`.

    The pass read its candidates without locks; a subscriber, a run or an input may have
    arrived since. Each of those writes the session row, so asking again after locking it
    sees them.
    """
    with transaction.atomic():
        list(Session.objects.select_for_update().filter(pk=session.pk).values_list("pk"))
        if not candidates.filter(pk=session.pk).exists():
            return False
        error = errors.error_json(code)
        session_transition(session=session, to=SessionState.ABORTED, error=error, now=now)
    return True


def gc_once(*, now: datetime | None = None, limit: int | None = None) -> int:
    """Abort `input_required` sessions whose client stopped heartbeating SESSION_GC_AFTER_S ago.

    A tab that is still subscribed does not save the session: only a heartbeat (or the
    input itself) shows a person is there. The clock starts when the session began waiting.
    """
    now = now or utcnow()
    return _abort_each(abandoned_sessions(now), code=errors.SESSION_ABANDONED, now=now, limit=limit)


def abandoned_sessions(now: datetime) -> QuerySet[Session]:
    """Sessions waiting for input with no client heartbeat for over SESSION_GC_AFTER_S."""
    cutoff = now - timedelta(seconds=settings.SESSION_GC_AFTER_S)
    return (
        Session.objects.filter(state=SessionState.INPUT_REQUIRED)
        .annotate(seen_at=Greatest("state_changed_at", Coalesce("last_heartbeat_at", "state_changed_at")))
        .filter(seen_at__lt=cutoff)
        .order_by("created_at")
    )
