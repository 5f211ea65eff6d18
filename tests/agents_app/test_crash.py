"""Crash safety: lapsed leases end runs `interrupted` with their partial; shutdown does the same at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async

from agents_app import services
from agents_app.agents.base import Delta, InputField, InputRequest
from agents_app.models import Message, Run, RunStatus
from agents_app.services import run_claim, run_expire_once, run_progress, run_start
from sessions_app.clock import utcnow
from sessions_app.models import ProcessLease, Session
from sessions_app.services.sessions import session_open
from tests.agents_app.conftest import alog, log, run_text, until

pytestmark = pytest.mark.django_db(transaction=True)

_run_start = database_sync_to_async(run_start)


def _run(run_id) -> Run:
    return Run.objects.get(pk=run_id)


def _claimed_run() -> Run:
    now = utcnow()
    ProcessLease.objects.create(
        id="w-dead", role="worker", hostname="test", pid=1, started_at=now, lease_expires_at=now + timedelta(seconds=30)
    )
    session, _ = session_open(kind="agent")
    run_start(session=session, input="go", agent="notes")
    return run_claim(worker_id="w-dead")


def test_a_run_whose_lease_lapsed_ends_interrupted_with_its_partial():
    run = _claimed_run()
    run_progress(run_id=run.id, worker_id="w-dead", items=[Delta("stored "), Delta("so far")], renew=False)
    lease = _run(run.id).lease_expires_at

    assert run_expire_once(now=lease - timedelta(seconds=1)) == 0
    assert _run(run.id).status == RunStatus.RUNNING
    assert run_expire_once(now=lease + timedelta(seconds=1)) == 1

    ended = _run(run.id)
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
    lock = services._lock

    def renewed_first(run_id):
        # The drain renews just after the expiry pass listed the run as expired.
        Run.objects.filter(pk=run_id).update(lease_expires_at=later + timedelta(minutes=1))
        return lock(run_id)

    monkeypatch.setattr(services, "_lock", renewed_first)

    assert run_expire_once(now=later) == 0
    assert _run(run.id).status == RunStatus.RUNNING


def test_an_interrupted_run_that_waited_for_input_resumes_its_session():
    run = _claimed_run()
    question = InputRequest(fields=(InputField("focus", "text", "Focus?"),), reason="why")
    run_progress(run_id=run.id, worker_id="w-dead", items=[question], renew=False)
    assert Session.objects.get(pk=run.session_id).state == "input_required"

    assert run_expire_once(now=utcnow() + timedelta(minutes=5)) == 1

    session = Session.objects.get(pk=run.session_id)
    assert session.state == "running" and session.pending_input is None
    assert _run(run.id).status == RunStatus.INTERRUPTED


async def test_a_drain_whose_run_was_taken_over_lets_go_without_writing(amake_session, pool, scripted):
    agent = scripted()
    session, _ = await amake_session(kind="agent")
    run = await _run_start(session=session, input="go", agent="scripted")
    await pool.claim_once()
    agent.feed(Delta("before"))
    await until(lambda: _run(run.id).output == "before")

    # Another worker decides this drain is dead (as after a long pause) and ends the run.
    assert await database_sync_to_async(run_expire_once)(now=utcnow() + timedelta(minutes=5)) == 1
    agent.feed(Delta("after"))
    await until(lambda: str(run.id) not in pool.drains, timeout=2, what="the drain to let go")

    events = await alog(session.id)
    assert [e["data"]["status"] for e in events if e["type"] == "run.done"] == ["interrupted"]
    assert "after" not in run_text(events, run.id)


async def test_shutdown_ends_in_flight_runs_interrupted_with_their_partial(amake_session, pool, scripted, settings):
    writer, asker = scripted("writer"), scripted("asker")
    first, _ = await amake_session(kind="agent")
    second, _ = await amake_session(kind="agent")
    writing = await _run_start(session=first, input="go", agent="writer")
    asking = await _run_start(session=second, input="go", agent="asker")
    await pool.claim_once()
    writer.feed(Delta("stored"))
    asker.feed(InputRequest(fields=(InputField("focus", "text", "Focus?"),), reason="why"))
    await until(lambda: _run(writing.id).output == "stored")
    await until(lambda: _run(asking.id).status == RunStatus.INPUT_REQUIRED)
    settings.AGENT_DELTA_FLUSH_S = 60
    writer.feed(Delta(" and buffered"))
    await until(lambda: pool.drains[str(writing.id)].buffer, what="the delta to be buffered")

    await pool.shutdown()

    assert not pool.drains
    third, _ = await amake_session(kind="agent")
    queued = await _run_start(session=third, input="", agent="notes")
    assert await pool.claim_once() == 0
    assert (await database_sync_to_async(_run)(queued.id)).status == RunStatus.QUEUED
    for run, partial in ((writing, "stored and buffered"), (asking, "")):
        ended = await database_sync_to_async(_run)(run.id)
        assert ended.status == RunStatus.INTERRUPTED and ended.error["code"] == "worker_shutdown"
        done = (await alog(run.session_id, "run.done"))[-1]["data"]
        assert done["status"] == "interrupted" and done["message"]["content"] == partial
    assert (await database_sync_to_async(Session.objects.get)(pk=second.id)).state == "running"
