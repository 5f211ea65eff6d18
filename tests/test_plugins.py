"""What voice_app and agents_app plug into the core: keep-alives the reaper honours, gauges in
/metrics and the live console, the export's sections, and the worker's loops."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agents_app.models import Run, RunStatus
from sessions_app import plugins, selectors_console
from sessions_app.clock import utcnow
from sessions_app.models import Session
from sessions_app.selectors import gauges_read
from sessions_app.selectors_console import ConsoleSampler, console_snapshot
from sessions_app.services.lifecycle import _abort_if_still_candidate, idle_sessions, reap_once
from sessions_app.services.presence import subscription_open
from sessions_app.worker import all_loops
from voice_app.models import AudioStream
from voice_app.services import audio_stream_close, audio_stream_open

pytestmark = pytest.mark.django_db


def aged(session: Session, seconds: float) -> Session:
    Session.objects.filter(pk=session.pk).update(created_at=utcnow() - timedelta(seconds=seconds))
    session.refresh_from_db()
    return session


def state_of(session: Session) -> tuple[str, str | None]:
    session.refresh_from_db()
    return session.state, (session.error or {}).get("code")


def test_each_app_registers_its_plug_ins():
    assert {keep_alive.name for keep_alive in plugins.keep_alives()} == {"run in flight", "audio stream attached"}
    assert {gauge.key for gauge in plugins.gauges()} == {"audio_streams", "runs_by_status", "runs_in_flight"}
    assert set(plugins.export_sections()) == {"messages"}
    assert {"reap", "gc", "sweep", "drain", "run_expire", "compact"} <= {loop.name for loop in all_loops()}


@pytest.mark.parametrize("status", [RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.INPUT_REQUIRED])
def test_a_run_in_flight_keeps_its_session_from_the_reaper(make_session, status):
    session = aged(make_session(kind="agent")[0], 100_000)
    Run.objects.create(session=session, agent="notes", input="", status=status)

    assert reap_once() == 0
    assert state_of(session)[0] == "pending"


def test_the_idle_clock_starts_when_the_run_finishes(make_session, settings):
    session = aged(make_session(kind="agent")[0], 100_000)
    now = utcnow()
    ttl = settings.SESSION_IDLE_TTL_S
    Run.objects.create(
        session=session, agent="notes", status=RunStatus.DONE, ended_at=now - timedelta(seconds=ttl - 10)
    )

    assert reap_once(now=now) == 0
    assert reap_once(now=now + timedelta(seconds=11)) == 1
    assert state_of(session) == ("aborted", "session_idle")


def test_a_run_queued_after_the_pass_read_its_candidates_saves_the_session(make_session, settings):
    session = aged(make_session(kind="agent")[0], settings.SESSION_IDLE_TTL_S * 10)
    now = utcnow()
    candidates = idle_sessions(now)
    list(candidates)
    Run.objects.create(session=session, agent="notes", status=RunStatus.QUEUED)

    assert _abort_if_still_candidate(candidates, session, "session_idle", now) is False


def test_an_attached_audio_stream_keeps_a_session_nobody_reads(make_session):
    # A client that streams audio and reads the results later must not lose its session.
    session = aged(make_session()[0], 100_000)
    audio_stream_open(session=session)

    assert reap_once() == 0
    assert state_of(session)[0] == "running"


def test_the_idle_clock_starts_when_the_stream_closes(make_session, settings):
    session = aged(make_session()[0], 100_000)
    stream = audio_stream_open(session=session)
    closed_at = utcnow()
    audio_stream_close(stream_id=stream.pk, close_code=1000, frames=10, bytes_received=32_000, windows=1, now=closed_at)
    ttl = settings.SESSION_IDLE_TTL_S

    assert reap_once(now=closed_at + timedelta(seconds=ttl - 1)) == 0
    assert reap_once(now=closed_at + timedelta(seconds=ttl + 1)) == 1
    assert state_of(session) == ("aborted", "session_idle")


def test_a_stream_whose_process_died_holds_nothing(make_session, settings):
    session = aged(make_session()[0], 100_000)
    audio_stream_open(session=session)
    lease_ttl = settings.PRESENCE_LEASE_TTL_S
    later = utcnow() + timedelta(seconds=lease_ttl + settings.SESSION_IDLE_TTL_S + 60)

    assert reap_once(now=later) == 1
    assert state_of(session) == ("aborted", "session_idle")


def test_gauges_count_streams_and_runs(make_session, monkeypatch):
    voice, _ = make_session()
    audio_stream_open(session=voice)
    subscription_open(session=voice, transport="ws")
    agent, _ = make_session(kind="agent")
    for status in ("queued", "running", "done", "done", "error"):
        Run.objects.create(session=agent, agent="notes", status=status)

    assert gauges_read() == {
        "audio_streams": 1,
        "runs_by_status": {"queued": 1, "running": 1, "done": 2, "error": 1},
        "runs_in_flight": 2,
    }
    monkeypatch.setattr(selectors_console, "CONSOLE_SAMPLER", ConsoleSampler())
    snapshot = console_snapshot(sampler=selectors_console.CONSOLE_SAMPLER)
    assert (snapshot["audio_streams"], snapshot["runs_in_flight"], snapshot["subscribers"]) == (1, 2, 1)


@pytest.mark.django_db(transaction=True)
def test_metrics_show_the_registered_gauges(client, make_session):
    agent, _ = make_session(kind="agent")
    Run.objects.create(session=agent, agent="notes", status="queued")

    body = client.get("/metrics").content.decode()
    assert 'linnet_runs{status="queued"} 1.0' in body
    assert "linnet_runs_in_flight 1.0" in body
    assert "linnet_audio_streams_open 0.0" in body
    assert AudioStream.objects.count() == 0


def test_the_admins_idle_for_agrees_with_the_reaper(make_session, rf, admin_user):
    from django.contrib import admin

    session = aged(make_session(kind="agent")[0], 100_000)
    run = Run.objects.create(session=session, agent="notes", status=RunStatus.RUNNING)
    model_admin = admin.site._registry[Session]
    request = rf.get("/admin/sessions_app/session/")
    request.user = admin_user

    def idle_for() -> str:
        return model_admin.idle_for(model_admin.get_queryset(request).get(pk=session.pk))

    assert idle_for() == "—"
    Run.objects.filter(pk=run.pk).update(status=RunStatus.DONE, ended_at=utcnow() - timedelta(minutes=5))
    assert idle_for() == "5\xa0minutes"
