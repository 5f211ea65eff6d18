"""Request and response shapes of the session API (they also make /api/openapi.json)."""

from __future__ import annotations

from typing import Any, Literal

from django.core.exceptions import ValidationError as DjangoValidationError
from ninja import Schema
from pydantic import ConfigDict, Field, StrictBool, field_validator

from sessions_app import options


class ErrorBody(Schema):
    code: str
    message: str


class ErrorOut(Schema):
    error: ErrorBody


class SessionCreateIn(Schema):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["voice", "agent"] = "voice"
    elcor: StrictBool = False
    window_ms: int | None = Field(
        default=None,
        ge=options.WINDOW_MS_MIN,
        le=options.WINDOW_MS_MAX,
        description=f"Multiple of {options.WINDOW_MS_STEP}.",
    )
    language: str = Field(
        default="en",
        min_length=options.LANGUAGE_MIN_LENGTH,
        max_length=options.LANGUAGE_MAX_LENGTH,
        pattern=options.LANGUAGE_PATTERN,
    )
    num_speakers: int | None = Field(default=None, ge=options.NUM_SPEAKERS_MIN, le=options.NUM_SPEAKERS_MAX)
    share_feedback: StrictBool = Field(
        default=False, description="Consent to export this session's tone feedback for training a classifier."
    )

    @field_validator("window_ms")
    @classmethod
    def _window_is_whole_steps(cls, value: int | None) -> int | None:
        if value is not None:
            try:
                options.validate_window_ms_step(value)
            except DjangoValidationError as exc:
                raise ValueError(exc.messages[0]) from None
        return value


class SessionOptionsOut(Schema):
    elcor: bool
    window_ms: int
    language: str
    num_speakers: int | None
    share_feedback: bool


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
