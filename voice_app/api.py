"""HTTP interface of tone feedback: parse, authorise, call one service, serialise."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router

from sessions_app.api import ERRORS, authorized_session
from voice_app import selectors, services
from voice_app.schemas import FeedbackIn, FeedbackOut

router = Router(tags=["feedback"])


@router.post(
    "/sessions/{session_id}/feedback",
    response={200: FeedbackOut, **ERRORS},
    summary="Mark one of the session's tones right or wrong (a later verdict replaces it)",
)
def feedback_create(request: HttpRequest, session_id: str, payload: FeedbackIn):
    session = authorized_session(request, session_id)
    feedback = services.feedback_give(
        session=session, seq=payload.seq, verdict=payload.verdict, label=payload.label, user=request.user
    )
    return selectors.feedback_json(feedback)
