"""The real commands: `serve` survives a restart with nothing lost; `linnet_worker` reaps and stops cleanly."""

from __future__ import annotations

import signal
from datetime import timedelta

import httpx
import pytest

from sessions_app.clock import utcnow
from sessions_app.models import ProcessLease, Session
from tests.processes import LinnetProcess, database_url_for_tests, free_port, migrate

pytestmark = pytest.mark.slow


def test_restarted_server_keeps_sessions_and_events(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'linnet.sqlite3'}", "REDIS_URL": ""}
    migrate(env)
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    server = LinnetProcess("serve", "--port", str(port), env=env).start()
    try:
        server.wait_for_port(port)
        created = httpx.post(f"{base}/api/sessions", json={"elcor": True}).json()
        auth = {"Authorization": f"Bearer {created['token']}"}
        httpx.post(f"{base}/api/sessions/{created['id']}/heartbeat", headers=auth).raise_for_status()
        ended = httpx.delete(f"{base}/api/sessions/{created['id']}", headers=auth).json()
        before = httpx.get(f"{base}/api/sessions/{created['id']}/events", headers=auth).json()
    finally:
        assert server.stop() == 0, server.output()

    again = LinnetProcess("serve", "--port", str(port), env=env).start()
    try:
        again.wait_for_port(port)
        session = httpx.get(f"{base}/api/sessions/{created['id']}", headers=auth).json()
        after = httpx.get(f"{base}/api/sessions/{created['id']}/events", headers=auth).json()
    finally:
        again.stop()

    assert ended["state"] == session["state"] == "done"
    assert session["options"]["elcor"] is True
    assert session["last_heartbeat_at"] is not None
    assert after == before
    assert [e["type"] for e in after["events"]][-1] == "session.ended"


@pytest.mark.django_db(transaction=True)
def test_worker_process_reaps_idle_sessions_and_stops_on_sigterm(make_session):
    session, _ = make_session()
    Session.objects.filter(pk=session.pk).update(created_at=utcnow() - timedelta(hours=1))
    worker = LinnetProcess(
        "linnet_worker",
        env={
            "DATABASE_URL": database_url_for_tests(),
            "REDIS_URL": "",
            "SESSION_IDLE_TTL_S": "60",
            "SESSION_REAP_INTERVAL_S": "1",
        },
    ).start()
    try:
        worker.wait_for(lambda: Session.objects.get(pk=session.pk).state == "aborted", what="the reaper to end it")
        worker.wait_for(
            lambda: "reap" in (ProcessLease.objects.filter(role="worker").first() or ProcessLease(passes={})).passes,
            what="the reap pass to be recorded",
        )
    finally:
        code = worker.stop(sig=signal.SIGTERM)

    assert code == 0, worker.output()
    session.refresh_from_db()
    assert session.error["code"] == "session_idle"
    row = ProcessLease.objects.get(role="worker")
    assert row.stopped_at is not None
    assert {"reap", "gc", "sweep"} <= set(row.passes)
