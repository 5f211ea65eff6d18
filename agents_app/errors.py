"""Error codes and messages of runs and agents, shared by the API, the drains and the tests."""

from __future__ import annotations

from sessions_app.errors import error_json, messages_register

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

__all__ = ["error_json"]
