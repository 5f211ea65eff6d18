"""Reads of runs and the conversation."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime

from django.conf import settings

from agents_app import errors
from agents_app.agents import AGENT_EVENT_TYPES
from agents_app.agents.base import AgentContext
from agents_app.models import Message, Run
from sessions_app.errors import LinnetError
from sessions_app.models import ENVELOPE_FIELDS, Event, Session, event_envelope


def run_get(*, session: Session, run_id: uuid.UUID | str) -> Run:
    """A run of this session, or LinnetError(404 run_not_found) for an unknown or malformed id."""
    try:
        parsed = uuid.UUID(str(run_id))
    except ValueError:
        raise LinnetError(errors.RUN_NOT_FOUND, status=404) from None
    run = Run.objects.filter(pk=parsed, session=session).defer("output").first()
    if run is None:
        raise LinnetError(errors.RUN_NOT_FOUND, status=404)
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


def agent_events(*, session_id: uuid.UUID | str, types: Collection[str], limit: int) -> tuple[list[dict], bool]:
    """A session's latest `limit` logged envelopes of `types`, oldest first, and whether older ones were left out."""
    if not types:
        return [], False
    rows = list(
        Event.objects.filter(session_id=session_id, type__in=sorted(types))
        .order_by("-seq")
        .values_list(*ENVELOPE_FIELDS)[: limit + 1]
    )
    left_out = len(rows) > limit
    events = [event_envelope(*row) for row in reversed(rows[:limit])]
    return events, left_out


def agent_context(*, run_id: uuid.UUID | str, receive_input: Callable[[], Awaitable[dict]]) -> AgentContext:
    """What an agent reads at the start of its run: the conversation, and the log events of the types it reads."""
    run = Run.objects.select_related("session").defer("output").get(pk=run_id)
    events, left_out = agent_events(
        session_id=run.session_id,
        types=AGENT_EVENT_TYPES.get(run.agent, frozenset()),
        limit=settings.AGENT_CONTEXT_MAX_EVENTS,
    )
    return AgentContext(
        run_id=run.id,
        session=run.session,
        input=run.input,
        messages=conversation(session_id=run.session_id),
        events=events,
        receive_input=receive_input,
        earlier_events_left_out=left_out,
    )
