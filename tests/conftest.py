"""Shared fixtures: sessions, sockets through the real ASGI app, and the service checks."""

from __future__ import annotations

import json
import os

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator

from sessions_app.services.presence import PROCESS
from sessions_app.services.sessions import session_open
from tests.services import require_service

ORIGIN = (b"origin", b"http://localhost")


@pytest.fixture
def redis_url() -> str:
    return require_service("Redis", os.environ.get("LINNET_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"), 6379)


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    # Each test runs on its own event loop; a layer (channels-redis keeps per-loop locks and
    # connections) must not outlive the loop it was first used on.
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def _fresh_process_lease():
    # Each test's database is new, so this process's lease row must be made again.
    PROCESS.forget()
    yield
    PROCESS.forget()


@pytest.fixture
def make_session():
    """Open a session (sync); returns (session, token)."""

    def make(**options):
        return session_open(**options)

    return make


@pytest.fixture
def amake_session():
    async def make(**options):
        return await database_sync_to_async(session_open)(**options)

    return make


class Subscriber:
    """An events-socket client through the real ASGI application."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator
        self.connected = False

    async def connect(self) -> bool:
        self.connected, _ = await self.communicator.connect()
        return self.connected

    async def receive(self, timeout: float = 5) -> dict:
        return json.loads(await self.communicator.receive_from(timeout=timeout))

    async def receive_until_replay_complete(self, timeout: float = 5) -> tuple[list[dict], dict]:
        events = []
        while True:
            message = await self.receive(timeout)
            if message.get("type") == "replay.complete":
                return events, message
            events.append(message)

    async def receive_close(self, timeout: float = 5) -> int:
        """Read frames until the server closes; returns the close code."""
        while True:
            output = await self.communicator.receive_output(timeout)
            if output["type"] == "websocket.close":
                return output.get("code", 1000)

    async def send(self, payload: dict | str) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        await self.communicator.send_to(text_data=text)

    async def close(self) -> None:
        await self.communicator.disconnect()


@pytest_asyncio.fixture
async def subscriber():
    from linnet_site.asgi import application

    opened: list[Subscriber] = []

    def make(session_id, *, token: str | None = None, after: int | None = None, headers=None, query: str = ""):
        params = []
        if token is not None:
            params.append(f"token={token}")
        if after is not None:
            params.append(f"after={after}")
        if query:
            params.append(query)
        path = f"/ws/sessions/{session_id}/events" + ("?" + "&".join(params) if params else "")
        client = Subscriber(WebsocketCommunicator(application, path, headers=[ORIGIN] if headers is None else headers))
        opened.append(client)
        return client

    yield make
    for client in opened:
        if client.connected:
            await client.communicator.disconnect()
