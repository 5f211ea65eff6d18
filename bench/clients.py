"""Real clients of a bench server: HTTP for sessions, `websockets` for the sockets."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import TypeVar

import httpx
from websockets.asyncio.client import ClientConnection, connect

from bench.payloads import token_indices

T = TypeVar("T")

# Pings would only add traffic to what is measured; compression is off on daphne anyway.
_SOCKET_OPTIONS = {"compression": None, "ping_interval": None, "max_size": None, "open_timeout": 30}


async def ws_connect(url: str) -> ClientConnection:
    return await connect(url, **_SOCKET_OPTIONS)


async def sessions_create(
    base_url: str, count: int, *, kind: str | None = None, concurrency: int = 8
) -> list[tuple[str, str]]:
    """Open `count` sessions (of `kind`, else the default) through the HTTP API; returns (id, token) pairs."""
    options = {} if kind is None else {"kind": kind}
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:

        async def create() -> tuple[str, str]:
            response = await http.post("/api/sessions", json=options)
            response.raise_for_status()
            body = response.json()
            return body["id"], body["token"]

        return await bounded([create for _ in range(count)], concurrency=concurrency)


async def bounded(factories: Iterable[Callable[[], Awaitable[T]]], *, concurrency: int) -> list[T]:
    """Await every factory's coroutine, at most `concurrency` at once, results in order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(factory: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await factory()

    return await asyncio.gather(*(one(factory) for factory in factories))


def events_url(ws_base: str, session_id: str, token: str, after: int | None = None) -> str:
    url = f"{ws_base}/ws/sessions/{session_id}/events?token={token}"
    return url if after is None else f"{url}&after={after}"


async def events_subscribe(url: str) -> tuple[ClientConnection, int]:
    """Open an events socket and read its replay; returns the socket and how many events it replayed."""
    ws = await ws_connect(url)
    replayed = 0
    async for raw in ws:
        message = json.loads(raw)
        if message.get("type") == "replay.complete":
            return ws, replayed
        if message.get("type") == "error":
            await ws.close()
            raise RuntimeError(f"events socket refused: {message}")
        replayed += 1
    raise RuntimeError(f"events socket closed during replay (code {ws.close_code})")


async def tokens_receive(ws: ClientConnection, expected: range, *, timeout_s: float) -> dict[int, float]:
    """Read `run.delta` frames until every expected token arrived (or the time is up).

    Returns token index -> monotonic receipt time of the frame that carried it; a merged
    delta carries several tokens, which all arrive with it.
    """
    received: dict[int, float] = {}
    deadline = time.monotonic() + timeout_s
    while len(received) < len(expected):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            raw = await asyncio.wait_for(ws.recv(), timeout=remaining)
        except TimeoutError:
            break
        arrived = time.monotonic()
        message = json.loads(raw)
        if message.get("type") == "run.delta":
            for index in token_indices(message["data"]["text"]):
                if index in expected:
                    received.setdefault(index, arrived)
    return received


async def close_all(sockets: Iterable[ClientConnection]) -> None:
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


class Control:
    """The bench server's control socket (bench.control.ControlConsumer)."""

    def __init__(self, ws_base: str) -> None:
        self.url = f"{ws_base}/ws/bench/control"
        self.ws: ClientConnection | None = None

    async def __aenter__(self) -> Control:
        self.ws = await ws_connect(self.url)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def call(self, op: str, **arguments) -> dict:
        assert self.ws is not None
        await self.ws.send(json.dumps({"op": op, **arguments}))
        reply = json.loads(await self.ws.recv())
        if "error" in reply:
            raise RuntimeError(f"control op {op}: {reply['error']}")
        return reply
