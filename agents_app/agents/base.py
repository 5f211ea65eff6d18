"""What an agent is: an async generator of typed items, driven by a drain with a context.

An agent yields `Delta` (output text), `Phase` (what it is doing, logged as `run.status`)
and `InputRequest` (logged as `input_required`; the session waits for a person). After an
`InputRequest` it awaits `context.receive_input()` for the answer. It raises `AgentError`
for a failure the person should read (the run ends `error` with that code and message).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from sessions_app.models import Session


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Phase:
    phase: str


@dataclass(frozen=True)
class InputField:
    name: str
    type: str  # "text" or "choice"
    label: str
    options: tuple[str, ...] | None = None

    def as_json(self) -> dict:
        body: dict = {"name": self.name, "type": self.type, "label": self.label}
        if self.options is not None:
            body["options"] = list(self.options)
        return body


@dataclass(frozen=True)
class InputRequest:
    fields: tuple[InputField, ...]
    reason: str

    def as_json(self) -> dict:
        return {"fields": [f.as_json() for f in self.fields], "reason": self.reason}


AgentItem = Delta | Phase | InputRequest


class AgentError(Exception):
    """A failure with a stable code and a message meant for the person who started the run."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def as_json(self) -> dict:
        return {"code": self.code, "message": self.message}


@dataclass
class AgentContext:
    run_id: uuid.UUID
    session: Session
    input: str
    # The conversation so far, oldest first, as {"role", "content"}; ends with this run's input.
    messages: list[dict]
    # The session's logged envelopes ({"seq", "type", "ts", "data"}) up to the run's start, in
    # seq order: only the types the agent reads (AGENT_EVENT_TYPES), at most the latest
    # AGENT_CONTEXT_MAX_EVENTS of them.
    events: list[dict]
    receive_input: Callable[[], Awaitable[dict]] = field(repr=False)
    # Whether older events of those types were left out to keep within AGENT_CONTEXT_MAX_EVENTS.
    earlier_events_left_out: bool = False


Agent = Callable[[AgentContext], AsyncIterator[AgentItem]]
