"""HTTP interface of runs and messages."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router

from agents_app.selectors import messages_json
from sessions_app.api import ERRORS, authorized_session

router = Router(tags=["runs"])


@router.get("/sessions/{session_id}/messages", response={200: dict, **ERRORS}, summary="The session's conversation")
def session_messages(request: HttpRequest, session_id: str):
    return {"messages": messages_json(session=authorized_session(request, session_id))}
