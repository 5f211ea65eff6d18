"""Drains: runs that outlive their clients, stops that keep the partial, and ordered double-sends."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.db import OperationalError

from agents_app import drains
from agents_app.agents.base import AgentError, Delta, Phase
from agents_app.models import Message, Run, RunStatus
from agents_app.services import run_stop
from sessions_app.services import events
from sessions_app.services.events import events_append
from tests.agents_app.conftest import alog, arun_row, arun_start, drained, frames_until_close, run_row, run_text
from tests.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)


class StoppedClock:
    """Stands in for the drain module's `time`: a clock that never moves."""

    @staticmethod
    def monotonic() -> float:
        return 0.0


@pytest.fixture
def published(monkeypatch) -> list[list[dict]]:
    """The envelopes of every layer message the event log publishes, one list per publish."""
    publishes: list[list[dict]] = []
    publish = events.events_publish

    def record(*, session_id, envelopes: list[dict]) -> None:
        publishes.append(envelopes)
        publish(session_id=session_id, envelopes=envelopes)

    monkeypatch.setattr(events, "events_publish", record)
    return publishes


def run_items(publishes: list[list[dict]]) -> list[list[tuple[str, str]]]:
    """What each publish carried of runs' output: (type, text or phase) of its deltas and status changes."""
    carried = [
        [
            (e["type"], e["data"].get("text") or e["data"].get("phase"))
            for e in envelopes
            if e["type"] in ("run.delta", "run.status")
        ]
        for envelopes in publishes
    ]
    return [items for items in carried if items]


def _tones(session_id) -> None:
    events_append(
        session_id=session_id,
        items=[
            (
                "tone",
                {
                    "label": "calm",
                    "confidence": 0.8,
                    "speaker_id": "S1",
                    "shift_magnitude": 0.0,
                    "shift_direction": "stable",
                    "affect": "neutral",
                    "start": 0.0,
                    "end": 1.0,
                },
            ),
            (
                "tone",
                {
                    "label": "tense",
                    "confidence": 0.7,
                    "speaker_id": "S1",
                    "shift_magnitude": 0.6,
                    "shift_direction": "escalating",
                    "affect": "irritated",
                    "start": 1.0,
                    "end": 2.0,
                },
            ),
        ],
    )


async def test_run_completes_with_nobody_subscribed_and_a_later_subscriber_gets_everything(
    amake_session, pool, subscriber
):
    session, token = await amake_session(kind="agent")
    await database_sync_to_async(_tones)(session.id)
    run = await arun_start(session=session, input="notes please", agent="notes")

    assert await pool.claim_once() == 1
    await drained(pool)

    finished = await arun_row(run.id)
    assert finished.status == RunStatus.DONE and finished.ended_at is not None
    client = subscriber(session.id, token=token)
    assert await client.connect()
    events, complete = await client.receive_until_replay_complete()
    types = [e["type"] for e in events]
    assert types.index("run.started") < types.index("run.delta") < types.index("run.done")
    done = next(e for e in events if e["type"] == "run.done")["data"]
    assert done["status"] == "done"
    assert done["message"]["role"] == "assistant"
    assert done["message"]["content"] == run_text(events, run.id) == finished.output
    assert "tense" in done["message"]["content"]
    saved = await database_sync_to_async(Message.objects.get)(pk=done["message"]["id"])
    assert saved.content == done["message"]["content"] and saved.run_id == run.id
    assert complete["last_seq"] == events[-1]["seq"]


