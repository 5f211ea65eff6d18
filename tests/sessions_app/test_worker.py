import asyncio

import pytest
from channels.db import database_sync_to_async

from sessions_app.models import ProcessLease
from sessions_app.plugins import Loop
from sessions_app.services.presence import PROCESS
from sessions_app.worker import WorkerLoops, session_loops

pytestmark = pytest.mark.django_db(transaction=True)


async def test_each_loop_pass_is_recorded_on_the_worker_row_and_stop_runs_hooks():
    passes = []
    stopped = []

    async def count_pass() -> int:
        passes.append(1)
        return 7

    async def on_shutdown() -> None:
        stopped.append(True)

    worker = WorkerLoops([*session_loops(), Loop("probe", lambda: 3600, count_pass, on_shutdown)])
    running = asyncio.create_task(worker.run())
    while not passes:
        await asyncio.sleep(0.01)
    row_id = PROCESS.lease_id
    await worker.stop()
    await running

    row = await database_sync_to_async(ProcessLease.objects.get)(pk=row_id)
    assert {"reap", "gc", "sweep", "probe"} <= set(row.passes)
    assert row.passes["probe"]["count"] == 7
    # The interval goes with the pass: the live console tells a lagging loop by it.
    assert row.passes["probe"]["every_s"] == 3600
    assert stopped == [True]
    assert row.stopped_at is not None


async def test_failing_pass_is_logged_and_the_loop_keeps_running(caplog):
    calls = []

    async def flaky() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database blip")
        return 0

    worker = WorkerLoops([Loop("flaky", lambda: 0.01, flaky)])
    running = asyncio.create_task(worker.run())
    while len(calls) < 2:
        await asyncio.sleep(0.01)
    await worker.stop()
    await running

    assert "worker loop flaky: pass failed" in caplog.text


async def test_reaper_loop_ends_every_idle_session_in_small_hops(amake_session, settings, monkeypatch):
    from datetime import timedelta

    from sessions_app import worker as worker_module
    from sessions_app.clock import utcnow
    from sessions_app.models import Session
    from sessions_app.services import lifecycle

    sessions = [(await amake_session())[0] for _ in range(7)]
    old = utcnow() - timedelta(seconds=settings.SESSION_IDLE_TTL_S * 10)
    await database_sync_to_async(Session.objects.update)(created_at=old)
    hops = []
    original = lifecycle.reap_once

    def counting_reap(**kwargs):
        reaped = original(**kwargs)
        hops.append(reaped)
        return reaped

    reap_pass = worker_module.in_batches(counting_reap, batch=3)

    assert await reap_pass() == 7
    assert hops == [3, 3, 1]
    states = await database_sync_to_async(lambda: set(Session.objects.values_list("state", flat=True)))()
    assert states == {"aborted"}
    assert len(sessions) == 7
