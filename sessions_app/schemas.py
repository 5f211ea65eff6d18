"""Request and response shapes of the session API (they also make /api/openapi.json)."""

from __future__ import annotations

from typing import Any, Literal

from ninja import Schema
from pydantic import ConfigDict, Field, StrictBool, field_validator


class ErrorBody(Schema):
    code: str
    message: str


class ErrorOut(Schema):
    error: ErrorBody


class SessionCreateIn(Schema):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["voice", "agent"] = "voice"
    elcor: StrictBool = False
    window_ms: int | None = Field(default=None, ge=100, le=3000, description="Multiple of 100.")
    language: str = Field(default="en", min_length=2, max_length=16, pattern=r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")
    num_speakers: int | None = Field(default=None, ge=1, le=16)

    @field_validator("window_ms")
    @classmethod
    def _window_is_whole_tenths(cls, value: int | None) -> int | None:
        if value is not None and value % 100:
            raise ValueError("window_ms must be a multiple of 100")
        return value


class SessionOptionsOut(Schema):
    elcor: bool
    window_ms: int
    language: str
    num_speakers: int | None


class SessionOut(Schema):
    id: str
    kind: str
    state: str
    phase: str
    next_action: str
    options: SessionOptionsOut
    created_at: str
    last_heartbeat_at: str | None
    last_subscriber_left_at: str | None
    ended_at: str | None
    subscribers: int
    last_seq: int
    pending_input: dict[str, Any] | None
    result: Any = None
    error: dict[str, Any] | None


class SessionUrlsOut(Schema):
    events_ws: str
    audio_ws: str
    stream: str


class SessionCreatedOut(SessionOut):
    token: str
    urls: SessionUrlsOut


class InputIn(Schema):
    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any]


class EventOut(Schema):
    seq: int
    type: str
    ts: float
    data: dict[str, Any]


class EventsPageOut(Schema):
    events: list[EventOut]
    last_seq: int
