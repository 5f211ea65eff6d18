"""Error codes and messages of runs and agents, shared by the API, the drains and the tests."""

from __future__ import annotations

from sessions_app.errors import ILLEGAL_TRANSITION, LinnetError, error_json, messages_register

RUN_NOT_FOUND = "run_not_found"
UNKNOWN_AGENT = "unknown_agent"

# A run's `error` when it ends `error` (or, for the operator, why it ended `interrupted`).
AGENT_FAILED = "agent_failed"
AGENT_NOT_CONFIGURED = "agent_not_configured"
UPSTREAM_UNREACHABLE = "upstream_unreachable"
UPSTREAM_ERROR = "upstream_error"
UPSTREAM_TIMEOUT = "upstream_timeout"
UPSTREAM_MALFORMED = "upstream_malformed"
WORKER_LOST = "worker_lost"
WORKER_SHUTDOWN = "worker_shutdown"

MESSAGES = {
    RUN_NOT_FOUND: "No run with that id in this session.",
    AGENT_FAILED: "The agent failed.",
    WORKER_LOST: "The worker draining this run stopped renewing its lease.",
    WORKER_SHUTDOWN: "The worker draining this run shut down.",
}

messages_register(MESSAGES)


class IllegalRunTransition(LinnetError):
    """A status write along an edge RUN_TRANSITIONS does not have."""

    status = 409

    def __init__(self, from_status: str, to_status: str) -> None:
        super().__init__(ILLEGAL_TRANSITION, f"A run cannot go from {from_status} to {to_status}.")
        self.from_status = from_status
        self.to_status = to_status


__all__ = ["error_json"]
