"""The run state machine's one write path, and the end every run comes to.

Every write that touches a run and its session locks the session row first, the order
session_transition and events_append already use, so concurrent writers never deadlock.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db.models import Q

from agents_app.errors import IllegalRunTransition
from agents_app.models import IN_FLIGHT_RUN_STATUSES, Message, MessageRole, Run, RunStatus
from agents_app.services.wakeups import claimers_wake_on_commit
from sessions_app.clock import utcnow
from sessions_app.models import Session, SessionState
from sessions_app.services.events import events_append
from sessions_app.services.sessions import session_transition


def run_and_session_lock(run_id: uuid.UUID | str) -> tuple[Run, Session] | None:
    """Lock a run's session, then the run (inside a transaction); None for an unknown run."""
    session_id = Run.objects.filter(pk=run_id).values_list("session_id", flat=True).first()
    if session_id is None:
        return None
    session = Session.objects.select_for_update().get(pk=session_id)
    # The output can be long and is only ever appended to in SQL, never read here.
    run = Run.objects.select_for_update().defer("output").get(pk=run_id)
    return run, session


def runs_in_flight_locked(*, session_id: uuid.UUID) -> list[Run]:
    """Lock and return a session's runs in flight, oldest first (its session row already locked)."""
    runs = Run.objects.select_for_update().defer("output")
    return list(runs.filter(session_id=session_id, status__in=IN_FLIGHT_RUN_STATUSES).order_by("created_at"))


def run_transition(*, run: Run, to: str, only_if: Q | None = None, **fields: Any) -> bool:
    """Move a run from the status it was read with to `to`, writing `fields` with it.

    One conditional UPDATE: it matches only while the row still has that status (and
    `only_if` holds), so its row count says whether this write won. `run` is updated to
    match when it did. Raises IllegalRunTransition, writing nothing, for an edge
    RUN_TRANSITIONS does not have.
    """
    if not run.can_transition_to(to):
        raise IllegalRunTransition(run.status, to)
    rows = Run.objects.filter(pk=run.pk, status=run.status)
    if only_if is not None:
        rows = rows.filter(only_if)
    if not rows.update(status=to, **fields):
        return False
    run.status = to
    for name, value in fields.items():
        setattr(run, name, value)
    return True


def run_end_locked(
    *, run: Run, session: Session, status: str, text: str = "", error: dict | None = None, now: datetime | None = None
) -> Run:
    """Finish a run in flight whose session and run rows this transaction has locked.

    1. Save the output (what was stored plus `text`) as the assistant's message.
    2. Mark the run finished, which frees its session for the next queued run.
    3. Log the last delta and `run.done`, which carries the whole output.
    4. Resume a session that was waiting on this run's input, and wake the claimers.
    """
    now = now or utcnow()
    output = Run.objects.filter(pk=run.pk).values_list("output", flat=True).get() + text
    message = (
        Message.objects.create(session_id=session.pk, run_id=run.pk, role=MessageRole.ASSISTANT, content=output)
        if output
        else None
    )
    run_transition(
        run=run,
        to=status,
        ended_at=now,
        error=error,
        output=output,
        input_request=None,
        input_answer=None,
        lease_expires_at=None,
    )
    done: dict = {
        "run_id": str(run.id),
        "status": status,
        "message": {"id": str(message.id) if message else None, "role": MessageRole.ASSISTANT, "content": output},
    }
    if status == RunStatus.ERROR:
        done["error"] = error
    items = [("run.delta", {"run_id": str(run.id), "text": text})] if text else []
    events_append(session_id=session.pk, items=[*items, ("run.done", done)])
    if session.state == SessionState.INPUT_REQUIRED and (session.pending_input or {}).get("run_id") == str(run.id):
        session_transition(session=session, to=SessionState.RUNNING)
    if Run.objects.filter(session_id=session.pk, status=RunStatus.QUEUED).exists():
        claimers_wake_on_commit()
    return Run.objects.get(pk=run.pk)
