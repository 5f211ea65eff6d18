"""Resume/replay speed: how fast an events socket replays a long log to a (re)connecting client.

How: this process opens a session (`session_open`) and writes a log of N tone events
through `events_append`, 500 per call. A bench server (daphne serving Linnet, in-memory
layer) then takes real `websockets` clients on `/ws/sessions/{id}/events`:

- `after=0`: the whole log; events/s = events replayed / time from starting the
  connection to receiving `replay.complete` (handshake, auth, presence and every page);
- `after=last_seq-100`: the resume of a client that missed the last 100 events, reported
  as the milliseconds from starting the connection to `replay.complete`.

Each is repeated and the median taken; one connection first makes the session `running`,
so the timed ones append nothing.

Baseline: the same rows read in this process with `selectors.events_after`, page after
page as the cursor does (raw database read and envelope building, no socket), timed on
the database thread of an event loop like the server's reads.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from channels.db import database_sync_to_async

from bench.clients import events_subscribe, events_url
from bench.environment import BenchContext
from bench.payloads import TONE_TYPE, tone_data
from bench.processes import BenchServer
from bench.report import Result, median
from sessions_app import selectors
from sessions_app.models import Session
from sessions_app.services.events import events_append
from sessions_app.services.sessions import session_open

EVENTS = 100_000
QUICK_EVENTS = 1_000
TAIL = 100
REPEATS = 3
TAIL_REPEATS = 15
APPEND_BATCH = 500


def log_write(*, session_id: uuid.UUID, events: int) -> None:
    for start in range(0, events, APPEND_BATCH):
        items = [(TONE_TYPE, tone_data(i)) for i in range(start, min(events, start + APPEND_BATCH))]
        events_append(session_id=session_id, items=items)


def log_read(*, session_id: uuid.UUID, after: int) -> int:
    """Read every event after `after` the way the replay cursor pages; returns how many."""
    read = 0
    while True:
        page = selectors.events_after(session_id=session_id, after=after)
        read += len(page)
        if len(page) < selectors.EVENT_PAGE:
            return read
        after = page[-1]["seq"]


async def socket_replays(url: str, repeats: int) -> list[tuple[int, float]]:
    """(events replayed, seconds to replay.complete) for `repeats` fresh connections."""
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        ws, replayed = await events_subscribe(url)
        timings.append((replayed, time.perf_counter() - started))
        await ws.close()
    return timings


async def reads(session_id: uuid.UUID, after: int, repeats: int) -> list[tuple[int, float]]:
    read = database_sync_to_async(log_read)
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        count = await read(session_id=session_id, after=after)
        timings.append((count, time.perf_counter() - started))
    return timings


def rate(timings: list[tuple[int, float]]) -> tuple[float, float]:
    """Events/s and milliseconds of the median run."""
    seconds = median([elapsed for _, elapsed in timings])
    count = timings[0][0]
    return count / seconds, seconds * 1000


def run(ctx: BenchContext) -> list[Result]:
    events = QUICK_EVENTS if ctx.quick else EVENTS
    session, token = session_open()
    log_write(session_id=session.id, events=events)
    with BenchServer(env=ctx.server_env(), workdir=ctx.workdir, name="replay") as server:
        # The first subscriber makes the session `running`; the timed ones change nothing.
        asyncio.run(socket_replays(events_url(server.ws_url, str(session.id), token), 1))
        last_seq = Session.objects.values_list("last_seq", flat=True).get(pk=session.id)
        tail_after = last_seq - TAIL
        full = asyncio.run(socket_replays(events_url(server.ws_url, str(session.id), token, after=0), REPEATS))
        tail = asyncio.run(
            socket_replays(events_url(server.ws_url, str(session.id), token, after=tail_after), TAIL_REPEATS)
        )
    full_read = asyncio.run(reads(session.id, 0, REPEATS))
    tail_read = asyncio.run(reads(session.id, tail_after, TAIL_REPEATS))

    if full[0][0] != full_read[0][0] or tail[0][0] != tail_read[0][0]:
        raise AssertionError(f"replay: the socket sent {full[0][0]}/{tail[0][0]}, the log has {full_read[0][0]}")
    value, value_ms = rate(full)
    baseline, baseline_ms = rate(full_read)
    _, tail_ms = rate(tail)
    _, tail_read_ms = rate(tail_read)
    print(f"  replay after=0: {value_ms:.0f} ms on the socket, {baseline_ms:.0f} ms to read", flush=True)
    print(f"  resume after=last_seq-{TAIL}: {tail_ms:.1f} ms on the socket, {tail_read_ms:.1f} ms to read", flush=True)
    return [
        Result(
            bench="replay",
            name=f"replay after=0, {last_seq:,}-event log",
            value=value,
            baseline=baseline,
            units="events/s",
            lower_is_better=False,
            details={"events": full[0][0], "ms": value_ms, "baseline_ms": baseline_ms},
        ),
        # What a resuming client waits for: connect, authorise, subscribe, the last events, replay.complete.
        Result(
            bench="replay",
            name=f"resume after=last_seq-{TAIL} of {last_seq:,}",
            value=tail_ms,
            baseline=tail_read_ms,
            units="ms",
            lower_is_better=True,
            details={"events": tail[0][0], "repeats": TAIL_REPEATS},
        ),
    ]
