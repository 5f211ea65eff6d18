"""The fan-out bench's token streams: one paced, stamped generator, drained two ways in the bench server.

A `TokenStream` produces short tokens at a fixed rate on an absolute schedule (an upstream
model server does not slow down because its reader is late) and stamps each with
`time.monotonic()` (CLOCK_MONOTONIC, one clock for every process on the machine) the moment
it is produced, before anything downstream sees it. Two consumers take it:

- Linnet: the `bench_tokens` agent yields the tokens as the deltas of a real run, which this
  process's `DrainPool` claims and drains exactly as `serve` does (pump, writer, log write,
  publish after commit), on to every events socket of the session;
- the baseline (bench.baseline): each token `group_send` by itself, no log.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from channels.db import database_sync_to_async

from agents_app.agents import AGENTS
from agents_app.agents.base import AgentContext, AgentItem, Delta
from agents_app.drains import DrainPool
from agents_app.models import Run
from agents_app.services import run_start
from bench.payloads import token_text
from sessions_app.models import Session

TOKEN_AGENT = "bench_tokens"


@dataclass
class TokenStream:
    """`count` tokens numbered from `first`, one every `interval_s`; `stamps` holds (index, produced at)."""

    first: int
    count: int
    interval_s: float
    stamps: list[tuple[int, float]] = field(default_factory=list)

    async def tokens(self) -> AsyncIterator[tuple[int, str]]:
        started = time.monotonic()
        for n in range(self.count):
            late = time.monotonic() - (started + n * self.interval_s)
            if late < 0:
                await asyncio.sleep(-late)
            index = self.first + n
            self.stamps.append((index, time.monotonic()))
            yield index, token_text(index)


# Streams waiting for the run that will produce them, by the key the run's input names.
_streams: dict[str, TokenStream] = {}
_keys = itertools.count()


async def token_agent(context: AgentContext) -> AsyncIterator[AgentItem]:
    stream = _streams.pop(json.loads(context.input)["stream"])
    async for _index, text in stream.tokens():
        yield Delta(text)


_pool: DrainPool | None = None


def _run_create(*, session_id: str, key: str) -> Run:
    session = Session.objects.get(pk=uuid.UUID(session_id))
    return run_start(session=session, input=json.dumps({"stream": key}), agent=TOKEN_AGENT)


def _run_status(*, run_id: uuid.UUID) -> str:
    return Run.objects.values_list("status", flat=True).get(pk=run_id)


_arun_create = database_sync_to_async(_run_create)
_arun_status = database_sync_to_async(_run_status)


async def run_stream(*, session_id: str, stream: TokenStream) -> str:
    """Produce `stream` as one run of the token agent, drained in this process; its status once it ended."""
    global _pool
    AGENTS.setdefault(TOKEN_AGENT, token_agent)
    if _pool is None:
        _pool = DrainPool()
    key = str(next(_keys))
    _streams[key] = stream
    run = await _arun_create(session_id=session_id, key=key)
    # The pool may already have claimed it on the run's layer wake-up; either way it drains here.
    await _pool.claim_once()
    drain = _pool.drains.get(str(run.id))
    if drain is not None and drain.task is not None:
        await drain.task
    return await _arun_status(run_id=run.id)
