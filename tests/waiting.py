"""Waiting in async tests for something another task, thread or process does."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async


async def until(
    check: Callable[[], Any] | Callable[[], Awaitable[Any]],
    *,
    timeout: float = 5,
    interval: float = 0.01,
    what: str = "the condition",
) -> Any:
    """Poll `check` until it returns something truthy, and return that.

    A coroutine function (an HTTP probe, say) is awaited on the loop; a plain function (an
    ORM read) runs on the database thread, where sync code called from async code belongs.
    """
    probe = check if inspect.iscoroutinefunction(check) else database_sync_to_async(check)
    try:
        async with asyncio.timeout(timeout):
            while not (value := await probe()):
                await asyncio.sleep(interval)
            return value
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None
