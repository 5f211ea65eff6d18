"""The agent loops inside a worker: a stopping worker claims nothing it would only interrupt."""

from __future__ import annotations

import asyncio

import pytest

from agents_app.drains import DrainPool
from agents_app.models import RunStatus
from agents_app.worker import agent_loops
from sessions_app.plugins import Loop
from sessions_app.worker import WorkerLoops
from tests.agents_app.conftest import alog, arun_row, arun_start

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_stopping_worker_claims_no_run_while_its_other_loops_finish_their_pass(amake_session):
    in_pass, finish_pass = asyncio.Event(), asyncio.Event()

    async def long_pass() -> int:
        # A reaper pass over many sessions, say: stop() waits for it before the shutdown hooks.
        in_pass.set()
        await finish_pass.wait()
        return 0

    loops = agent_loops()
    pool = next(loop for loop in loops if loop.name == "drain").run_once.__self__
    assert isinstance(pool, DrainPool)
    worker = WorkerLoops([Loop("long", lambda: 3600, long_pass), *loops])
    running = asyncio.create_task(worker.run())
    await in_pass.wait()
    stopping = asyncio.create_task(worker.stop())
    try:
        await asyncio.sleep(0)
        assert worker.stopping.is_set() and not stopping.done()
        session, _ = await amake_session(kind="agent")
        run = await arun_start(session=session, input="", agent="notes")
        # What the claim listener does with the queued run's wake-up (and a finishing drain too).
        pool.request_claim()
        if pool.claim_task is not None:
            await pool.claim_task
        assert (await arun_row(run.id)).status == RunStatus.QUEUED
    finally:
        finish_pass.set()
        await stopping
        await running

    assert (await arun_row(run.id)).status == RunStatus.QUEUED
    assert await alog(session.id, "run.started", "run.done") == []
