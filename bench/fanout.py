"""Fan-out latency: from a run's upstream token being produced to its receipt on every events socket.

How it is measured, and why this way:

1. A bench server process (`python -m bench.server`: daphne serving Linnet's ASGI app, as
   `manage.py serve` does) runs on a free port against the run's temporary SQLite file.
2. N real WebSocket clients (`websockets`, in this process: the load comes from outside
   the server) open `/ws/sessions/{id}/events?token=...` on one agent session and read
   until `replay.complete`.
3. Through its control socket the server starts a run of a bench agent that produces
   tokens at RATE per second (bench.tokens) and drains it in its own `DrainPool`, as
   `serve` drains runs: every token goes through the drain, the log write, the publish
   after commit, the layer and the events consumer. The drain runs inside the server so
   one code path measures both layers: the in-memory one always, and channels-redis
   (`REDIS_URL` = the bench's Redis database) when Redis is reachable.
4. Each token is stamped with CLOCK_MONOTONIC where it is produced, before the drain sees
   it, and each client stamps the frame that carries it with the same clock; the latency
   of one delivery is the difference. A merged `run.delta` carries several tokens, and
   each counts once per socket.

Baseline, same server, same clients, same token stream and pacing: a bare Channels
consumer that joins a group and forwards what `group_send` delivers, fed one
`group_send` per token as it is produced, with no log (bench.baseline). Both sets of N
sockets stay open and take turns, a few rounds each, so the machine's noise falls on
both alike.
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
    tokens_receive,
    ws_connect,
)
from bench.environment import BenchContext, redis_clear
from bench.processes import BenchServer
from bench.report import Result, latency_results, latency_table, percentile

SIZES = (1, 10, 100)
QUICK_SIZES = (1, 10)
# Tokens per second of the upstream stream, whatever the number of subscribers.
RATE = 200
TOKENS = 900
QUICK_TOKENS = 150
WARMUP_TOKENS = 40
ROUNDS = 3
CONNECT_CONCURRENCY = 20
SETTLE_S = 1.0
# A side whose latency grows by more than this over one round is not keeping up with RATE:
# its percentiles measure a growing backlog, not the time one token takes.
BACKLOG_NOTE_MS = 100.0


@dataclass
class Deliveries:
    latencies_s: list[float] = field(default_factory=list)
    lost: int = 0
    # The most the median latency grew from a round's first tenth of tokens to its last.
    growth_s: float = 0.0

    def add(self, other: Deliveries) -> None:
        self.latencies_s += other.latencies_s
        self.lost += other.lost
        self.growth_s = max(self.growth_s, other.growth_s)

    def ms(self, q: float) -> float:
        return percentile(self.latencies_s, q) * 1000 if self.latencies_s else float("nan")


class Side:
    """N open sockets of one kind (Linnet's events socket or the bare baseline) and their token stream."""

    def __init__(self, sockets: list[ClientConnection], stream: Callable[[int, int], Awaitable[dict]]) -> None:
        self.sockets = sockets
        self.stream = stream
        self.next_index = 0

    async def round(self, count: int) -> Deliveries:
        """Stream `count` tokens while every socket reads; match receipts to production stamps by index."""
        first, self.next_index = self.next_index, self.next_index + count
        expected = range(first, first + count)
        deadline_s = count / RATE + 15
        readers = [asyncio.create_task(tokens_receive(ws, expected, timeout_s=deadline_s)) for ws in self.sockets]
        reply = await self.stream(first, count)
        received = await asyncio.gather(*readers)
        deliveries = Deliveries()
        tenth = max(1, count // 10)
        first_tenth, last_tenth = [], []
        for arrivals in received:
            for position, (index, produced) in enumerate(reply["stamps"]):
                if index not in arrivals:
                    deliveries.lost += 1
                    continue
                latency = arrivals[index] - produced
                deliveries.latencies_s.append(latency)
                if position < tenth:
                    first_tenth.append(latency)
                elif position >= count - tenth:
                    last_tenth.append(latency)
        if first_tenth and last_tenth:
            deliveries.growth_s = percentile(last_tenth, 50) - percentile(first_tenth, 50)
        return deliveries


async def linnet_side(server: BenchServer, control: Control, subscribers: int) -> Side:
    [(session_id, token)] = await sessions_create(server.http_url, 1, kind="agent")
    url = events_url(server.ws_url, session_id, token)
    opened = await bounded([lambda: events_subscribe(url)] * subscribers, concurrency=CONNECT_CONCURRENCY)

    async def stream(first: int, count: int) -> dict:
        reply = await control.call("run", session_id=session_id, first=first, count=count, interval_s=1 / RATE)
        if reply["status"] != "done":
            raise RuntimeError(f"the bench run ended {reply['status']}")
        return reply

    return Side([ws for ws, _ in opened], stream)


async def bare_side(server: BenchServer, control: Control, subscribers: int) -> Side:
    group = f"bench.fanout.{subscribers}"
    url = f"{server.ws_url}/ws/bench/bare/{group}"
    sockets = await bounded([lambda: ws_connect(url)] * subscribers, concurrency=CONNECT_CONCURRENCY)

    async def stream(first: int, count: int) -> dict:
        return await control.call("bare", group=group, first=first, count=count, interval_s=1 / RATE)

    return Side(sockets, stream)


async def size_measure(
    server: BenchServer, control: Control, subscribers: int, count: int
) -> tuple[Deliveries, Deliveries]:
    """Both sides stay connected and take turns, so drift and noise on the machine hit them alike."""
    linnet = await linnet_side(server, control, subscribers)
    bare = await bare_side(server, control, subscribers)
    measured = Deliveries(), Deliveries()
    try:
        for side in (linnet, bare):
            await side.round(WARMUP_TOKENS)
        for _ in range(ROUNDS):
            for side, total in zip((linnet, bare), measured, strict=True):
                total.add(await side.round(count // ROUNDS))
    finally:
        await close_all([*linnet.sockets, *bare.sockets])
        # Let the server finish tearing them down (a database write per Linnet subscriber).
        await asyncio.sleep(SETTLE_S)
    return measured


async def layer_measure(
    ctx: BenchContext, server: BenchServer, layer: str, sizes: tuple[int, ...], count: int
) -> list[Result]:
    results = []
    async with Control(server.ws_url) as control:
        for subscribers in sizes:
            linnet, bare = await size_measure(server, control, subscribers, count)
            plural = "s" if subscribers > 1 else ""
            results += latency_results(
                bench="fanout",
                case=f"{subscribers} sub{plural} [{layer}]",
                name=f"fan-out {{stat}}, {subscribers} sub{plural} [{layer}]",
                values_s=linnet.latencies_s,
                baseline_s=bare.latencies_s,
                details={
                    "layer": layer,
                    "subscribers": subscribers,
                    "tokens": count,
                    "rate_per_s": RATE,
                    "deliveries": len(linnet.latencies_s),
                    "lost": linnet.lost,
                    "max_ms": linnet.ms(100),
                    "growth_ms": linnet.growth_s * 1000,
                    "baseline_deliveries": len(bare.latencies_s),
                    "baseline_lost": bare.lost,
                    "baseline_max_ms": bare.ms(100),
                    "baseline_growth_ms": bare.growth_s * 1000,
                },
            )
            for side, deliveries in (("Linnet", linnet), ("the bare baseline", bare)):
                if deliveries.growth_s * 1000 > BACKLOG_NOTE_MS:
                    ctx.note(
                        f"fan-out [{layer}], {subscribers} subscriber(s): {side} fell behind {RATE} tokens/s "
                        f"(latency grew {deliveries.growth_s * 1000:.0f} ms over a round), so its percentiles "
                        "measure a backlog, not the latency of one token"
                    )
            print(
                f"  {layer}: {subscribers} subscriber(s): p50 {linnet.ms(50):.2f} ms, p99 {linnet.ms(99):.2f} ms "
                f"(bare {bare.ms(50):.2f} ms, {bare.ms(99):.2f} ms), lost {linnet.lost} (bare {bare.lost})",
                flush=True,
            )
    return results


def run(ctx: BenchContext) -> list[Result]:
    sizes = QUICK_SIZES if ctx.quick else SIZES
    count = QUICK_TOKENS if ctx.quick else TOKENS
    layers: list[tuple[str, str | None]] = [("memory", None)]
    if ctx.redis_url:
        layers.append(("redis", ctx.redis_url))
    else:
        ctx.note("fan-out over channels-redis skipped: Redis is not reachable")
    results: list[Result] = []
    for layer, redis_url in layers:
        if redis_url:
            redis_clear(redis_url)
        try:
            with BenchServer(env=ctx.server_env(redis_url=redis_url), workdir=ctx.workdir, name=f"fanout-{layer}") as s:
                layer_results = asyncio.run(layer_measure(ctx, s, layer, sizes, count))
        finally:
            if redis_url:
                redis_clear(redis_url)
        lost = sum(r.details["lost"] for r in layer_results if r.details["stat"] == "p50")
        if lost:
            ctx.note(f"fan-out [{layer}]: {lost} token deliveries never arrived at an events socket")
        results += layer_results
    print(f"\n{latency_table(results)}", flush=True)
    return results
