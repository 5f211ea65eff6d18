"""HTTP interface of sessions: parse, authorise, call one service or selector, serialise."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from ninja import Query, Router, Schema, Status
from ninja.errors import ValidationError
from pydantic import Field
from pydantic import ValidationError as PydanticValidationError

from sessions_app import errors, plugins, selectors
from sessions_app.consumers import parse_after
from sessions_app.errors import LinnetError
from sessions_app.models import EncodedEvent, Session
from sessions_app.schemas import (
    ErrorOut,
    EventsPageOut,
    InputIn,
    SessionCreatedOut,
    SessionCreateIn,
    SessionOut,
)
from sessions_app.services import sessions
from sessions_app.services.events import LAYER_EVENTS
from sessions_app.streaming import EventCursor, session_subscription

router = Router(tags=["sessions"])

ERRORS = {401: ErrorOut, 404: ErrorOut, 422: ErrorOut}
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def request_token(request: HttpRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.GET.get("token") or None


def _csrf_check(request: HttpRequest) -> None:
    # Cookie identity (staff, owner) on a write must prove it came from our own pages.
    failure = CsrfViewMiddleware(lambda r: HttpResponse()).process_view(request, None, (), {})
    if failure is not None:
        raise LinnetError(errors.UNAUTHORIZED, "CSRF check failed for a cookie-authenticated request.", status=403)


def authorized_session(request: HttpRequest, session_id: str) -> Session:
    """The session named in the URL, if the request may use it (token, staff or owner)."""
    token = request_token(request)
    session = selectors.session_get_authorized(session_id=session_id, token=token, user=request.user)
    if request.method not in SAFE_METHODS and not selectors.session_may_access(session=session, token=token):
        _csrf_check(request)
    return session


def session_urls(request: HttpRequest, session: Session, token: str) -> dict:
    http_base = request.build_absolute_uri("/").rstrip("/")
    ws_base = "ws" + http_base[len("http") :]
    return {
        "events_ws": f"{ws_base}/ws/sessions/{session.id}/events?token={token}",
        "audio_ws": f"{ws_base}/ws/sessions/{session.id}/audio?token={token}",
        "stream": f"{http_base}/api/sessions/{session.id}/stream?token={token}",
    }


def json_body(request: HttpRequest, schema: type[Schema]) -> Schema:
    """Validate an optional JSON body (an empty body means every default)."""
    raw = request.body
    if not raw.strip():
        return schema()
    try:
        return schema.model_validate_json(raw)
    except PydanticValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise LinnetError(errors.INVALID_REQUEST, "The request body is not valid JSON.") from None
        raise ValidationError(exc.errors(include_url=False, include_context=False)) from None


@router.post(
    "/sessions",
    response={201: SessionCreatedOut, 400: ErrorOut, 422: ErrorOut},
    summary="Open a session",
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": SessionCreateIn.model_json_schema()}},
        }
    },
)
def session_create(request: HttpRequest):
    payload = json_body(request, SessionCreateIn)
    session, token = sessions.session_open(
        kind=payload.kind,
        elcor=payload.elcor,
        window_ms=payload.window_ms,
        language=payload.language,
        num_speakers=payload.num_speakers,
        share_feedback=payload.share_feedback,
        owner=request.user,
    )
    body = selectors.session_json(session)
    return Status(201, {**body, "token": token, "urls": session_urls(request, session, token)})


@router.get("/sessions/{session_id}", response={200: SessionOut, **ERRORS}, summary="Read a session (liveness check)")
def session_read(request: HttpRequest, session_id: str):
    return selectors.session_json(authorized_session(request, session_id))


@router.delete("/sessions/{session_id}", response={200: SessionOut, **ERRORS}, summary="End a session (idempotent)")
def session_delete(request: HttpRequest, session_id: str):
    session = authorized_session(request, session_id)
    ended = sessions.session_end(session=session)
    return selectors.session_json(ended)


@router.post("/sessions/{session_id}/heartbeat", response={204: None, **ERRORS}, summary="Client heartbeat")
def session_heartbeat(request: HttpRequest, session_id: str):
    sessions.session_heartbeat(session=authorized_session(request, session_id))
    return Status(204, None)


@router.post(
    "/sessions/{session_id}/input",
    response={200: SessionOut, 409: ErrorOut, **ERRORS},
    summary="Answer the session's pending input request",
)
def session_input(request: HttpRequest, session_id: str, payload: InputIn):
    session = authorized_session(request, session_id)
    return selectors.session_json(sessions.session_input(session=session, input=payload.input))


class EventsQuery(Schema):
    after: int = Field(default=0, ge=0)
    type: str | None = Field(default=None, description="Comma-separated event types.")
    limit: int = Field(default=100, ge=1, le=1000)


@router.get("/sessions/{session_id}/events", response={200: EventsPageOut, **ERRORS}, summary="Event history")
def session_events(request: HttpRequest, session_id: str, query: Query[EventsQuery]):
    session = authorized_session(request, session_id)
    types = [t.strip() for t in query.type.split(",") if t.strip()] if query.type else None
    events = selectors.events_after(session_id=session.id, after=query.after, types=types, limit=query.limit)
    return {"events": events, "last_seq": session.last_seq}


@router.get("/sessions/{session_id}/export", response={200: dict, **ERRORS}, summary="Download everything")
def session_export(request: HttpRequest, session_id: str):
    session = authorized_session(request, session_id)
    body = {
        "session": selectors.session_json(session),
        **{name: build(session) for name, build in plugins.export_sections().items()},
        "events": list(selectors.events_iter(session_id=session.id)),
    }
    response = JsonResponse(body)
    response["Content-Disposition"] = f'attachment; filename="linnet-session-{session.id}.json"'
    return response


@router.get(
    "/sessions/{session_id}/stream",
    response={200: None, 400: ErrorOut, **ERRORS},
    summary="Server-sent events: replay after Last-Event-ID / ?after=, then live",
)
async def session_stream(request: HttpRequest, session_id: str):
    user = await request.auser()
    session = await database_sync_to_async(selectors.session_get_authorized)(
        session_id=session_id, token=request_token(request), user=user
    )
    after = parse_after(request.headers.get("Last-Event-ID") or request.GET.get("after"), session.last_seq)
    response = StreamingHttpResponse(sse_stream(session, after), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def sse_frame(event: EncodedEvent) -> str:
    return f"id: {event.seq}\nevent: {event.type}\ndata: {event.text}\n\n"


async def sse_stream(session: Session, after: int) -> AsyncIterator[str]:
    """Replay, then live, with a `: ping` comment every SSE_PING_INTERVAL_S."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    cursor = EventCursor(session.id, after)
    async with session_subscription(session, layer=layer, channel=channel, transport="sse"):
        yield "retry: 2000\n\n"
        async for page in cursor.replay():
            yield "".join(sse_frame(event) for event in page)
        complete = json.dumps({"type": "replay.complete", "last_seq": cursor.last_seq})
        yield f"event: replay.complete\ndata: {complete}\n\n"
        next_ping = time.monotonic() + settings.SSE_PING_INTERVAL_S
        while not cursor.ended:
            try:
                message = await asyncio.wait_for(layer.receive(channel), timeout=max(0.0, next_ping - time.monotonic()))
            except TimeoutError:
                yield ": ping\n\n"
                next_ping = time.monotonic() + settings.SSE_PING_INTERVAL_S
                continue
            if message.get("type") == LAYER_EVENTS:
                admitted = await cursor.admit(message["events"])
                if admitted:
                    yield "".join(sse_frame(event) for event in admitted)
