"""Layer messages that wake drain pools and drains sooner than their next poll.

They only ever save latency: claimers poll for queued runs and drains poll their run's row,
so a lost message costs at most one poll interval. Each is sent after commit, so nobody is
woken to look at a row that was rolled back.
"""

from __future__ import annotations

import uuid

from sessions_app.services.events import group_send_on_commit

# Every drain pool listens on this group for "a run may be claimable now".
CLAIM_GROUP = "agents.claims"
LAYER_RUNS_CLAIMABLE = "runs.claimable"
# Sent to one run's group when its row changed under its drain (stop requested, input answered, ended).
LAYER_RUN_CHANGED = "run.changed"


def run_group_name(run_id: uuid.UUID | str) -> str:
    return f"agents.run.{run_id}"


def claimers_wake_on_commit() -> None:
    group_send_on_commit(
        CLAIM_GROUP, {"type": LAYER_RUNS_CLAIMABLE}, failure="waking the claimers failed; they poll for queued runs"
    )


def drain_wake_on_commit(*, run_id: uuid.UUID | str) -> None:
    group_send_on_commit(
        run_group_name(run_id),
        {"type": LAYER_RUN_CHANGED, "run_id": str(run_id)},
        failure=f"waking the drain of run {run_id} failed; it polls its run",
    )
