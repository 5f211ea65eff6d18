"""Runs that ask a person: input_required and back, over HTTP and WebSocket; GC and stop while waiting."""

from __future__ import annotations

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.conf import settings

from agents_app.agents.base import Delta, InputField, InputRequest
from agents_app.models import RunStatus
from sessions_app.clock import utcnow
from sessions_app.models import Session
from sessions_app.services.events import events_append
from sessions_app.services.lifecycle import gc_once
from tests.agents_app.conftest import alog, arun_row, drained, frames_until_close, run_row
from tests.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = InputRequest(fields=(InputField("focus", "text", "What should I cover?"),), reason="Need a focus.")


def _two_speakers(session_id) -> None:
    events_append(
        session_id=session_id,
        items=[
            ("tone", {"label": "calm", "confidence": 0.9, "speaker_id": "S1", "start": 0.0, "end": 1.0}),
            ("transcript", {"text": "hello from one", "speaker_id": "S1", "start": 0.0, "end": 1.0}),
            ("tone", {"label": "animated", "confidence": 0.8, "speaker_id": "S2", "start": 1.0, "end": 2.0}),
            ("transcript", {"text": "hello from two", "speaker_id": "S2", "start": 1.0, "end": 2.0}),
        ],
    )


def _session(session_id) -> Session:
    return Session.objects.get(pk=session_id)


async def test_notes_asks_which_speaker_and_resumes_with_the_http_answer(amake_session, pool, api):
    session, token = await amake_session(kind="voice")
    await database_sync_to_async(_two_speakers)(session.id)
    client = api(session.id, token)
    run = (await client.post("/runs", {"input": "", "agent": "notes"})).json()
    await pool.claim_once()

    await until(lambda: run_row(run["id"]).status == RunStatus.INPUT_REQUIRED, what="the run to ask")
    waiting = (await client.get("")).json()
    request = (await alog(session.id, "input_required"))[-1]["data"]
    assert waiting["state"] == "input_required" and waiting["next_action"] == "awaiting_input"
    assert waiting["pending_input"] == request
    assert request["run_id"] == run["id"]
    assert request["fields"] == [
        {
            "name": "speaker",
            "type": "choice",
            "label": "Which speaker should the notes follow?",
            "options": ["S1", "S2", "all"],
        }
    ]
    assert "2 speakers" in request["reason"]
    assert (await client.get(f"/runs/{run['id']}")).json()["input_request"]["fields"] == request["fields"]

    answered = await client.post("/input", {"input": {"speaker": "S2"}})
    assert answered.status_code == 200 and answered.json()["state"] == "running"
    await until(lambda: run_row(run["id"]).status == RunStatus.DONE, what="the run to finish")

    content = (await alog(session.id, "run.done"))[-1]["data"]["message"]["content"]
    assert "Following speaker S2." in content
    assert "hello from two" in content and "hello from one" not in content
    after = await database_sync_to_async(_session)(session.id)
    assert after.state == "running" and after.pending_input is None and after.next_action == "none"


async def test_input_sent_over_the_events_socket_resumes_the_run(live_run, subscriber):
    live = await live_run()
    client = subscriber(live.session.id, token=live.token)
    assert await client.connect()
    await client.receive_until_replay_complete()

    live.agent.feed(QUESTION)
    while (event := await client.receive())["type"] != "input_required":
        pass
    assert event["data"]["run_id"] == str(live.id)
    await client.send({"type": "input", "input": {"focus": "the tense part"}})
    live.agent.feed(Delta("covering the tense part"))
    live.agent.end()
    while (event := await client.receive())["type"] != "run.done":
        pass

    assert live.agent.answers == [{"focus": "the tense part"}]
    assert event["data"]["status"] == "done"
    assert event["data"]["message"]["content"] == "covering the tense part"
    assert (await database_sync_to_async(_session)(live.session.id)).state == "running"


async def test_gc_of_an_abandoned_session_ends_the_waiting_run_stopped_before_session_ended(live_run, pool, subscriber):
    live = await live_run()
    live.agent.feed(Delta("before the question"), QUESTION)
    await until(lambda: _session(live.session.id).state == "input_required")
    watcher = subscriber(live.session.id, token=live.token)
    assert await watcher.connect()
    await watcher.receive_until_replay_complete()

    later = utcnow() + timedelta(seconds=settings.SESSION_GC_AFTER_S + 1)
    assert await database_sync_to_async(gc_once)(now=later) == 1

    # Ended by the GC pass itself, not by the drain waking up later.
    stopped = await arun_row(live.id)
    assert stopped.status == RunStatus.STOPPED and stopped.ended_at == later
    frames, code = await frames_until_close(watcher)
    assert [e["type"] for e in frames] == ["session.state", "run.done", "session.ended"]
    assert frames[1]["data"]["status"] == "stopped"
    assert frames[1]["data"]["message"]["content"] == "before the question"
    assert frames[2]["data"]["error"]["code"] == "session_abandoned"
    assert code == 1000
    await drained(pool, timeout=2)

    assert live.agent.answers == [] and live.agent.closed
    ended = await database_sync_to_async(_session)(live.session.id)
    assert ended.state == "aborted" and ended.error["code"] == "session_abandoned"
    events = await alog(live.session.id)
    assert events[-1]["type"] == "session.ended" and events[-2]["seq"] == frames[1]["seq"]


async def test_stopping_a_run_that_waits_for_input_resumes_the_session(live_run, pool, api):
    live = await live_run()
    client = api(live.session.id, live.token)
    live.agent.feed(QUESTION)
    await until(lambda: _session(live.session.id).state == "input_required")

    assert (await client.post(f"/runs/{live.id}/stop")).json() == {"stopped": True}
    await drained(pool, timeout=2)

    assert (await arun_row(live.id)).status == RunStatus.STOPPED
    after = await database_sync_to_async(_session)(live.session.id)
    assert after.state == "running" and after.pending_input is None and after.next_action == "none"
    late = await client.post("/input", {"input": {"focus": "too late"}})
    assert late.status_code == 409 and late.json()["error"]["code"] == "not_awaiting_input"
