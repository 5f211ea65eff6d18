"""The run state machine: run_transition takes every edge of RUN_TRANSITIONS and no other."""

from __future__ import annotations

import itertools

import pytest
from django.db.models import Q

from agents_app.errors import IllegalRunTransition
from agents_app.models import (
    DRAINING_RUN_STATUSES,
    FINISHED_RUN_STATUSES,
    RUN_TRANSITIONS,
    Run,
    RunStatus,
)
from agents_app.services import run_transition

pytestmark = pytest.mark.django_db

ALL_STATUSES = [status.value for status in RunStatus]
LEGAL = sorted((src, dst) for src, targets in RUN_TRANSITIONS.items() for dst in targets)
ILLEGAL = sorted(
    (src, dst) for src, dst in itertools.product(ALL_STATUSES, ALL_STATUSES) if dst not in RUN_TRANSITIONS[src]
)


@pytest.fixture
def run_in(make_session):
    def make(status: str) -> Run:
        session, _ = make_session(kind="agent")
        return Run.objects.create(session=session, agent="notes", status=status)

    return make


@pytest.mark.parametrize(("src", "dst"), LEGAL)
def test_a_legal_edge_moves_the_run_and_writes_its_fields(run_in, src, dst):
    run = run_in(src)

    assert run_transition(run=run, to=dst, phase="moved")

    assert run.status == dst and run.phase == "moved"
    stored = Run.objects.get(pk=run.pk)
    assert (stored.status, stored.phase) == (dst, "moved")


@pytest.mark.parametrize(("src", "dst"), ILLEGAL)
def test_an_illegal_edge_raises_and_writes_nothing(run_in, src, dst):
    run = run_in(src)

    with pytest.raises(IllegalRunTransition) as raised:
        run_transition(run=run, to=dst, phase="moved")

    assert (raised.value.from_status, raised.value.to_status) == (src, dst)
    assert raised.value.code == "illegal_transition"
    stored = Run.objects.get(pk=run.pk)
    assert (stored.status, stored.phase) == (src, "")
    assert run.status == src


def test_a_stale_read_loses_the_write(run_in):
    run = run_in(RunStatus.QUEUED)
    # Another writer (a stop, say) got there first.
    Run.objects.filter(pk=run.pk).update(status=RunStatus.STOPPED)

    assert not run_transition(run=run, to=RunStatus.RUNNING, phase="claimed")

    stored = Run.objects.get(pk=run.pk)
    assert (stored.status, stored.phase) == (RunStatus.STOPPED, "")
    assert run.status == RunStatus.QUEUED


def test_a_condition_that_does_not_hold_loses_the_write(run_in):
    run = run_in(RunStatus.QUEUED)

    assert not run_transition(run=run, to=RunStatus.RUNNING, only_if=Q(stop_requested=True))
    assert Run.objects.get(pk=run.pk).status == RunStatus.QUEUED

    assert run_transition(run=run, to=RunStatus.RUNNING, only_if=Q(stop_requested=False))
    assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING


def test_the_table_is_the_documented_lifecycle():
    # queued → running ⇄ input_required → done | stopped | error | interrupted; a stop before pickup.
    assert RUN_TRANSITIONS[RunStatus.QUEUED] == {RunStatus.RUNNING, RunStatus.STOPPED}
    assert RUN_TRANSITIONS[RunStatus.RUNNING] == {RunStatus.INPUT_REQUIRED, *FINISHED_RUN_STATUSES}
    assert RUN_TRANSITIONS[RunStatus.INPUT_REQUIRED] == {RunStatus.RUNNING, *FINISHED_RUN_STATUSES}
    assert all(RUN_TRANSITIONS[status] == frozenset() for status in FINISHED_RUN_STATUSES)
    assert set(RUN_TRANSITIONS) == set(ALL_STATUSES)
    assert DRAINING_RUN_STATUSES | FINISHED_RUN_STATUSES | {RunStatus.QUEUED} == set(ALL_STATUSES)
    assert len(LEGAL) + len(ILLEGAL) == len(ALL_STATUSES) ** 2
