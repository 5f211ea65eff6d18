"""Run drain throughput: agent deltas per second through a real run drain into the session log.

How: in this process (in-memory layer, the run's SQLite file), a session gets a run of a
bench-only agent that yields N short deltas as fast as it is let (the upper bound of any
streamed generation); it is registered in `agents_app.agents.AGENTS` in this process only.
A real `DrainPool` claims it (`claim_once`, as the worker loop does) and drains it: the
pump buffers deltas, the control loop writes them through `run_progress` (one merged
`run.delta` event per write, the run's output extended in the same transaction) and
`run_finish` ends it. Time is from the claim to the drain's task finishing; the output
is checked to be complete. Deltas/s = N / that time.

Baseline: the same log writes without the drain: `events_append` of one `run.delta` per
AGENT_DELTA_FLUSH_MAX deltas (the most one drain write carries), on the database thread
of an event loop, as the drain's writes run. The ratio is what the drain's machinery (run
and session locks, output concat, lease, pump/control hand-off) costs over its log writes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from channels.db import database_sync_to_async
from django.conf import settings

from agents_app.agents import AGENTS
from agents_app.agents.base import AgentContext, AgentItem, Delta
from agents_app.drains import DrainPool
from agents_app.models import RunStatus
from agents_app.services import run_start
from bench.environment import BenchContext
from bench.report import Result
from sessions_app.services.events import events_append
from sessions_app.services.sessions import session_open

AGENT = "bench_firehose"
TOKEN = "word "
DELTAS = 20_000
QUICK_DELTAS = 1_000


def firehose_agent(deltas: int):
    async def agent(context: AgentContext) -> AsyncIterator[AgentItem]:
        for _ in range(deltas):
            yield Delta(TOKEN)

    return agent


async def drain_once(run_id) -> float:
    """Claim and drain the queued run; seconds from the claim to the drain's end."""
    pool = DrainPool()
    started = time.perf_counter()
    claimed = await pool.claim_once()
    if claimed != 1:
        raise AssertionError(f"the drain pool claimed {claimed} runs, expected the bench run")
    await asyncio.gather(*(drain.task for drain in list(pool.drains.values())))
    elapsed = time.perf_counter() - started
    await pool.shutdown()
    return elapsed


async def appends_once(session_id, run_id, deltas: int) -> float:
    append = database_sync_to_async(events_append)
    batch = settings.AGENT_DELTA_FLUSH_MAX
    started = time.perf_counter()
    for start in range(0, deltas, batch):
        text = TOKEN * min(batch, deltas - start)
        await append(session_id=session_id, items=[("run.delta", {"run_id": str(run_id), "text": text})])
    return time.perf_counter() - started


def run(ctx: BenchContext) -> list[Result]:
    deltas = QUICK_DELTAS if ctx.quick else DELTAS
    AGENTS[AGENT] = firehose_agent(deltas)
    try:
        session, _token = session_open(kind="agent")
        run = run_start(session=session, input="", agent=AGENT)
        drain_s = asyncio.run(drain_once(run.id))
    finally:
        del AGENTS[AGENT]
    run.refresh_from_db()
    if run.status != RunStatus.DONE or len(run.output) != deltas * len(TOKEN):
        raise AssertionError(f"the bench run ended {run.status} with {len(run.output)} characters of output")
    writes = session.events.filter(type="run.delta").count()

    baseline_session, _token = session_open(kind="agent")
    append_s = asyncio.run(appends_once(baseline_session.id, run.id, deltas))

    print(
        f"  {deltas:,} deltas: drained in {drain_s * 1000:.0f} ms ({writes} writes), "
        f"appended in {append_s * 1000:.0f} ms",
        flush=True,
    )
    return [
        Result(
            bench="drain",
            name=f"run drain, {deltas:,} deltas (firehose agent)",
            value=deltas / drain_s,
            baseline=deltas / append_s,
            units="deltas/s",
            lower_is_better=False,
            details={
                "deltas": deltas,
                "drain_ms": drain_s * 1000,
                "drain_writes": writes,
                "baseline_ms": append_s * 1000,
                "baseline_batch": settings.AGENT_DELTA_FLUSH_MAX,
            },
        )
    ]
