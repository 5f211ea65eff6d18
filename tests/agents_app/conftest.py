"""Fixtures for runs: fast agent settings, a scriptable agent, recorded drain writes, drain pools, run set-up,
log and HTTP helpers."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from django.test import AsyncClient

from agents_app import drains
from agents_app.agents import AGENTS
from agents_app.agents.base import AgentContext, AgentItem, Delta, InputRequest
from agents_app.drains import DrainPool
from agents_app.models import Run
from agents_app.services import RunControl, run_claim_one, run_start
from sessions_app import selectors
from sessions_app.clock import utcnow
from sessions_app.models import ProcessLease, Session
from tests.conftest import Subscriber
from tests.waiting import until


@pytest.fixture(autouse=True)
def quick_agents(settings):
    """Drains that poll fast and a notes agent with no pause, so tests take milliseconds."""
    settings.AGENT_NOTES_PACE_S = 0
    settings.AGENT_RUN_POLL_S = 0.02
    settings.AGENT_CLAIM_INTERVAL_S = 0.05
    settings.AGENT_SHUTDOWN_GRACE_S = 2
    return settings


END = object()


class ScriptedAgent:
    """An agent the test feeds item by item, so a run can be caught at any point of its stream."""

    def __init__(self) -> None:
        self.items: asyncio.Queue = asyncio.Queue()
        self.contexts: list[AgentContext] = []
        self.answers: list[dict] = []
        self.closed = False
        # Items handed to the drain so far; the pump buffers each before it asks for the next.
        self.yielded = 0
        self.progress = asyncio.Event()

    def feed(self, *items: Any) -> None:
        for item in items:
            self.items.put_nowait(item)

    def end(self) -> None:
        self.items.put_nowait(END)

    async def __call__(self, context: AgentContext):
        self.contexts.append(context)
        try:
            while True:
                item = await self.items.get()
                if item is END:
                    return
                if isinstance(item, BaseException):
                    raise item
                self.yielded += 1
                self.progress.set()
                yield item
                if isinstance(item, InputRequest):
                    self.answers.append(await context.receive_input())
        finally:
            self.closed = True

    async def handed_over(self, count: int, *, timeout: float = 5) -> None:
        """Wait until the drain's pump has taken `count` items in all.

        The agent runs inside the pump's task, which buffers an item before it gives the loop
        back, so when this returns every one of them is in the drain's buffer or written.
        """
        try:
            async with asyncio.timeout(timeout):
                while self.yielded < count:
                    self.progress.clear()
                    await self.progress.wait()
        except TimeoutError:
            raise AssertionError(f"the drain took {self.yielded} items, not {count}") from None


class Writes:
    """Every drain write that carried items, recorded, with a gate that can hold one in flight."""

    def __init__(self, write: Callable[..., Awaitable[RunControl]]) -> None:
        self.write = write
        # (run_id, items) of each write, in the order they began.
        self.log: list[tuple[str, list[AgentItem]]] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.held = asyncio.Event()

    def of(self, run_id) -> list[list[AgentItem]]:
        """The items of each of a run's writes."""
        return [items for held_by, items in self.log if held_by == str(run_id)]

    def hold_next(self, run_id) -> asyncio.Event:
        """Hold the run's next write with items short of the database; set the returned event to let it go on."""
        self.held.clear()
        gate = self.gates[str(run_id)] = asyncio.Event()
        return gate

    async def until_held(self, *, timeout: float = 5) -> None:
        """Wait until the write hold_next asked for is being held."""
        try:
            async with asyncio.timeout(timeout):
                await self.held.wait()
        except TimeoutError:
            raise AssertionError("no write began to be held") from None

    async def __call__(self, **kwargs: Any) -> RunControl:
        run_id, items = str(kwargs["run_id"]), kwargs["items"]
        if items:
            self.log.append((run_id, list(items)))
            gate = self.gates.pop(run_id, None)
            if gate is not None:
                self.held.set()
                await gate.wait()
        return await self.write(**kwargs)


@pytest.fixture
def writes(monkeypatch) -> Writes:
    """Record the drains' writes (and hold one when a test asks), around the real write."""
    recorder = Writes(drains._run_progress)
    monkeypatch.setattr(drains, "_run_progress", recorder)
    return recorder


@pytest.fixture
def scripted(monkeypatch) -> Callable[..., ScriptedAgent]:
    """Register a scripted agent under `name` (default "scripted") for the test."""

    def register(name: str = "scripted") -> ScriptedAgent:
        agent = ScriptedAgent()
        monkeypatch.setitem(AGENTS, name, agent)
        return agent

    return register


@pytest_asyncio.fixture
async def pools():
    """Make drain pools; each is shut down (its runs interrupted) when the test ends."""
    made: list[DrainPool] = []

    def make(**options) -> DrainPool:
        pool = DrainPool(**options)
        made.append(pool)
        return pool

    yield make
    for pool in made:
        await pool.shutdown()


