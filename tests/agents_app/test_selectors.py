"""What a run reads at its start: only the log events its agent reads, and at most the latest ones."""

from __future__ import annotations

import pytest

from agents_app.agents.notes import AUDIO_EVENT_TYPES
from agents_app.selectors import agent_context
from sessions_app.services.events import events_append
from sessions_app.services.sessions import session_open
from tests.agents_app.conftest import claimed_run, worker_lease

pytestmark = pytest.mark.django_db(transaction=True)

A_SESSION_LOG = [
    ("service", {"status": "ready", "detail": "in-process classifier"}),
    ("tone", {"label": "calm", "confidence": 0.8, "speaker_id": "S1", "start": 0.0, "end": 1.0}),
    ("speaker", {"label": "S1", "confidence": 0.9, "start": 0.0, "end": 1.0}),
    ("transcript", {"text": "hello", "speaker_id": "S1", "start": 0.0, "end": 1.0}),
    ("input_required", {"run_id": "r0", "fields": [], "reason": "an earlier run asked"}),
    ("queue", {"label": "silence", "confidence": 0.9, "start": 1.0, "end": 2.0}),
    ("run.status", {"run_id": "r0", "phase": "writing"}),
    ("environ", {"label": "dead_air", "confidence": 0.9, "start": 2.0, "end": 3.0}),
    ("run.done", {"run_id": "r0", "status": "done", "message": {"id": None, "role": "assistant", "content": ""}}),
]


async def _receive_input() -> dict:
    return {}


def _claimed_run(agent: str, log: list[tuple[str, dict]]):
    session, _ = session_open(kind="voice")
    events_append(session_id=session.id, items=log)
    return claimed_run(session, worker_id=worker_lease(), input="what happened?", agent=agent)


def test_a_notes_run_reads_only_the_sessions_audio_events():
    run = _claimed_run("notes", A_SESSION_LOG)

    context = agent_context(run_id=run.id, receive_input=_receive_input)

    assert [e["type"] for e in context.events] == ["tone", "speaker", "transcript", "queue", "environ"]
    assert {e["type"] for e in context.events} == AUDIO_EVENT_TYPES
    seqs = [e["seq"] for e in context.events]
    assert seqs == sorted(seqs)
    assert context.events[0]["data"]["label"] == "calm"
    assert not context.earlier_events_left_out


def test_an_openai_run_reads_the_conversation_and_no_log_events():
    run = _claimed_run("openai", A_SESSION_LOG)

    context = agent_context(run_id=run.id, receive_input=_receive_input)

    assert context.events == [] and not context.earlier_events_left_out
    assert context.messages == [{"role": "user", "content": "what happened?"}]


def test_a_run_reads_at_most_the_latest_agent_context_max_events(settings):
    settings.AGENT_CONTEXT_MAX_EVENTS = 3
    tones = [("tone", {"label": f"t{i}", "start": float(i), "end": float(i + 1)}) for i in range(5)]
    log = [item for tone in tones for item in (tone, ("service", {"status": "ready", "detail": ""}))]

    context = agent_context(run_id=_claimed_run("notes", log).id, receive_input=_receive_input)

    assert [e["data"]["label"] for e in context.events] == ["t2", "t3", "t4"]
    assert context.earlier_events_left_out


def test_a_run_within_the_cap_is_told_nothing_was_left_out(settings):
    settings.AGENT_CONTEXT_MAX_EVENTS = 3
    tones = [("tone", {"label": f"t{i}", "start": float(i), "end": float(i + 1)}) for i in range(3)]

    context = agent_context(run_id=_claimed_run("notes", tones).id, receive_input=_receive_input)

    assert [e["data"]["label"] for e in context.events] == ["t0", "t1", "t2"]
    assert not context.earlier_events_left_out
