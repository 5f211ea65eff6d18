"""Reads of runs and the conversation."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

from agents_app import errors
from agents_app.agents.base import AgentContext
from agents_app.models import Message, Run
from sessions_app.errors import LinnetError
from sessions_app.models import Event, Session


def run_get(*, session: Session, run_id: uuid.UUID | str) -> Run:
    """A run of this session, or LinnetError(404 run_not_found) for an unknown or malformed id."""
    try:
        parsed = uuid.UUID(str(run_id))
    except ValueError:
        raise LinnetError(errors.RUN_NOT_FOUND, errors.MESSAGES[errors.RUN_NOT_FOUND], status=404) from None
    run = Run.objects.filter(pk=parsed, session=session).defer("output").first()
    if run is None:
        raise LinnetError(errors.RUN_NOT_FOUND, errors.MESSAGES[errors.RUN_NOT_FOUND], status=404)
    return run


def run_json(run: Run) -> dict:
    return {
        "id": str(run.id),
        "session_id": str(run.session_id),
        "agent": run.agent,
        "input": run.input,
        "status": run.status,
        "phase": run.phase,
        "stop_requested": run.stop_requested,
        "input_request": run.input_request,
        "created_at": run.created_at.isoformat(),
        "started_at": _iso(run.started_at),
        "ended_at": _iso(run.ended_at),
        "error": run.error,
        "worker_id": run.worker_id,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def messages_json(*, session: Session) -> list[dict]:
    return [message.as_json() for message in Message.objects.filter(session=session).order_by("created_at", "id")]


def conversation(*, session_id: uuid.UUID | str) -> list[dict]:
    """The session's messages as chat turns, oldest first."""
    rows = Message.objects.filter(session_id=session_id).exclude(content="").order_by("created_at", "id")
    return [{"role": role, "content": content} for role, content in rows.values_list("role", "content")]


def agent_context(*, run_id: uuid.UUID | str, receive_input: Callable[[], Awaitable[dict]]) -> AgentContext:
    """Everything an agent reads at the start of its run."""
    run = Run.objects.select_related("session").defer("output").get(pk=run_id)
    # Earlier runs' deltas are repeated whole in their run.done; leaving them out keeps this small.
    rows = Event.objects.filter(session_id=run.session_id).exclude(type="run.delta").order_by("seq")
    events = [
        {"seq": seq, "type": type_, "ts": ts, "data": data}
        for seq, type_, ts, data in rows.values_list("seq", "type", "ts", "data")
    ]
    return AgentContext(
        run_id=run.id,
        session=run.session,
        input=run.input,
        messages=conversation(session_id=run.session_id),
        events=events,
        receive_input=receive_input,
    )
