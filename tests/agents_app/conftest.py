"""Fixtures for runs: fast agent settings, a scriptable agent, drain pools, log and HTTP helpers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from django.test import AsyncClient

from agents_app.agents import AGENTS
from agents_app.agents.base import AgentContext, InputRequest
from agents_app.drains import DrainPool
from sessions_app import selectors
from tests.conftest import Subscriber


@pytest.fixture(autouse=True)
def quick_agents(settings):
    """Drains that poll and flush fast and a notes agent with no pause, so tests take milliseconds."""
    settings.AGENT_NOTES_PACE_S = 0
    settings.AGENT_RUN_POLL_S = 0.02
    settings.AGENT_DELTA_FLUSH_S = 0.01
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
                yield item
                if isinstance(item, InputRequest):
                    self.answers.append(await context.receive_input())
        finally:
            self.closed = True


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


async def until(check: Callable[[], Any], *, timeout: float = 5, what: str = "the condition") -> Any:
    """Poll a sync (ORM) check until it returns something truthy."""
    read = database_sync_to_async(check)
    try:
        async with asyncio.timeout(timeout):
            while True:
                value = await read()
                if value:
                    return value
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


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
