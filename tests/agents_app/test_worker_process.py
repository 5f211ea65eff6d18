"""A real `linnet_worker` process: killed mid-run (kill -9) or stopped with SIGTERM, no run stays running."""

from __future__ import annotations

import signal
import time
from datetime import timedelta

import pytest
from django.conf import settings

from agents_app.models import Message, Run, RunStatus
from agents_app.services import run_expire_once, run_start
from sessions_app.clock import utcnow
from sessions_app.services.events import events_append
from sessions_app.services.sessions import session_open
from tests.agents_app.conftest import log, run_row, run_text
from tests.processes import LinnetProcess, database_url_for_tests

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# The default AGENT_SHUTDOWN_GRACE_S (5 s) plus the process's own teardown.
SHUTDOWN_BOUND_S = 8


def _worker_process() -> LinnetProcess:
    return LinnetProcess(
        "linnet_worker",
        env={
            "DATABASE_URL": database_url_for_tests(),
            "REDIS_URL": "",
            "DJANGO_SETTINGS_MODULE": "tests.agents_app.slow_worker_settings",
        },
    )


def _long_notes_run() -> Run:
    """A notes run over a minute of tones: dozens of lines, several seconds at the slow pace."""
    session, _ = session_open(kind="voice")
    labels = ["calm", "tense", "animated", "subdued"]
    events_append(
        session_id=session.id,
        items=[
            (
                "tone",
                {
                    "label": labels[i % 4],
                    "confidence": 0.7,
                    "speaker_id": "S1",
                    "shift_magnitude": 0.5,
                    "shift_direction": "escalating",
                    "start": float(i),
                    "end": float(i + 1),
                },
            )
            for i in range(60)
        ],
    )
    return run_start(session=session, input="", agent="notes")


def _streaming(run: Run) -> bool:
    current = run_row(run.pk)
    return current.status == RunStatus.RUNNING and current.output.count("\n") >= 2


def _worker_caught_mid_run() -> tuple[Run, LinnetProcess]:
    """A long notes run and a real worker process that has streamed the first lines of it."""
    run = _long_notes_run()
    worker = _worker_process().start()
    try:
        worker.wait_for(lambda: _streaming(run), what="the worker to stream the notes")
    except BaseException:
        worker.kill()
        raise
    return run, worker


def test_a_killed_worker_leaves_its_run_to_be_ended_interrupted_with_the_partial():
    run, worker = _worker_caught_mid_run()
    worker.kill()

    stranded = run_row(run.pk)
    assert stranded.status == RunStatus.RUNNING
    assert not log(run.session_id, "run.done")
    partial = stranded.output

    after_lease = utcnow() + timedelta(seconds=settings.AGENT_RUN_LEASE_TTL_S + 1)
    assert run_expire_once(now=after_lease) == 1

    ended = run_row(run.pk)
    assert ended.status == RunStatus.INTERRUPTED and ended.error["code"] == "worker_lost"
    events = log(run.session_id)
    assert events[-1]["type"] == "run.done" and events[-1]["data"]["status"] == "interrupted"
    assert events[-1]["data"]["message"]["content"] == partial == run_text(events, run.id)
    assert partial.startswith("Notes on this session: 01:00 of audio") and "Overall:" not in partial
    assert Message.objects.get(run=run, role="assistant").content == partial


def test_sigterm_ends_the_workers_run_interrupted_within_the_grace_period():
    run, worker = _worker_caught_mid_run()
    asked = time.monotonic()
    code = worker.stop(sig=signal.SIGTERM, timeout=30)
    took = time.monotonic() - asked

    assert code == 0, worker.output()
    assert took < SHUTDOWN_BOUND_S
    ended = run_row(run.pk)
    assert ended.status == RunStatus.INTERRUPTED and ended.error["code"] == "worker_shutdown"
    events = log(run.session_id)
    assert events[-1]["type"] == "run.done" and events[-1]["data"]["status"] == "interrupted"
    assert events[-1]["data"]["message"]["content"] == ended.output == run_text(events, run.id)
    assert "Overall:" not in ended.output
