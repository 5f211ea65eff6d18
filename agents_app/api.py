"""HTTP interface of runs and messages: parse, authorise, call one service or selector, serialise."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router, Status

from agents_app import selectors, services
from agents_app.schemas import MessagesOut, RunCreateIn, RunOut, RunStopOut
from sessions_app.api import ERRORS, authorized_session
from sessions_app.schemas import ErrorOut

router = Router(tags=["runs"])


@router.post(
    "/sessions/{session_id}/runs",
    response={202: RunOut, 409: ErrorOut, **ERRORS},
    summary="Start an agent run (a run in flight is stopped first)",
)
def run_create(request: HttpRequest, session_id: str, payload: RunCreateIn):
    session = authorized_session(request, session_id)
    run = services.run_start(session=session, input=payload.input, agent=payload.agent)
    return Status(202, selectors.run_json(run))


@router.get("/sessions/{session_id}/runs/{run_id}", response={200: RunOut, **ERRORS}, summary="Read a run")
def run_read(request: HttpRequest, session_id: str, run_id: str):
    session = authorized_session(request, session_id)
    return selectors.run_json(selectors.run_get(session=session, run_id=run_id))


@router.post(
    "/sessions/{session_id}/runs/{run_id}/stop",
    response={200: RunStopOut, **ERRORS},
    summary="Stop a run (queued or draining); false when it had already ended",
)
def run_stop(request: HttpRequest, session_id: str, run_id: str):
    session = authorized_session(request, session_id)
    run = selectors.run_get(session=session, run_id=run_id)
    return {"stopped": services.run_stop(run=run)}


@router.get(
    "/sessions/{session_id}/messages", response={200: MessagesOut, **ERRORS}, summary="The session's conversation"
)
def session_messages(request: HttpRequest, session_id: str):
    return {"messages": selectors.messages_json(session=authorized_session(request, session_id))}
