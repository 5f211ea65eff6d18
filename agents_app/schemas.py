"""Request and response shapes of the run API (they also make /api/openapi.json)."""

from __future__ import annotations

from typing import Any

from ninja import Schema
from pydantic import ConfigDict, Field, StrictStr


class RunCreateIn(Schema):
    model_config = ConfigDict(extra="forbid")

    input: StrictStr = Field(max_length=20_000, description="What the person asked for; may be empty.")
    agent: StrictStr | None = Field(
        default=None, max_length=32, description="`notes` or `openai`; LINNET_AGENT when absent."
    )


class RunOut(Schema):
    id: str
    session_id: str
    agent: str
    input: str
    status: str
    phase: str
    stop_requested: bool
    input_request: dict[str, Any] | None
    created_at: str
    started_at: str | None
    ended_at: str | None
    error: dict[str, Any] | None
    worker_id: str | None


class RunStopOut(Schema):
    stopped: bool


class MessageOut(Schema):
    id: str
    role: str
    content: str
    run_id: str | None
    created_at: str


class MessagesOut(Schema):
    messages: list[MessageOut]
