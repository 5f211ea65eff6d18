"""Compaction: a finished run's deltas go after RUN_EVICT_GRACE_S, only its own, and never under a watcher."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agents_app.agents.base import Delta
from agents_app.models import Run
from agents_app.services import compact_once, run_finish, run_progress
from sessions_app.clock import utcnow
from sessions_app.services.events import events_append_one
from sessions_app.services.presence import subscription_close, subscription_open
from sessions_app.services.sessions import session_open
from tests.agents_app.conftest import claimed_run, log, worker_lease

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def grace(settings) -> int:
    # Short enough that a real subscriber's presence lease (30 s) is still live at `now`.
    settings.RUN_EVICT_GRACE_S = 5
    return settings.RUN_EVICT_GRACE_S


@pytest.fixture
def worker() -> str:
    return worker_lease()


def _drained_run(session, worker: str, *texts: str, finish: bool = True) -> Run:
    run = claimed_run(session, worker_id=worker)
    for text in texts:
        run_progress(run_id=run.id, worker_id=worker, items=[Delta(text)], renew=False)
    if finish:
        run_finish(run_id=run.id, worker_id=worker, status="done")
    return Run.objects.get(pk=run.id)


def _types_of(session_id, run_id) -> list[str]:
    return [e["type"] for e in log(session_id) if e["data"].get("run_id") == str(run_id)]


def test_compaction_deletes_only_the_finished_runs_deltas_after_the_grace(worker, grace):
    session, _ = session_open(kind="agent")
    old = _drained_run(session, worker, "a", "b")
    # A stray delta naming no run, and the next run still streaming: neither is old's to delete.
    events_append_one(session_id=session.id, type="run.delta", data={"text": "no run id"})
    new = _drained_run(session, worker, "c", finish=False)

    assert compact_once(now=old.ended_at + timedelta(seconds=grace - 1)) == 0
    assert _types_of(session.id, old.id).count("run.delta") == 2

    assert compact_once(now=old.ended_at + timedelta(seconds=grace + 1)) == 1

    assert _types_of(session.id, old.id) == ["run.started", "run.done"]
    assert _types_of(session.id, new.id) == ["run.started", "run.delta"]
    assert [e["data"] for e in log(session.id, "run.delta") if "run_id" not in e["data"]] == [{"text": "no run id"}]
    assert log(session.id, "run.done")[0]["data"]["message"]["content"] == "ab"
    assert Run.objects.get(pk=old.id).compacted_at is not None
    assert compact_once(now=old.ended_at + timedelta(seconds=grace + 2)) == 0


def test_compaction_waits_while_the_session_has_a_live_subscriber(worker, grace):
    session, _ = session_open(kind="agent")
    run = _drained_run(session, worker, "kept")
    subscription = subscription_open(session=session, transport="ws")
    after_grace = run.ended_at + timedelta(seconds=grace + 1)

    assert compact_once(now=after_grace) == 0
    assert "run.delta" in _types_of(session.id, run.id)

    subscription_close(subscription_id=subscription)
    assert compact_once(now=after_grace) == 1
    assert "run.delta" not in _types_of(session.id, run.id)


def test_a_run_still_in_flight_is_never_compacted(worker, grace):
    session, _ = session_open(kind="agent")
    run = _drained_run(session, worker, "streaming", finish=False)

    assert compact_once(now=utcnow() + timedelta(days=1)) == 0
    assert _types_of(session.id, run.id) == ["run.started", "run.delta"]
