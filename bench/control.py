"""The bench server's control socket: publish inside the serving process, and report its memory.

Publishing from inside the server is what lets the fan-out bench use the in-memory layer
(the embedded default), where a publisher in another process could reach no subscriber.
Each publish is stamped with `time.monotonic()` (CLOCK_MONOTONIC, one clock for every
process on the machine) so the clients can compute the latency of every delivery.
"""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from pathlib import Path

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.db import transaction

from bench.payloads import TONE_TYPE, tone_data
from sessions_app.services.events import LAYER_EVENTS, events_append


def append_stamped(*, session_id: str, index: int) -> tuple[int, float]:
    """Append one event through the real publish path; returns its seq and the commit instant."""
    committed: list[float] = []
    with transaction.atomic():
        # Registered before events_append's own publish callback, so it runs first, right
        # after COMMIT: the stamp is the commit, and the publish is part of the latency.
        transaction.on_commit(lambda: committed.append(time.monotonic()))
        [event] = events_append(session_id=uuid.UUID(session_id), items=[(TONE_TYPE, tone_data(index))])
    return event.seq, committed[0]


_append_stamped = database_sync_to_async(append_stamped)


def rss_bytes() -> int:
    """This process's resident set, after a full collection so garbage does not count."""
    gc.collect()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS missing from /proc/self/status")


class ControlConsumer(AsyncJsonWebsocketConsumer):
    """`{"op": ...}` in, one JSON reply out; ops run one at a time, in order."""

    async def connect(self) -> None:
        await self.accept()

    async def receive_json(self, content: dict, **kwargs) -> None:
        op = content["op"]
        if op == "append":
            stamps = await self.append(content["session_id"], content["count"], content["interval_s"])
            await self.send_json({"op": op, "stamps": stamps})
        elif op == "group_send":
            stamps = await self.group_send(
                content["group"], content["count"], content["interval_s"], first_seq=content.get("first_seq", 1)
            )
            await self.send_json({"op": op, "stamps": stamps})
        elif op == "rss":
            await self.send_json({"op": op, "rss_bytes": rss_bytes()})
        else:
            await self.send_json({"op": op, "error": f"unknown op {op!r}"})

    async def append(self, session_id: str, count: int, interval_s: float) -> list[tuple[int, float]]:
        stamps = []
        for index in range(count):
            stamps.append(await _append_stamped(session_id=session_id, index=index))
            await asyncio.sleep(interval_s)
        return stamps

    async def group_send(self, group: str, count: int, interval_s: float, *, first_seq: int) -> list[tuple[int, float]]:
        stamps = []
        for index in range(count):
            seq = first_seq + index
            envelope = {"seq": seq, "type": TONE_TYPE, "ts": time.time(), "data": tone_data(index)}
            stamps.append((seq, time.monotonic()))
            await self.channel_layer.group_send(group, {"type": LAYER_EVENTS, "events": [envelope]})
            await asyncio.sleep(interval_s)
        return stamps
