"""What people and sessions ask of runs: start one, stop one, stop a session's, answer one."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from agents_app import errors
from agents_app.agents import AGENTS
from agents_app.models import Run, RunStatus
from agents_app.services.transitions import (
    run_and_session_lock,
    run_end_locked,
    run_transition,
    runs_in_flight_locked,
)
from agents_app.services.wakeups import claimers_wake_on_commit, drain_wake_on_commit
from sessions_app import errors as session_errors
from sessions_app.errors import LinnetError
from sessions_app.models import Session


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
        for previous in runs_in_flight_locked(session_id=locked.pk):
            _run_stop_locked(run=previous, session=locked)
        run = Run.objects.create(session=locked, agent=agent, input=input)
        claimers_wake_on_commit()
    return run


def _run_stop_locked(*, run: Run, session: Session) -> bool:
    if run.status == RunStatus.QUEUED:
        # No worker has it: end it here, and the conditional claim can no longer pick it.
        run_end_locked(run=run, session=session, status=RunStatus.STOPPED)
        return True
    if run.is_draining:
        if not run.stop_requested:
            Run.objects.filter(pk=run.pk).update(stop_requested=True)
            drain_wake_on_commit(run_id=run.id)
        return True
    return False


def run_stop(*, run: Run) -> bool:
    """Stop a run: a queued one ends now, a draining one is ended by its drain with its partial.

    Returns False for a run that had already finished.
    """
    with transaction.atomic():
        locked = run_and_session_lock(run.pk)
        return locked is not None and _run_stop_locked(run=locked[0], session=locked[1])


def runs_stop_for_session(*, session: Session) -> None:
    """End every run in flight in a session that is ending `stopped` (inside its transaction).

    A draining run is ended here too, with the output its drain has stored, rather than at
    its drain's next poll: so its `run.done` is logged before `session.ended` and reaches
    live subscribers before they are closed. Its drain then finds the run taken over and
    lets go; text it had not written yet (what arrived during its last write) is dropped.
    """
    for run in runs_in_flight_locked(session_id=session.pk):
        draining = run.is_draining
        run_end_locked(run=run, session=session, status=RunStatus.STOPPED, now=session.ended_at)
        if draining:
            # Its drain lets go now, closing the agent, rather than at its next poll.
            drain_wake_on_commit(run_id=run.id)


def run_input_deliver(*, session: Session, request: dict, input: dict) -> None:
    """Give a person's answer to the run that asked for it (inside session_input's transaction)."""
    run_id = (request or {}).get("run_id")
    if not run_id:
        return
    run = Run.objects.filter(pk=run_id, session_id=session.pk).defer("output").first()
    if run is None or run.status != RunStatus.INPUT_REQUIRED:
        return
    if run_transition(run=run, to=RunStatus.RUNNING, input_request=None, input_answer=input):
        drain_wake_on_commit(run_id=run.id)