async def test_resubscribing_with_after_gets_exactly_the_rest_of_a_run(live_run, pool, subscriber):
    live = await live_run()
    first = subscriber(live.session.id, token=live.token)
    assert await first.connect()
    seen, _ = await first.receive_until_replay_complete()

    live.agent.feed(Delta("one "), Delta("two "))
    while not any(e["type"] == "run.delta" and e["data"]["text"].endswith("two ") for e in seen):
        seen.append(await first.receive())
    await first.close()

    live.agent.feed(Delta("three "), Phase("closing"), Delta("four"))
    live.agent.end()
    await drained(pool)
    again = subscriber(live.session.id, token=live.token, after=seen[-1]["seq"])
    assert await again.connect()
    rest, _ = await again.receive_until_replay_complete()

    everything = await alog(live.session.id)
    assert [e["seq"] for e in seen + rest] == [e["seq"] for e in everything]
    assert run_text(seen + rest, live.id) == "one two three four"
    assert (seen + rest)[-1]["type"] == "run.done"
    assert (seen + rest)[-1]["data"]["message"]["content"] == "one two three four"


async def test_stop_mid_run_keeps_the_partial(live_run, pool, api):
    live = await live_run()
    await live.stream("partial ", "answer")

    response = await api(live.session.id, live.token).post(f"/runs/{live.id}/stop")
    assert response.status_code == 200 and response.json() == {"stopped": True}
    await drained(pool)

    stopped = await arun_row(live.id)
    assert stopped.status == RunStatus.STOPPED
    assert live.agent.closed
    done = (await alog(live.session.id, "run.done"))[-1]["data"]
    assert done["status"] == "stopped"
    assert done["message"]["content"] == "partial answer"
    assert "error" not in done
    message = await database_sync_to_async(Message.objects.get)(run=live.run, role="assistant")
    assert message.content == "partial answer" and str(message.id) == done["message"]["id"]


async def test_stop_includes_text_the_drain_had_not_written_yet(live_run, pool):
    live = await live_run()
    writing = await live.hold("still ", "buffered")
    assert (await arun_row(live.id)).output == ""

    assert await database_sync_to_async(run_stop)(run=live.run)
    # The write in flight stores "still " and reads the stop back; "buffered" was never written.
    writing.set()
    await drained(pool)

    events = await alog(live.session.id)
    assert run_text(events, live.id) == "still buffered"
    assert events[-1]["type"] == "run.done"
    assert events[-1]["data"]["message"]["content"] == "still buffered"


async def test_a_stop_written_by_another_process_is_noticed_by_polling(live_run, pool):
    live = await live_run()
    await live.stream("x")

    # What run_stop in another process looks like here: the row changes, no layer message arrives.
    await database_sync_to_async(Run.objects.filter(pk=live.id).update)(stop_requested=True)
    await drained(pool, timeout=2)

    assert (await arun_row(live.id)).status == RunStatus.STOPPED


async def test_stop_before_pickup_means_the_run_never_starts(amake_session, pool, scripted, api):
    agent = scripted()
    session, token = await amake_session(kind="agent")
    client = api(session.id, token)
    created = (await client.post("/runs", {"input": "go", "agent": "scripted"})).json()

    stop = await client.post(f"/runs/{created['id']}/stop")
    claimed = await pool.claim_once()
    await drained(pool)

    assert stop.json() == {"stopped": True}
    assert claimed == 0 and agent.contexts == []
    run = (await client.get(f"/runs/{created['id']}")).json()
    assert run["status"] == "stopped" and run["started_at"] is None and run["ended_at"] is not None
    events = await alog(session.id, "run.started", "run.done")
    assert [e["type"] for e in events] == ["run.done"]
    assert events[0]["data"]["status"] == "stopped"
    assert events[0]["data"]["message"] == {"id": None, "role": "assistant", "content": ""}
    again = await client.post(f"/runs/{created['id']}/stop")
    assert again.json() == {"stopped": False}


