import asyncio

import pytest
from channels.db import database_sync_to_async

from sessions_app.models import Worker
from sessions_app.services.presence import PROCESS
from sessions_app.worker import Loop, WorkerLoops, session_loops

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
    row_id = PROCESS.worker_id
    await worker.stop()
    await running

    row = await database_sync_to_async(Worker.objects.get)(pk=row_id)
    assert {"reap", "gc", "sweep", "probe"} <= set(row.passes)
    assert row.passes["probe"]["count"] == 7
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
