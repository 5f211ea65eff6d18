"""Run writes: start, stop, claim, progress, finish, lease expiry, compaction.

Every write that touches a run and its session locks the session row first, the order
session_transition and events_append already use, so concurrent writers never deadlock.
Layer messages only wake drains and claimers sooner; both also poll, so a lost message
costs latency, never correctness.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, TextField, Value
from django.db.models.functions import Concat

from agents_app import conf, errors
from agents_app.agents import AGENTS
from agents_app.agents.base import AgentItem, Delta, InputRequest, Phase
from agents_app.models import (
    DRAINING_RUN_STATUSES,
    FINISHED_RUN_STATUSES,
    IN_FLIGHT_RUN_STATUSES,
    Message,
    MessageRole,
    Run,
    RunStatus,
)
from sessions_app import errors as session_errors
from sessions_app.clock import utcnow
from sessions_app.errors import LinnetError
from sessions_app.models import Event, Session, SessionState
from sessions_app.services.events import events_append, events_append_one, group_send_on_commit
from sessions_app.services.presence import live_subscriptions
from sessions_app.services.sessions import session_activate, session_transition

logger = logging.getLogger(__name__)

# Every drain pool listens on this group for "a run may be claimable now".
CLAIM_GROUP = "agents.claims"
LAYER_RUNS_CLAIMABLE = "runs.claimable"
# Sent to one run's group when its row changed under its drain (stop requested, input answered).
LAYER_RUN_CHANGED = "run.changed"
# Queued runs looked at per claim; more than one so a lost race moves on to the next.
CLAIM_SCAN = 16
COMPACT_BATCH = 200


def run_group_name(run_id: uuid.UUID | str) -> str:
    return f"agents.run.{run_id}"


def _notify_on_commit(group: str, message: dict) -> None:
    group_send_on_commit(group, message, failure=f"waking {group} failed; it will notice on its next poll")


def _lock(run_id: uuid.UUID | str) -> tuple[Run, Session] | None:
    """Lock a run's session, then the run (inside a transaction); None for an unknown run."""
    session_id = Run.objects.filter(pk=run_id).values_list("session_id", flat=True).first()
    if session_id is None:
        return None
    session = Session.objects.select_for_update().get(pk=session_id)
    # The output can be long and is only ever appended to in SQL, never read here.
    run = Run.objects.select_for_update().defer("output").get(pk=run_id)
    return run, session


def _in_flight_locked(*, session_id: uuid.UUID) -> list[Run]:
    runs = Run.objects.select_for_update().defer("output")
    return list(runs.filter(session_id=session_id, status__in=IN_FLIGHT_RUN_STATUSES).order_by("created_at"))


def _held(run: Run, worker_id: str) -> bool:
    return run.is_draining and run.worker_id == worker_id


def run_start(*, session: Session, input: str, agent: str | None = None) -> Run:
    """Queue a run in a live session, stopping any run still in flight there.

    The new run is only claimed once no other run of its session is draining, so the old
    run's `run.done` (its partial saved) is logged before the new run's `run.started`.
    """
    agent = agent or settings.LINNET_AGENT
    if agent not in AGENTS:
        raise LinnetError(
            errors.UNKNOWN_AGENT, f"No agent named {agent!r}; the agents are: {', '.join(sorted(AGENTS))}.", status=422
        )
    with transaction.atomic():
        locked = Session.objects.select_for_update().get(pk=session.pk)
        if locked.is_terminal:
            raise LinnetError(session_errors.SESSION_NOT_ACTIVE, status=409)
        for previous in _in_flight_locked(session_id=locked.pk):
            _stop_locked(run=previous, session=locked)
        run = Run.objects.create(session=locked, agent=agent, input=input)
        _notify_on_commit(CLAIM_GROUP, {"type": LAYER_RUNS_CLAIMABLE})
    return run


def _stop_locked(*, run: Run, session: Session) -> bool:
    if run.status == RunStatus.QUEUED:
        # No worker has it: end it here, and the conditional claim can no longer pick it.
        _end(run=run, session=session, status=RunStatus.STOPPED)
        return True
    if run.is_draining:
        if not run.stop_requested:
            Run.objects.filter(pk=run.pk).update(stop_requested=True)
            _notify_on_commit(run_group_name(run.id), {"type": LAYER_RUN_CHANGED, "run_id": str(run.id)})
        return True
    return False


