"""Memory per idle subscriber: the serving process's RSS before and after opening many idle sockets.

How: a fresh bench server (daphne serving Linnet, in-memory layer) gets its sessions
through the HTTP API first, so creating them is not counted. A few subscribers are
opened as a warm-up (the presence lease, the database thread, the first allocations), then
the server reports its RSS (after `gc.collect()`, read from /proc/self/status), N more
events sockets are opened, one per session, each read to `replay.complete` and then left
idle, and the server reports its RSS again. Per subscriber = the difference / N.

Baseline: the same in another fresh server with N bare consumers (bench.baseline), each
in its own group, so the ratio is what a Linnet subscriber holds beyond a Channels socket.
RSS moves in pages and the allocator keeps what it once got, so read the per-subscriber
numbers to a few hundred bytes, not better.
"""

from __future__ import annotations

import asyncio

from bench.clients import Control, bounded, events_subscribe, events_url, sessions_create, ws_connect
from bench.environment import BenchContext
from bench.processes import BenchServer
from bench.report import Result

SUBSCRIBERS = 500
QUICK_SUBSCRIBERS = 100
WARMUP = 20
CONNECT_CONCURRENCY = 20
SETTLE_S = 1.0


async def linnet_rss(server: BenchServer, subscribers: int) -> tuple[int, int]:
    sessions = await sessions_create(server.http_url, WARMUP + subscribers)
    urls = [events_url(server.ws_url, session_id, token) for session_id, token in sessions]
    opened = []
    try:
        async with Control(server.ws_url) as control:
            opened += await bounded([lambda u=u: events_subscribe(u) for u in urls[:WARMUP]], concurrency=WARMUP)
            await asyncio.sleep(SETTLE_S)
            before = (await control.call("rss"))["rss_bytes"]
            opened += await bounded(
                [lambda u=u: events_subscribe(u) for u in urls[WARMUP:]], concurrency=CONNECT_CONCURRENCY
            )
            await asyncio.sleep(SETTLE_S)
            after = (await control.call("rss"))["rss_bytes"]
    finally:
        await asyncio.gather(*(ws.close() for ws, _ in opened), return_exceptions=True)
    return before, after


async def bare_rss(server: BenchServer, subscribers: int) -> tuple[int, int]:
    urls = [f"{server.ws_url}/ws/bench/bare/bench.idle.{i}" for i in range(WARMUP + subscribers)]
    opened = []
    try:
        async with Control(server.ws_url) as control:
            opened += await bounded([lambda u=u: ws_connect(u) for u in urls[:WARMUP]], concurrency=WARMUP)
            await asyncio.sleep(SETTLE_S)
            before = (await control.call("rss"))["rss_bytes"]
            opened += await bounded([lambda u=u: ws_connect(u) for u in urls[WARMUP:]], concurrency=CONNECT_CONCURRENCY)
            await asyncio.sleep(SETTLE_S)
            after = (await control.call("rss"))["rss_bytes"]
    finally:
        await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)
    return before, after


def run(ctx: BenchContext) -> list[Result]:
    subscribers = QUICK_SUBSCRIBERS if ctx.quick else SUBSCRIBERS
    with BenchServer(env=ctx.server_env(), workdir=ctx.workdir, name="memory-linnet") as server:
        linnet_before, linnet_after = asyncio.run(linnet_rss(server, subscribers))
    with BenchServer(env=ctx.server_env(), workdir=ctx.workdir, name="memory-bare") as server:
        bare_before, bare_after = asyncio.run(bare_rss(server, subscribers))
    mib = 1024 * 1024
    print(
        f"  linnet RSS {linnet_before / mib:.1f} -> {linnet_after / mib:.1f} MiB, "
        f"bare {bare_before / mib:.1f} -> {bare_after / mib:.1f} MiB ({subscribers} idle subscribers)",
        flush=True,
    )
    return [
        Result(
            bench="memory",
            name=f"RSS per idle subscriber ({subscribers} open)",
            value=(linnet_after - linnet_before) / subscribers / 1024,
            baseline=(bare_after - bare_before) / subscribers / 1024,
            units="KiB",
            details={
                "subscribers": subscribers,
                "rss_before_bytes": linnet_before,
                "rss_after_bytes": linnet_after,
                "baseline_rss_before_bytes": bare_before,
                "baseline_rss_after_bytes": bare_after,
            },
        )
    ]