async def test_a_new_run_starts_only_after_the_old_runs_partial_is_saved(live_run, api):
    old = await live_run()
    await database_sync_to_async(_tones)(old.session.id)
    await old.stream("old partial")
    client = api(old.session.id, old.token)

    new = (await client.post("/runs", {"input": "second", "agent": "notes"})).json()
    assert new["status"] == "queued"
    # The pool is listening: the old run's end wakes a claim for the new one.
    await until(lambda: run_row(new["id"]).status == RunStatus.DONE, what="the new run to finish")

    events = await alog(old.session.id, "run.started", "run.done")
    order = [(e["type"], e["data"]["run_id"]) for e in events]
    assert order == [
        ("run.started", str(old.id)),
        ("run.done", str(old.id)),
        ("run.started", new["id"]),
        ("run.done", new["id"]),
    ]
    assert events[1]["data"]["status"] == "stopped"
    assert events[1]["data"]["message"]["content"] == "old partial"
    messages = (await client.get("/messages")).json()["messages"]
    assert [(m["role"], m["run_id"]) for m in messages] == [
        ("user", str(old.id)),
        ("assistant", str(old.id)),
        ("user", new["id"]),
        ("assistant", new["id"]),
    ]


async def test_fast_agent_deltas_are_batched_into_few_writes(live_run, pool):
    live = await live_run()
    live.agent.feed(*(Delta(f"{i} ") for i in range(1000)))
    live.agent.end()
    await drained(pool)

    events = await alog(live.session.id)
    deltas = [e for e in events if e["type"] == "run.delta"]
    assert run_text(events, live.id) == "".join(f"{i} " for i in range(1000))
    assert len(deltas) <= 1000 // 64 + 2
    assert events[-1]["data"]["message"]["content"] == run_text(events, live.id)


async def test_agent_error_ends_the_run_error_with_its_message(live_run, pool):
    live = await live_run()
    live.agent.feed(Delta("so far"), AgentError("upstream_error", "The model server answered HTTP 500: boom"))
    await drained(pool)

    failed = await arun_row(live.id)
    assert failed.status == RunStatus.ERROR
    assert failed.error == {"code": "upstream_error", "message": "The model server answered HTTP 500: boom"}
    done = (await alog(live.session.id, "run.done"))[-1]["data"]
    assert done["status"] == "error" and done["error"] == failed.error
    assert done["message"]["content"] == "so far"


async def test_ending_the_session_ends_its_run_stopped_before_session_ended(live_run, pool, api, subscriber):
    live = await live_run()
    await live.stream("half")
    watcher = subscriber(live.session.id, token=live.token)
    assert await watcher.connect()
    await watcher.receive_until_replay_complete()
    writing = await live.hold(" in flight", " never written")

    ended = await api(live.session.id, live.token).delete()

    assert ended.json()["state"] == "done"
    # Ended inside the DELETE, not at the drain's next poll.
    stopped = await arun_row(live.id)
    assert stopped.status == RunStatus.STOPPED and stopped.ended_at is not None
    message = await database_sync_to_async(Message.objects.get)(run=live.run, role="assistant")
    assert message.content == "half"
    frames, code = await frames_until_close(watcher)
    frame_types = [e["type"] for e in frames]
    assert frame_types.index("run.done") < frame_types.index("session.ended")
    assert code == 1000
    # The held write finds the run ended and writes nothing.
    writing.set()
    await drained(pool)

    events = await alog(live.session.id)
    types = [e["type"] for e in events]
    assert types.index("run.done") < types.index("session.ended") == len(types) - 1
    done = events[types.index("run.done")]["data"]
    assert done["status"] == "stopped"
    assert done["message"] == {"id": str(message.id), "role": "assistant", "content": "half"}
    assert run_text(events, live.id) == "half"
    assert live.agent.closed


async def test_a_queued_run_is_claimed_at_once_when_the_pool_listens(amake_session, pool, settings):
    settings.AGENT_CLAIM_INTERVAL_S = 3600
    session, _ = await amake_session(kind="agent")
    await pool.claim_once()
    run = await arun_start(session=session, input="", agent="notes")

    await until(lambda: run_row(run.id).status != RunStatus.QUEUED, timeout=2, what="the layer wake-up to claim it")


async def test_a_worker_drains_at_most_its_concurrency(live_run, pool, settings):
    settings.AGENT_DRAIN_CONCURRENCY = 2
    runs = [await live_run(claim=False) for _ in range(3)]

    assert await pool.claim_once() == 2
    assert await pool.claim_once() == 0
    statuses = [(await arun_row(live.id)).status for live in runs]
    assert sorted(statuses) == ["queued", "running", "running"]


