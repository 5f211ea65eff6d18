"""Session writes: open, the state machine's one transition function, end, heartbeat, input."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction

from sessions_app import errors, metrics
from sessions_app.clock import utcnow
from sessions_app.errors import IllegalTransition, LinnetError
from sessions_app.models import STATE_EFFECTS, TERMINAL_STATES, Session, SessionKind, SessionState
from sessions_app.services.events import events_append_one
from sessions_app.signals import session_ended, session_input_received
from sessions_app.tokens import token_hash, token_new


def session_open(
    *,
    kind: str = SessionKind.VOICE,
    elcor: bool = False,
    window_ms: int | None = None,
    language: str = "en",
    num_speakers: int | None = None,
    share_feedback: bool = False,
    owner=None,
) -> tuple[Session, str]:
    """Create a session and return it with its token (the only time the token exists in clear)."""
    token = token_new()
    with transaction.atomic():
        session = Session.objects.create(
            kind=kind,
            elcor=elcor,
            window_ms=window_ms or settings.VOICE_WINDOW_MS,
            language=language,
            num_speakers=num_speakers,
            share_feedback=share_feedback,
            owner=owner if owner is not None and owner.is_authenticated else None,
            token_hash=token_hash(token),
        )
        events_append_one(session_id=session.id, type="session.state", data=_state_data(session))
    metrics.SESSIONS_OPENED.labels(kind).inc()
    return session, token


def _state_data(session: Session) -> dict:
    return {"state": session.state, "phase": session.phase, "next_action": session.next_action}


def session_transition(
    *,
    session: Session,
    to: str,
    phase: str | None = None,
    pending_input: dict | None = None,
    result: Any = None,
    error: dict | None = None,
    now: datetime | None = None,
) -> Session:
    """Move a session along one edge of TRANSITIONS, log `session.state`, and on an end
    log `session.ended` and tell the other apps (runs stop, allocations are released).

    Raises IllegalTransition for an edge the table does not have.
    """
    now = now or utcnow()
    with transaction.atomic():
        locked = Session.objects.select_for_update().get(pk=session.pk)
        if not locked.can_transition_to(to):
            raise IllegalTransition(locked.state, to)
        default_phase, next_action = STATE_EFFECTS[to]
        locked.state = to
        locked.phase = phase or default_phase
        locked.next_action = next_action
        locked.pending_input = pending_input if to == SessionState.INPUT_REQUIRED else None
        locked.state_changed_at = now
        fields = ["state", "phase", "next_action", "pending_input", "state_changed_at"]
        if to in TERMINAL_STATES:
            locked.ended_at = now
            locked.result = result
            locked.error = error
            fields += ["ended_at", "result", "error"]
        locked.save(update_fields=fields)
        events_append_one(session_id=locked.id, type="session.state", data=_state_data(locked))
        if to in TERMINAL_STATES:
            outcome = {"state": to, "error": error} if error else {"state": to, "result": result}
            session_ended.send(sender=Session, session=locked)
            events_append_one(session_id=locked.id, type="session.ended", data=outcome)
            code = (error or {}).get("code", "none")
            transaction.on_commit(lambda: metrics.SESSIONS_ENDED.labels(to, code).inc())
    return locked


def session_activate(*, session: Session) -> Session:
    """pending → running the first time a client or producer shows up; otherwise a no-op."""
    if session.state != SessionState.PENDING:
        return session
    try:
        return session_transition(session=session, to=SessionState.RUNNING)
    except IllegalTransition:
        # Another process activated or ended it first; the row now says which.
        session.refresh_from_db()
        return session


def session_end(
    *, session: Session, to: str = SessionState.DONE, result: Any = None, error: dict | None = None
) -> Session:
    """End a session (idempotent: an ended session is returned as it is).

    A pending session that never started passes through running, so every ended
    session's log reads the same way and `done` stays reachable only from work that began.
    """
    session.refresh_from_db()
    if session.is_terminal:
        return session
    if to == SessionState.DONE and session.state == SessionState.PENDING:
        session = session_activate(session=session)
        if session.is_terminal:
            return session
    try:
        return session_transition(session=session, to=to, result=result, error=error)
    except IllegalTransition:
        session.refresh_from_db()
        if session.is_terminal:
            return session
        raise


def session_abort(*, session: Session, code: str, message: str | None = None, now: datetime | None = None) -> Session:
    error = errors.error_json(code, message)
    session.refresh_from_db()
    if session.is_terminal:
        return session
    try:
        return session_transition(session=session, to=SessionState.ABORTED, error=error, now=now)
    except IllegalTransition:
        session.refresh_from_db()
        return session


def session_heartbeat(*, session: Session, now: datetime | None = None) -> None:
    Session.objects.filter(pk=session.pk).update(last_heartbeat_at=now or utcnow())


def session_input(*, session: Session, input: dict, now: datetime | None = None) -> Session:
    """Deliver a person's input to the run that asked for it and resume the session."""
    if not isinstance(input, dict):
        raise LinnetError(errors.VALIDATION_ERROR, "`input` must be a JSON object.", status=422)
    with transaction.atomic():
        locked = Session.objects.select_for_update().get(pk=session.pk)
        if locked.state != SessionState.INPUT_REQUIRED:
            raise LinnetError(errors.NOT_AWAITING_INPUT, status=409)
        request = locked.pending_input or {}
        Session.objects.filter(pk=locked.pk).update(last_heartbeat_at=now or utcnow())
        session_input_received.send(sender=Session, session=locked, request=request, input=input)
        locked = session_transition(session=locked, to=SessionState.RUNNING)
    return locked
