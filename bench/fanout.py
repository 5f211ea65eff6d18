"""Fan-out latency: from an event's commit to its receipt by every events-socket subscriber.

How it is measured, and why this way:

1. A bench server process (`python -m bench.server`: daphne serving Linnet's ASGI app, as
   `manage.py serve` does) runs on a free port against the run's temporary SQLite file.
2. N real WebSocket clients (`websockets`, in this process) open
   `/ws/sessions/{id}/events?token=...` on one session and read until `replay.complete`.
3. Events are published *inside the server process*, through its control socket, by the
   real `events_append` on the database thread, one every few milliseconds. A publisher in
   another process could not reach the in-memory layer, the embedded default, so this is
   what lets one code path measure both layers: the in-memory one always, and
   channels-redis (`REDIS_URL` = the bench's Redis database) when Redis is reachable.
4. Each event is stamped with CLOCK_MONOTONIC right after its COMMIT (before the
   on-commit publish runs) and each client stamps its receipt with the same clock; the
   latency of one delivery is the difference, so it includes the publish, the layer, the
   events consumer (cursor, JSON, send) and the client's read.

Baseline, same server, same clients, same pacing: a bare Channels consumer that joins a
group and forwards what `group_send` delivers (bench.baseline), with the stamp taken just
before `group_send` runs on the server's event loop. Both sets of N sockets stay open and
take turns, a few rounds each, so the machine's noise falls on both alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection

from bench.clients import (
    Control,
    bounded,
    close_all,
    events_subscribe,
    events_url,
    sessions_create,
    ticks_receive,
    ws_connect,
)
from bench.environment import BenchContext, redis_clear
from bench.processes import BenchServer
from bench.report import Result, percentile

SIZES = (1, 10, 100)
QUICK_SIZES = (1, 10)
EVENTS = 60
QUICK_EVENTS = 15
WARMUP_EVENTS = 5
CONNECT_CONCURRENCY = 20
ROUNDS = 3
SETTLE_S = 1.0


def interval_s(subscribers: int) -> float:
    """Space the events so one is delivered to everybody before the next: latency, not throughput."""
    return 0.010 + 0.0004 * subscribers


@dataclass
class Deliveries:
    latencies_s: list[float] = field(default_factory=list)
    lost: int = 0

    def add(self, other: Deliveries) -> None:
        self.latencies_s += other.latencies_s
        self.lost += other.lost

    def stat_ms(self, q: float) -> float | None:
        return percentile(self.latencies_s, q) * 1000 if self.latencies_s else None


class Side:
    """N open sockets of one kind (Linnet's events socket or the bare baseline) and their publisher."""

    def __init__(self, sockets: list[ClientConnection], publish: Callable[[int, int], Awaitable[dict]]) -> None:
        self.sockets = sockets
        self.publish = publish
        self.next_seq = 1

    async def round(self, count: int) -> Deliveries:
        """Publish `count` events while every socket reads; match receipts to commit stamps by seq."""
        deadline_s = count * interval_s(len(self.sockets)) + 15
        readers = [asyncio.create_task(ticks_receive(ws, count, timeout_s=deadline_s)) for ws in self.sockets]
        reply = await self.publish(count, self.next_seq)
        stamps = {seq: stamp for seq, stamp in reply["stamps"]}
        self.next_seq = max(stamps) + 1
        received = await asyncio.gather(*readers)
        deliveries = Deliveries()
        for arrivals in received:
            for seq, committed in stamps.items():
                if seq in arrivals:
                    deliveries.latencies_s.append(arrivals[seq] - committed)
                else:
                    deliveries.lost += 1
        return deliveries


async def linnet_side(server: BenchServer, control: Control, subscribers: int) -> Side:
    [(session_id, token)] = await sessions_create(server.http_url, 1)
    url = events_url(server.ws_url, session_id, token)
    opened = await bounded([lambda: events_subscribe(url)] * subscribers, concurrency=CONNECT_CONCURRENCY)

    async def publish(count: int, _first_seq: int) -> dict:
        # The log allocates the seqs.
        return await control.call("append", session_id=session_id, count=count, interval_s=interval_s(subscribers))

    return Side([ws for ws, _ in opened], publish)


async def bare_side(server: BenchServer, control: Control, subscribers: int) -> Side:
    group = f"bench.fanout.{subscribers}"
    url = f"{server.ws_url}/ws/bench/bare/{group}"
    sockets = await bounded([lambda: ws_connect(url)] * subscribers, concurrency=CONNECT_CONCURRENCY)

    async def publish(count: int, first_seq: int) -> dict:
        return await control.call(
            "group_send", group=group, count=count, first_seq=first_seq, interval_s=interval_s(subscribers)
        )

    return Side(sockets, publish)


async def size_measure(
    server: BenchServer, control: Control, subscribers: int, count: int
) -> tuple[Deliveries, Deliveries]:
    """Both sides stay connected and take turns, so drift and noise on the machine hit them alike."""
    linnet = await linnet_side(server, control, subscribers)
    bare = await bare_side(server, control, subscribers)
    measured = Deliveries(), Deliveries()
    try:
        for side in (linnet, bare):
            await side.round(WARMUP_EVENTS)
        for _ in range(ROUNDS):
            for side, total in zip((linnet, bare), measured, strict=True):
                total.add(await side.round(count // ROUNDS))
    finally:
        await close_all([*linnet.sockets, *bare.sockets])
        # Let the server finish tearing them down (a database write per Linnet subscriber).
        await asyncio.sleep(SETTLE_S)
    return measured


async def layer_measure(server: BenchServer, layer: str, sizes: tuple[int, ...], count: int) -> list[Result]:
    results = []
    async with Control(server.ws_url) as control:
        for subscribers in sizes:
            linnet, bare = await size_measure(server, control, subscribers, count)
            details = {
                "layer": layer,
                "subscribers": subscribers,
                "events": count,
                "interval_ms": interval_s(subscribers) * 1000,
                "deliveries": len(linnet.latencies_s),
                "lost": linnet.lost,
                "baseline_deliveries": len(bare.latencies_s),
                "baseline_lost": bare.lost,
            }
            for stat, q in (("p50", 50), ("p95", 95), ("max", 100)):
                results.append(
                    Result(
                        bench="fanout",
                        name=f"fan-out {stat}, {subscribers} sub{'s' if subscribers > 1 else ''} [{layer}]",
                        value=linnet.stat_ms(q),
                        baseline=bare.stat_ms(q),
                        units="ms",
                        details=details,
                    )
                )
            print(
                f"  {layer}: {subscribers} subscriber(s): p50 {linnet.stat_ms(50):.2f} ms "
                f"(bare {bare.stat_ms(50):.2f} ms), lost {linnet.lost} (bare {bare.lost})",
                flush=True,
            )
    return results


def run(ctx: BenchContext) -> list[Result]:
    sizes = QUICK_SIZES if ctx.quick else SIZES
    count = QUICK_EVENTS if ctx.quick else EVENTS
    layers: list[tuple[str, str | None]] = [("memory", None)]
    if ctx.redis_url:
        layers.append(("redis", ctx.redis_url))
    else:
        ctx.note("fan-out over channels-redis skipped: Redis is not reachable")
    results = []
    for layer, redis_url in layers:
        if redis_url:
            redis_clear(redis_url)
        try:
            with BenchServer(env=ctx.server_env(redis_url=redis_url), workdir=ctx.workdir, name=f"fanout-{layer}") as s:
                layer_results = asyncio.run(layer_measure(s, layer, sizes, count))
        finally:
            if redis_url:
                redis_clear(redis_url)
        lost = sum(r.details["lost"] for r in layer_results[::3])
        if lost:
            ctx.note(f"fan-out [{layer}]: {lost} deliveries never arrived at an events socket")
        results += layer_results
    return results
