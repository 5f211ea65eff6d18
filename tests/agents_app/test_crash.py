"""Crash safety: lapsed leases end runs `interrupted` with their partial; shutdown does the same at once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async

from agents_app.agents.base import Delta, InputField, InputRequest
from agents_app.models import Message, Run, RunStatus
from agents_app.services import maintenance, run_expire_once, run_progress
from sessions_app.clock import utcnow
from sessions_app.models import Session
from sessions_app.services.sessions import session_open
from tests.agents_app.conftest import alog, arun_row, arun_start, claimed_run, log, run_row, run_text, worker_lease
from tests.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)


def _claimed_run() -> Run:
    """A run claimed by a worker that will write a little and then die."""
    session, _ = session_open(kind="agent")
    return claimed_run(session, worker_id=worker_lease("w-dead"), input="go")


def test_a_run_whose_lease_lapsed_ends_interrupted_with_its_partial():
    run = _claimed_run()
    run_progress(run_id=run.id, worker_id="w-dead", items=[Delta("stored "), Delta("so far")], renew=False)
    lease = run_row(run.id).lease_expires_at

    assert run_expire_once(now=lease - timedelta(seconds=1)) == 0
    assert run_row(run.id).status == RunStatus.RUNNING
    assert run_expire_once(now=lease + timedelta(seconds=1)) == 1

    ended = run_row(run.id)
    assert ended.status == RunStatus.INTERRUPTED
    assert ended.error["code"] == "worker_lost"
    assert ended.ended_at == lease + timedelta(seconds=1)
    events = log(run.session_id)
    done = events[-1]
    assert done["type"] == "run.done" and done["data"]["status"] == "interrupted"
    assert done["data"]["message"]["content"] == "stored so far" == run_text(events, run.id)
    assert "error" not in done["data"]
    assert Message.objects.get(run=run, role="assistant").content == "stored so far"
    # The old drain, should it wake up, finds the run gone and writes nothing more.
    assert run_progress(run_id=run.id, worker_id="w-dead", items=[Delta("late")], renew=True).lost
    assert log(run.session_id) == events


def test_a_lease_renewed_between_the_scan_and_the_lock_keeps_the_run(monkeypatch):
    run = _claimed_run()
    later = utcnow() + timedelta(minutes=5)
    lock = maintenance.run_and_session_lock

    def renewed_first(run_id):
        # The drain renews just after the expiry pass listed the run as expired.
        Run.objects.filter(pk=run_id).update(lease_expires_at=later + timedelta(minutes=1))
        return lock(run_id)

    monkeypatch.setattr(maintenance, "run_and_session_lock", renewed_first)

    assert run_expire_once(now=later) == 0
    assert run_row(run.id).status == RunStatus.RUNNING


def test_an_interrupted_run_that_waited_for_input_resumes_its_session():
    run = _claimed_run()
    question = InputRequest(fields=(InputField("focus", "text", "Focus?"),), reason="why")
    run_progress(run_id=run.id, worker_id="w-dead", items=[question], renew=False)
    assert Session.objects.get(pk=run.session_id).state == "input_required"

    assert run_expire_once(now=utcnow() + timedelta(minutes=5)) == 1

    session = Session.objects.get(pk=run.session_id)
    assert session.state == "running" and session.pending_input is None
    assert run_row(run.id).status == RunStatus.INTERRUPTED


async def test_a_drain_whose_run_was_taken_over_lets_go_without_writing(live_run, pool):
    live = await live_run()
    await live.stream("before")

    # Another worker decides this drain is dead (as after a long pause) and ends the run.
    assert await database_sync_to_async(run_expire_once)(now=utcnow() + timedelta(minutes=5)) == 1
    live.agent.feed(Delta("after"))
    await until(lambda: str(live.id) not in pool.drains, timeout=2, what="the drain to let go")

    events = await alog(live.session.id)
    assert [e["data"]["status"] for e in events if e["type"] == "run.done"] == ["interrupted"]
    assert "after" not in run_text(events, live.id)


async def test_shutdown_ends_in_flight_runs_interrupted_with_their_partial(live_run, pool, amake_session):
    writing, asking = await live_run("writer"), await live_run("asker")
    await writing.stream("stored")
    asking.agent.feed(InputRequest(fields=(InputField("focus", "text", "Focus?"),), reason="why"))
    await until(lambda: asking.row().status == RunStatus.INPUT_REQUIRED)
    write = await writing.hold(" and", " buffered")
    drain = pool.drains[str(writing.id)]

    async def interrupted() -> bool:
        return drain.interrupting

    shutdown = asyncio.create_task(pool.shutdown())
    await until(interrupted, timeout=2, what="the shutdown to interrupt the drain")
    # The write in flight stores " and"; " buffered" was still in the buffer when the drain was interrupted.
    write.set()
    await shutdown

    assert not pool.drains
    third, _ = await amake_session(kind="agent")
    queued = await arun_start(session=third, input="", agent="notes")
    assert await pool.claim_once() == 0
    assert (await arun_row(queued.id)).status == RunStatus.QUEUED
    for live, partial in ((writing, "stored and buffered"), (asking, "")):
        ended = await arun_row(live.id)
        assert ended.status == RunStatus.INTERRUPTED and ended.error["code"] == "worker_shutdown"
        done = (await alog(live.session.id, "run.done"))[-1]["data"]
        assert done["status"] == "interrupted" and done["message"]["content"] == partial
    assert (await database_sync_to_async(Session.objects.get)(pk=asking.session.id)).state == "running"
