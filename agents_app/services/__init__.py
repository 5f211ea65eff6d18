"""Run writes, split at their seams.

- `commands`: what people and sessions ask of runs (start, stop, stop a session's, answer).
- `draining`: the drain protocol (claim, progress, ask for input, finish).
- `maintenance`: the worker's passes (lease expiry, compaction).
- `transitions`: the one status write (`run_transition`, checked against RUN_TRANSITIONS),
  the end every run comes to, and the session-then-run lock every writer takes.
- `wakeups`: layer messages that wake claimers and drains sooner than their next poll;
  both also poll, so a lost message costs latency, never correctness.
"""

from agents_app.services.commands import run_input_deliver, run_start, run_stop, runs_stop_for_session
from agents_app.services.draining import RunControl, run_claim, run_claim_one, run_finish, run_progress
from agents_app.services.maintenance import compact_once, run_expire_once
from agents_app.services.transitions import run_transition

__all__ = [
    "RunControl",
    "compact_once",
    "run_claim",
    "run_claim_one",
    "run_expire_once",
    "run_finish",
    "run_input_deliver",
    "run_progress",
    "run_start",
    "run_stop",
    "run_transition",
    "runs_stop_for_session",
]
