"""Claims: however many workers race for queued runs, each run is drained exactly once."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import pytest
from channels.db import database_sync_to_async
from django.db import connection

from agents_app.models import Run, RunStatus
from agents_app.services import run_claim, run_claim_one, run_start, run_stop
from sessions_app.models import Event
from sessions_app.services.events import events_append_one
from sessions_app.services.sessions import session_open
from tests.agents_app.conftest import drained, worker_lease

pytestmark = pytest.mark.django_db(transaction=True)


def _queued_runs(count: int) -> list[Run]:
    """Notes runs in sessions with a tone heard, so none of them stops to ask a question."""
    runs = []
    for _ in range(count):
        session, _ = session_open(kind="agent")
        events_append_one(session_id=session.id, type="tone", data={"label": "calm", "start": 0.0, "end": 1.0})
        runs.append(run_start(session=session, input="", agent="notes"))
    return runs


def test_the_losing_claimer_of_a_run_gets_nothing():
    first, second = worker_lease("w-1"), worker_lease("w-2")
    (run,) = _queued_runs(1)

    won = run_claim_one(run_id=run.id, worker_id=first)
    lost = run_claim_one(run_id=run.id, worker_id=second)

    assert won is not None and won.worker_id == first
    assert lost is None
    assert Run.objects.get(pk=run.id).worker_id == first
    assert Event.objects.filter(type="run.started", data__run_id=str(run.id)).count() == 1


def test_two_claimers_racing_in_threads_never_claim_one_run_twice():
    workers = [worker_lease("w-a"), worker_lease("w-b")]
    runs = _queued_runs(30)
    start = threading.Barrier(len(workers))
    claims: dict[str, list] = {w: [] for w in workers}

    def claim_all(worker_id: str) -> None:
        try:
            start.wait()
            while (run := run_claim(worker_id=worker_id)) is not None:
                claims[worker_id].append(run.id)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim_all, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    claimed = [run_id for ids in claims.values() for run_id in ids]
    assert sorted(map(str, claimed)) == sorted(str(r.id) for r in runs)
    assert set(claims["w-a"]).isdisjoint(claims["w-b"])
    started = Counter(e.data["run_id"] for e in Event.objects.filter(type="run.started"))
    assert set(started.values()) == {1}
    assert {r.worker_id for r in Run.objects.all()} <= set(workers)


def test_a_run_stopped_after_a_claimer_saw_it_queued_is_not_claimed():
    worker = worker_lease("w-1")
    (run,) = _queued_runs(1)
    run_stop(run=run)

    assert run_claim_one(run_id=run.id, worker_id=worker) is None
    assert Run.objects.get(pk=run.id).status == RunStatus.STOPPED
    assert not Event.objects.filter(type="run.started").exists()


def test_a_queued_run_waits_while_another_run_of_its_session_drains():
    worker = worker_lease("w-1")
    session, _ = session_open(kind="agent")
    first = run_start(session=session, input="", agent="notes")
    assert run_claim(worker_id=worker).id == first.id
    # Queued behind it without run_start's stop, as a second POST racing the first would be.
    second = Run.objects.create(session=session, agent="notes")

    assert run_claim(worker_id=worker) is None
    assert run_claim_one(run_id=second.id, worker_id=worker) is None
    assert Run.objects.get(pk=second.id).status == RunStatus.QUEUED


async def test_two_drain_pools_drain_each_run_exactly_once(pools):
    runs = await database_sync_to_async(_queued_runs)(12)
    left, right = (
        pools(worker_id=await database_sync_to_async(worker_lease)("w-left")),
        pools(worker_id=await database_sync_to_async(worker_lease)("w-right")),
    )

    await asyncio.gather(left.claim_once(), right.claim_once(), left.claim_once(), right.claim_once())
    await asyncio.gather(drained(left), drained(right))

    def outcome() -> tuple[Counter, Counter, set]:
        started = Counter(e.data["run_id"] for e in Event.objects.filter(type="run.started"))
        done = Counter(e.data["run_id"] for e in Event.objects.filter(type="run.done"))
        return started, done, set(Run.objects.values_list("status", flat=True))

    started, done, statuses = await database_sync_to_async(outcome)()
    assert set(started) == set(done) == {str(r.id) for r in runs}
    assert set(started.values()) == set(done.values()) == {1}
    assert statuses == {RunStatus.DONE}