async def test_the_drain_renews_the_run_lease(live_run, settings):
    settings.AGENT_RUN_LEASE_TTL_S = 0.4
    live = await live_run()
    first = (await arun_row(live.id)).lease_expires_at

    renewed = await until(lambda: live.row().lease_expires_at > first, what="the lease to be renewed")

    assert renewed
    assert (await arun_row(live.id)).status == RunStatus.RUNNING


async def test_a_failed_write_is_retried_without_losing_or_repeating_text(live_run, pool, monkeypatch):
    write = drains._run_progress
    failed: list = []

    async def locked_once(**kwargs):
        if kwargs["items"] and not failed:
            failed.append(kwargs["items"])
            raise OperationalError("database is locked")
        return await write(**kwargs)

    monkeypatch.setattr(drains, "_run_progress", locked_once)
    live = await live_run()
    live.agent.feed(Delta("never "), Delta("lost"))
    live.agent.end()
    await drained(pool)

    assert failed
    events = await alog(live.session.id)
    assert run_text(events, live.id) == "never lost"
    assert events[-1]["data"]["status"] == "done" and events[-1]["data"]["message"]["content"] == "never lost"


async def test_a_lone_delta_is_stored_and_published_at_once_not_on_a_timer(live_run, subscriber, monkeypatch, settings):
    settings.AGENT_RUN_POLL_S = 3600
    # With the drain's clock stopped, a write that waited for time to pass would never happen.
    monkeypatch.setattr(drains, "time", StoppedClock)
    live = await live_run()
    watcher = subscriber(live.session.id, token=live.token)
    assert await watcher.connect()
    await watcher.receive_until_replay_complete()

    live.agent.feed(Delta("hello"))
    frame = await watcher.receive()

    assert (frame["type"], frame["data"]["text"]) == ("run.delta", "hello")
    assert (await arun_row(live.id)).output == "hello"
    assert live.writes.of(live.id) == [[Delta("hello")]]


async def test_items_that_arrive_during_a_write_go_together_in_the_next_write(live_run, pool, published):
    live = await live_run()
    writing = live.writes.hold_next(live.id)
    live.agent.feed(Delta("first "))
    await live.writes.until_held()
    arrived = [Delta("a "), Delta("b "), Phase("checking"), Delta("c")]
    live.agent.feed(*arrived)
    await live.agent.handed_over(1 + len(arrived))
    assert live.writes.of(live.id) == [[Delta("first ")]]

    writing.set()
    live.agent.end()
    await drained(pool)

    assert live.writes.of(live.id) == [[Delta("first ")], arrived]
    assert run_items(published) == [
        [("run.delta", "first ")],
        [("run.delta", "a b "), ("run.status", "checking"), ("run.delta", "c")],
    ]
    logged = await alog(live.session.id)
    assert run_text(logged, live.id) == "first a b c" == logged[-1]["data"]["message"]["content"]


async def test_a_write_carries_at_most_agent_delta_flush_max_items(live_run, pool, settings):
    settings.AGENT_DELTA_FLUSH_MAX = 3
    live = await live_run()
    writing = live.writes.hold_next(live.id)
    live.agent.feed(Delta("0 "))
    await live.writes.until_held()
    live.agent.feed(*(Delta(f"{i} ") for i in range(1, 8)))
    await live.agent.handed_over(4)
    # A full buffer makes the agent wait: it is not asked for a fifth item while the write is in flight.
    assert live.agent.yielded == 4

    writing.set()
    live.agent.end()
    await drained(pool)

    batches = live.writes.of(live.id)
    assert batches[:2] == [[Delta("0 ")], [Delta("1 "), Delta("2 "), Delta("3 ")]]
    assert max(len(batch) for batch in batches) == 3
    assert [item for batch in batches for item in batch] == [Delta(f"{i} ") for i in range(8)]
    assert run_text(await alog(live.session.id), live.id) == "0 1 2 3 4 5 6 7 "
