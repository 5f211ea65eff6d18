"""The drain protocol: what a worker's drain writes while it holds a run.

claim (queued → running), progress (store and publish what the agent yielded, renew the
lease, read back a stop or an answer; an input request takes run and session to
input_required), finish. Each call checks the run is still this drain's: a run ended
elsewhere (its session ended, its lease lapsed) is let go without a write.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, TextField, Value
from django.db.models.functions import Concat

from agents_app.agents.base import AgentItem, Delta, InputRequest, Phase
from agents_app.models import DRAINING_RUN_STATUSES, Message, MessageRole, Run, RunStatus
from agents_app.services.transitions import run_and_session_lock, run_end_locked, run_transition
from sessions_app.clock import utcnow
from sessions_app.models import Session, SessionState
from sessions_app.services.events import events_append, events_append_one
from sessions_app.services.sessions import session_activate, session_transition

# Queued runs looked at per claim; more than one so a lost race moves on to the next.
CLAIM_SCAN = 16


def _lease_until(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.AGENT_RUN_LEASE_TTL_S)


def _held_by(run: Run, worker_id: str) -> bool:
    return run.is_draining and run.worker_id == worker_id


def run_claim(*, worker_id: str, now: datetime | None = None) -> Run | None:
    """Claim the oldest queued run whose session has no run draining; None when there is none."""
    draining = Run.objects.filter(session_id=OuterRef("session_id"), status__in=DRAINING_RUN_STATUSES)
    candidates = list(
        Run.objects.filter(status=RunStatus.QUEUED)
        .filter(~Exists(draining))
        .order_by("created_at")
        .values_list("pk", flat=True)[:CLAIM_SCAN]
    )
    for run_id in candidates:
        run = run_claim_one(run_id=run_id, worker_id=worker_id, now=now)
        if run is not None:
            return run
    return None


def run_claim_one(*, run_id: uuid.UUID | str, worker_id: str, now: datetime | None = None) -> Run | None:
    """Claim one queued run for `worker_id`; None when another claimer won or it is not claimable.

    1. Lock the session, which orders the claim against a finishing run and a new POST.
    2. queued → running with a conditional UPDATE (still queued, nothing else of the
       session draining); its row count says who won.
    3. Log the user's message and `run.started` in the same transaction.
    """
    now = now or utcnow()
    with transaction.atomic():
        locked = run_and_session_lock(run_id)
        if locked is None or locked[0].status != RunStatus.QUEUED:
            return None
        run, session = locked
        draining = Run.objects.filter(session_id=session.pk, status__in=DRAINING_RUN_STATUSES)
        won = run_transition(
            run=run,
            to=RunStatus.RUNNING,
            only_if=~Exists(draining),
            worker_id=worker_id,
            started_at=now,
            lease_expires_at=_lease_until(now),
        )
        if not won:
            return None
        if session.state == SessionState.PENDING:
            session_activate(session=session)
        if run.input.strip():
            Message.objects.create(session=session, run=run, role=MessageRole.USER, content=run.input)
        events_append_one(
            session_id=session.pk,
            type="run.started",
            data={"run_id": str(run.id), "agent": run.agent, "input": run.input},
        )
    return run


@dataclass(frozen=True)
class RunControl:
    """What a drain learns each time it writes or polls: go on, stop, take an answer, or let go."""

    lost: bool = False
    stop: bool = False
    answer: dict | None = None


def run_progress(
    *, run_id: uuid.UUID | str, worker_id: str, items: list[AgentItem], renew: bool, now: datetime | None = None
) -> RunControl:
    """Store and publish what a drain buffered, renew its lease, and read back its orders.

    Deltas are merged into one `run.delta` per write and appended to `Run.output` in the
    same transaction, so the partial on record always equals what subscribers were sent.
    `lost` means the run is no longer this drain's (finished, or interrupted after its
    lease lapsed): the drain must let it go without writing.
    """
    now = now or utcnow()
    owned = Run.objects.filter(pk=run_id, worker_id=worker_id, status__in=DRAINING_RUN_STATUSES)
    if items or renew:
        with transaction.atomic():
            locked = run_and_session_lock(run_id) if items else None
            if items and (locked is None or not _held_by(locked[0], worker_id)):
                return RunControl(lost=True)
            if locked is not None:
                _items_write(run=locked[0], session=locked[1], items=items)
            if renew and not owned.update(lease_expires_at=_lease_until(now)):
                return RunControl(lost=True)
    # A plain read outside a transaction: polling must not queue behind SQLite's write lock.
    row = owned.values("status", "stop_requested", "input_answer").first()
    if row is None:
        return RunControl(lost=True)
    answer = None
    if row["status"] == RunStatus.RUNNING and row["input_answer"] is not None:
        owned.update(input_answer=None)
        answer = row["input_answer"]
    return RunControl(stop=row["stop_requested"], answer=answer)


def _items_write(*, run: Run, session: Session, items: list[AgentItem]) -> None:
    """Store a drain's items in order: deltas merged into one `run.delta`, phases, an input request."""
    run_id = str(run.id)
    events: list[tuple[str, dict]] = []
    text: list[str] = []

    def close_text() -> None:
        if text:
            chunk = "".join(text)
            text.clear()
            events.append(("run.delta", {"run_id": run_id, "text": chunk}))
            Run.objects.filter(pk=run.pk).update(output=Concat(F("output"), Value(chunk), output_field=TextField()))

    for item in items:
        if isinstance(item, Delta):
            text.append(item.text)
        elif isinstance(item, Phase):
            close_text()
            events.append(("run.status", {"run_id": run_id, "phase": item.phase}))
            Run.objects.filter(pk=run.pk).update(phase=item.phase)
        elif isinstance(item, InputRequest):
            close_text()
            events_append(session_id=session.pk, items=events)
            events.clear()
            _input_request_log(run=run, session=session, request=item)
    close_text()
    events_append(session_id=session.pk, items=events)


def _input_request_log(*, run: Run, session: Session, request: InputRequest) -> None:
    """Take run and session to input_required, and log the `input_required` event clients answer."""
    session.refresh_from_db(fields=["state"])
    if session.state != SessionState.RUNNING:
        # Already waiting: the agent asked again before it was answered. (An ended session
        # never gets here: ending it ended this run under the same session lock.)
        return
    pending = {"run_id": str(run.id), **request.as_json()}
    run_transition(run=run, to=RunStatus.INPUT_REQUIRED, input_request=request.as_json(), input_answer=None)
    session_transition(session=session, to=SessionState.INPUT_REQUIRED, pending_input=pending)
    events_append_one(session_id=session.pk, type="input_required", data=pending)


def run_finish(
    *,
    run_id: uuid.UUID | str,
    worker_id: str,
    status: str,
    text: str = "",
    error: dict | None = None,
    now: datetime | None = None,
) -> Run | None:
    """End a run its drain still holds, with `text` the output it had not written yet.

    None when the run was no longer this drain's.
    """
    with transaction.atomic():
        locked = run_and_session_lock(run_id)
        if locked is None or not _held_by(locked[0], worker_id):
            return None
        return run_end_locked(run=locked[0], session=locked[1], status=status, text=text, error=error, now=now)
