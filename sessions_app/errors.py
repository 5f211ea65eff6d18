"""Error codes and messages shared by the HTTP API, the sockets and the tests.

Every app keeps its own codes and messages beside its code and adds them to one registry
(`messages_register`), so `LinnetError(code)` and `error_json(code)` find any app's message.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured

SESSION_NOT_FOUND = "session_not_found"
UNAUTHORIZED = "unauthorized"
FORBIDDEN = "forbidden"
FORBIDDEN_ORIGIN = "origin_not_allowed"
NOT_AWAITING_INPUT = "not_awaiting_input"
SESSION_NOT_ACTIVE = "session_not_active"
INVALID_REQUEST = "invalid_request"
VALIDATION_ERROR = "validation_error"
PAYLOAD_TOO_LARGE = "payload_too_large"
NOT_FOUND = "not_found"
INTERNAL_ERROR = "internal_error"
MALFORMED_MESSAGE = "malformed_message"
SUBSCRIBER_TOO_SLOW = "subscriber_too_slow"
ILLEGAL_TRANSITION = "illegal_transition"

SESSION_IDLE = "session_idle"
SESSION_ABANDONED = "session_abandoned"
SESSION_ENDED_BY_CLIENT = "ended_by_client"
SESSION_ENDED_BY_STAFF = "ended_by_staff"
SESSION_ABORTED_BY_STAFF = "aborted_by_staff"

MESSAGES = {
    SESSION_NOT_FOUND: "No session with that id.",
    UNAUTHORIZED: "A valid session token is required (Authorization: Bearer <token> or ?token=).",
    FORBIDDEN: "Only staff users may open the live console.",
    FORBIDDEN_ORIGIN: "This origin may not open sockets on this server.",
    NOT_AWAITING_INPUT: "The session is not waiting for input.",
    SESSION_NOT_ACTIVE: "The session has ended.",
    MALFORMED_MESSAGE: "The frame is not a message this socket understands.",
    PAYLOAD_TOO_LARGE: "The request body is too large.",
    NOT_FOUND: "No such endpoint.",
    INTERNAL_ERROR: "Internal server error.",
    SUBSCRIBER_TOO_SLOW: "Too many undelivered events; reconnect with after=<last seq>.",
    SESSION_IDLE: "The session had no live subscriber for longer than SESSION_IDLE_TTL_S.",
    SESSION_ABANDONED: "The session waited for input with no client heartbeat for longer than SESSION_GC_AFTER_S.",
}

# The live console's `unauthorized`: it takes an admin login, not a session token.
STAFF_LOGIN_REQUIRED = "Log in to the admin as a staff user to watch the live console."


_REGISTERED: dict[str, str] = {}


def messages_register(messages: Mapping[str, str]) -> None:
    """Add an app's messages; one code has one message wherever it is raised."""
    for code, message in messages.items():
        known = _REGISTERED.setdefault(code, message)
        if known != message:
            raise ImproperlyConfigured(f"error code {code!r} has two messages: {known!r} and {message!r}")


def message_for(code: str) -> str:
    return _REGISTERED.get(code, code)


def error_json(code: str, message: str | None = None) -> dict:
    """The `{"code", "message"}` a session's or a run's `error` holds."""
    return {"code": code, "message": message or message_for(code)}


messages_register(MESSAGES)


class LinnetError(Exception):
    """A typed, client-facing error: an HTTP status plus a stable code and message."""

    status = 400

    def __init__(self, code: str, message: str | None = None, *, status: int | None = None):
        super().__init__(message or message_for(code))
        self.code = code
        self.message = message or message_for(code)
        if status is not None:
            self.status = status

    def envelope(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


class IllegalTransition(LinnetError):
    status = 409

    def __init__(self, from_state: str, to_state: str):
        super().__init__(ILLEGAL_TRANSITION, f"A session cannot go from {from_state} to {to_state}.")
        self.from_state = from_state
        self.to_state = to_state
