"""Reads: session lookups, access checks, the event log, presence counts, JSON shapes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime

from django.db.models import (
    BooleanField,
    Count,
    Exists,
    ExpressionWrapper,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    TextField,
)
from django.db.models.functions import Cast, Coalesce, Greatest

from sessions_app import errors, plugins
from sessions_app.clock import utcnow
from sessions_app.errors import LinnetError
from sessions_app.models import ENVELOPE_FIELDS, EncodedEvent, Event, Session, event_encode, event_envelope
from sessions_app.services.presence import live_subscriptions
from sessions_app.tokens import token_matches

EVENT_PAGE = 500


def session_get(*, session_id: uuid.UUID | str) -> Session:
    """The session, or LinnetError(404 session_not_found) for an unknown or malformed id."""
    try:
        parsed = uuid.UUID(str(session_id))
    except ValueError:
        raise LinnetError(errors.SESSION_NOT_FOUND, status=404) from None
    session = Session.objects.filter(pk=parsed).first()
    if session is None:
        raise LinnetError(errors.SESSION_NOT_FOUND, status=404)
    return session


def session_may_access(*, session: Session, token: str | None, user=None) -> bool:
    """Token holders, staff and the session's owner may read and steer a session."""
    if user is not None and user.is_authenticated:
        if user.is_staff or (session.owner_id is not None and session.owner_id == user.pk):
            return True
    return token_matches(token, session.token_hash)


def session_get_authorized(*, session_id: uuid.UUID | str, token: str | None, user=None) -> Session:
    session = session_get(session_id=session_id)
    if not session_may_access(session=session, token=token, user=user):
        raise LinnetError(errors.UNAUTHORIZED, status=401)
    return session


def subscriber_count(*, session_id: uuid.UUID | str, now: datetime | None = None) -> int:
    return live_subscriptions(now or utcnow()).filter(session_id=session_id).count()


def live_subscription_count(*, now: datetime | None = None) -> int:
    return live_subscriptions(now or utcnow()).count()


def sessions_idleness(sessions: QuerySet[Session], *, now: datetime) -> QuerySet[Session]:
    """Annotate `busy` and `idle_since`: the one statement of when a session is idle.

    A session is busy while it has a live subscriber or a registered keep-alive holds it (a
    run in flight, an attached audio stream). Its idle clock starts at the latest of its
    creation, its last subscriber leaving and each keep-alive's last end; `idle_since` means
    something only when `busy` is false.
    """
    holds = [Exists(live_subscriptions(now).filter(session_id=OuterRef("pk")))]
    ends = [Coalesce("last_subscriber_left_at", "created_at")]
    for keep_alive in plugins.keep_alives():
        rows = keep_alive.rows().filter(session_id=OuterRef("pk"))
        holds.append(Exists(rows.filter(keep_alive.busy(now))))
        last_end = rows.order_by().values("session_id").annotate(last=Max(keep_alive.ended_field)).values("last")
        ends.append(Coalesce(Subquery(last_end[:1]), "created_at"))
    busy = Q()
    for hold in holds:
        busy |= Q(hold)
    return sessions.annotate(
        busy=ExpressionWrapper(busy, output_field=BooleanField()),
        idle_since=Greatest("created_at", *ends),
    )


def gauges_read(*, now: datetime | None = None) -> dict[str, int | dict[str, int]]:
    """Every registered gauge's current value, by key."""
    now = now or utcnow()
    return {gauge.key: gauge.read(now) for gauge in plugins.gauges()}


def session_counts_by_state() -> dict[str, int]:
    rows = Session.objects.values("state").annotate(n=Count("id")).order_by()
    return {row["state"]: row["n"] for row in rows}


def events_after(
    *,
    session_id: uuid.UUID | str,
    after: int = 0,
    types: list[str] | None = None,
    limit: int = EVENT_PAGE,
    until: int | None = None,
) -> list[dict]:
    """Up to `limit` event envelopes with seq > after (and <= until), in seq order."""
    rows = Event.objects.filter(session_id=session_id, seq__gt=after)
    if until is not None:
        rows = rows.filter(seq__lte=until)
    if types:
        rows = rows.filter(type__in=types)
    return [event_envelope(*row) for row in rows.order_by("seq").values_list(*ENVELOPE_FIELDS)[:limit]]


def events_after_encoded(
    *, session_id: uuid.UUID | str, after: int = 0, limit: int = EVENT_PAGE, until: int | None = None
) -> list[EncodedEvent]:
    """Like events_after, with each envelope already its wire JSON (for replays)."""
    rows = Event.objects.filter(session_id=session_id, seq__gt=after)
    if until is not None:
        rows = rows.filter(seq__lte=until)
    rows = rows.order_by("seq").values_list("seq", "type", "ts", Cast("data", TextField()))
    return [event_encode(*row) for row in rows[:limit]]


def events_iter(*, session_id: uuid.UUID | str, after: int = 0) -> Iterator[dict]:
    """Every event after `after`, read page by page so a long log never sits in memory at once."""
    while True:
        page = events_after(session_id=session_id, after=after)
        yield from page
        if len(page) < EVENT_PAGE:
            return
        after = page[-1]["seq"]


def session_json(session: Session, *, now: datetime | None = None) -> dict:
    return {
        "id": str(session.id),
        "kind": session.kind,
        "state": session.state,
        "phase": session.phase,
        "next_action": session.next_action,
        "options": {
            "elcor": session.elcor,
            "window_ms": session.window_ms,
            "language": session.language,
            "num_speakers": session.num_speakers,
            "share_feedback": session.share_feedback,
        },
        "created_at": session.created_at.isoformat(),
        "last_heartbeat_at": _iso(session.last_heartbeat_at),
        "last_subscriber_left_at": _iso(session.last_subscriber_left_at),
        "ended_at": _iso(session.ended_at),
        "subscribers": subscriber_count(session_id=session.id, now=now),
        "last_seq": session.last_seq,
        "pending_input": session.pending_input,
        "result": session.result,
        "error": session.error,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
