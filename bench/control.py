"""The bench server's control socket: produce token streams inside the serving process, and report its memory.

Producing inside the server is what lets the fan-out bench use the in-memory layer (the
embedded default), where a producer in another process could reach no subscriber. Every
token is stamped when it is produced (bench.tokens), and the stamps are the reply, so the
clients can compute the latency of every delivery.
"""

from __future__ import annotations

import gc
from pathlib import Path

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from bench.baseline import bare_stream
from bench.tokens import TokenStream, run_stream


def rss_bytes() -> int:
    """This process's resident set, after a full collection so garbage does not count."""
    gc.collect()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS missing from /proc/self/status")


def _stream(content: dict) -> TokenStream:
    return TokenStream(first=content["first"], count=content["count"], interval_s=content["interval_s"])


class ControlConsumer(AsyncJsonWebsocketConsumer):
    """`{"op": ...}` in, one JSON reply out; ops run one at a time, in order."""

    async def connect(self) -> None:
        await self.accept()

    async def receive_json(self, content: dict, **kwargs) -> None:
        op = content["op"]
        if op == "run":
            # One run of the token agent in the session, drained here; replies once it ended.
            stream = _stream(content)
            status = await run_stream(session_id=content["session_id"], stream=stream)
            await self.send_json({"op": op, "status": status, "stamps": stream.stamps})
        elif op == "bare":
            stream = _stream(content)
            await bare_stream(group=content["group"], stream=stream)
            await self.send_json({"op": op, "stamps": stream.stamps})
        elif op == "rss":
            await self.send_json({"op": op, "rss_bytes": rss_bytes()})
        else:
            await self.send_json({"op": op, "error": f"unknown op {op!r}"})