def run_stop(*, run: Run) -> bool:
    """Stop a run: a queued one ends now, a draining one is ended by its drain with its partial.

    Returns False for a run that had already finished.
    """
    with transaction.atomic():
        locked = _lock(run.pk)
        return locked is not None and _stop_locked(run=locked[0], session=locked[1])


def runs_stop_for_session(*, session: Session) -> None:
    """End every run in flight in a session that is ending `stopped` (inside its transaction).

    A draining run is ended here too, with the output its drain has stored, rather than at
    its drain's next poll: so its `run.done` is logged before `session.ended` and reaches
    live subscribers before they are closed. Its drain then finds the run taken over and
    lets go; text it had not flushed yet (at most AGENT_DELTA_FLUSH_S of output) is dropped.
    """
    for run in _in_flight_locked(session_id=session.pk):
        _end(run=run, session=session, status=RunStatus.STOPPED, now=session.ended_at)
        if run.is_draining:
            # Its drain lets go now, closing the agent, rather than at its next poll.
            _notify_on_commit(run_group_name(run.id), {"type": LAYER_RUN_CHANGED, "run_id": str(run.id)})


def run_input_deliver(*, session: Session, request: dict, input: dict) -> None:
    """Hand a person's answer to the run that asked for it (inside session_input's transaction)."""
    run_id = (request or {}).get("run_id")
    if not run_id:
        return
    delivered = Run.objects.filter(pk=run_id, session_id=session.pk, status=RunStatus.INPUT_REQUIRED).update(
        status=RunStatus.RUNNING, input_request=None, input_answer=input
    )
    if delivered:
        _notify_on_commit(run_group_name(run_id), {"type": LAYER_RUN_CHANGED, "run_id": str(run_id)})


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
        locked = _lock(run_id)
        if locked is None:
            return None
        _, session = locked
        draining = Run.objects.filter(session_id=session.pk, status__in=DRAINING_RUN_STATUSES)
        won = (
            Run.objects.filter(pk=run_id, status=RunStatus.QUEUED)
            .filter(~Exists(draining))
            .update(
                status=RunStatus.RUNNING,
                worker_id=worker_id,
                started_at=now,
                lease_expires_at=now + timedelta(seconds=conf.run_lease_ttl_s()),
            )
        )
        if not won:
            return None
        run = Run.objects.get(pk=run_id)
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
            locked = _lock(run_id) if items else None
            if items and (locked is None or not _held(locked[0], worker_id)):
                return RunControl(lost=True)
            if locked is not None:
                _write_items(run=locked[0], session=locked[1], items=items)
            if renew and not owned.update(lease_expires_at=now + timedelta(seconds=conf.run_lease_ttl_s())):
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


def _write_items(*, run: Run, session: Session, items: list[AgentItem]) -> None:
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
            _ask(run=run, session=session, request=item)
    close_text()
    events_append(session_id=session.pk, items=events)


def _ask(*, run: Run, session: Session, request: InputRequest) -> None:
    """run and session → input_required, and the `input_required` event for clients."""
    session.refresh_from_db(fields=["state"])
    if session.state != SessionState.RUNNING:
        # Already waiting: the agent asked again before it was answered. (An ended session
        # never gets here: ending it ended this run under the same session lock.)
        return
    pending = {"run_id": str(run.id), **request.as_json()}
    Run.objects.filter(pk=run.pk).update(
        status=RunStatus.INPUT_REQUIRED, input_request=request.as_json(), input_answer=None
    )
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
        locked = _lock(run_id)
        if locked is None or not _held(locked[0], worker_id):
            return None
        return _end(run=locked[0], session=locked[1], status=status, text=text, error=error, now=now)


def _end(
    *, run: Run, session: Session, status: str, text: str = "", error: dict | None = None, now: datetime | None = None
) -> Run:
    """Finish a locked run.

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
    Run.objects.filter(pk=run.pk).update(
        status=status,
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
        _notify_on_commit(CLAIM_GROUP, {"type": LAYER_RUNS_CLAIMABLE})
    return Run.objects.get(pk=run.pk)


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
            locked = _lock(run_id)
            if locked is None:
                continue
            run, session = locked
            # Re-read under the lock: the drain may have renewed since the scan.
            if not run.is_draining or run.lease_expires_at >= now:
                continue
            lost = errors.error_json(errors.WORKER_LOST)
            _end(run=run, session=session, status=RunStatus.INTERRUPTED, error=lost, now=now)
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