@pytest_asyncio.fixture
async def pool(pools) -> DrainPool:
    return pools()


def run_row(run_id: uuid.UUID | str) -> Run:
    return Run.objects.get(pk=run_id)


arun_row = database_sync_to_async(run_row)
arun_start = database_sync_to_async(run_start)


def worker_lease(worker_id: str = "w-1") -> str:
    """A worker's process lease, live for the test, for runs to be claimed under; returns its id."""
    now = utcnow()
    ProcessLease.objects.get_or_create(
        id=worker_id,
        defaults={
            "role": "worker",
            "hostname": "test",
            "pid": 1,
            "started_at": now,
            "lease_expires_at": now + timedelta(minutes=5),
        },
    )
    return worker_id


def claimed_run(session: Session, *, worker_id: str, input: str = "", agent: str = "notes") -> Run:
    """Start a run in `session` and claim it for `worker_id`, with no drain: the test writes as the drain."""
    run = run_start(session=session, input=input, agent=agent)
    return run_claim_one(run_id=run.id, worker_id=worker_id)


@dataclass
class LiveRun:
    """A scripted agent's run in its own agent session, being drained by the test's pool."""

    agent: ScriptedAgent
    session: Session
    token: str
    run: Run
    pool: DrainPool
    writes: Writes
    stored: str = ""

    @property
    def id(self) -> uuid.UUID:
        return self.run.id

    def row(self) -> Run:
        return run_row(self.run.id)

    async def stream(self, *texts: str) -> None:
        """Have the agent yield these deltas and wait until the drain has stored them."""
        self.agent.feed(*(Delta(text) for text in texts))
        self.stored += "".join(texts)
        await until(lambda: self.row().output == self.stored, what=f"the drain to store {self.stored!r}")

    async def hold(self, first: str, *texts: str) -> asyncio.Event:
        """Have the agent yield deltas while the drain's write of `first` is held in flight.

        `texts` stay in the drain's buffer, and nothing is stored, until the returned event
        is set and lets the write go on.
        """
        gate = self.writes.hold_next(self.run.id)
        self.agent.feed(Delta(first))
        await self.writes.until_held()
        self.agent.feed(*(Delta(text) for text in texts))
        await self.agent.handed_over(self.agent.yielded + len(texts))
        return gate


@pytest_asyncio.fixture
async def live_run(amake_session, pool, scripted, writes) -> Callable[..., Awaitable[LiveRun]]:
    """Start a run of a scripted agent (registered as `agent`) in a new agent session; the pool claims it."""

    async def start(agent: str = "scripted", *, claim: bool = True) -> LiveRun:
        script = scripted(agent)
        session, token = await amake_session(kind="agent")
        run = await arun_start(session=session, input="go", agent=agent)
        if claim:
            await pool.claim_once()
        return LiveRun(agent=script, session=session, token=token, run=run, pool=pool, writes=writes)

    return start


async def drained(pool: DrainPool, *, timeout: float = 10) -> None:
    """Wait until the pool has no drain and no claim under way."""
    async with asyncio.timeout(timeout):
        while True:
            tasks = [drain.task for drain in pool.drains.values()]
            if pool.claim_task is not None and not pool.claim_task.done():
                tasks.append(pool.claim_task)
            if not tasks:
                return
            await asyncio.gather(*tasks, return_exceptions=True)


def log(session_id, *types: str) -> list[dict]:
    """The session's logged envelopes, optionally only some types."""
    return selectors.events_after(session_id=session_id, types=list(types) or None, limit=100_000)


alog = database_sync_to_async(log)


def run_text(envelopes: list[dict], run_id) -> str:
    """What a client rebuilds from a run's deltas."""
    return "".join(
        e["data"]["text"] for e in envelopes if e["type"] == "run.delta" and e["data"]["run_id"] == str(run_id)
    )


async def frames_until_close(client: Subscriber) -> tuple[list[dict], int]:
    """The frames a connected subscriber is sent until the server closes it, and the close code."""
    frames = []
    while True:
        output = await client.communicator.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            return frames, output.get("code", 1000)
        frames.append(json.loads(output["text"]))


class Api:
    """The JSON API as one session's token holder sees it."""

    def __init__(self, session_id, token: str) -> None:
        self.client = AsyncClient()
        self.base = f"/api/sessions/{session_id}"
        self.auth = {"headers": {"Authorization": f"Bearer {token}"}}

    async def post(self, path: str, body: Any = None):
        data = body if isinstance(body, str | bytes) else json.dumps(body if body is not None else {})
        return await self.client.post(self.base + path, data=data, content_type="application/json", **self.auth)

    async def get(self, path: str):
        return await self.client.get(self.base + path, **self.auth)

    async def delete(self, path: str = ""):
        return await self.client.delete(self.base + path, **self.auth)


@pytest.fixture
def api() -> Callable[..., Api]:
    return Api
