from datetime import timedelta

import pytest

from sessions_app.clock import utcnow
from sessions_app.models import Event, ProcessLease, Session, SessionState, Subscription
from sessions_app.services.lifecycle import gc_once, reap_once
from sessions_app.services.presence import lease_register, subscription_close, subscription_open
from sessions_app.services.sessions import session_transition

pytestmark = pytest.mark.django_db


def aged(session: Session, seconds: float) -> Session:
    """Pretend the session was created `seconds` ago."""
    Session.objects.filter(pk=session.pk).update(
        created_at=utcnow() - timedelta(seconds=seconds), state_changed_at=utcnow() - timedelta(seconds=seconds)
    )
    session.refresh_from_db()
    return session


def ended_as(session: Session) -> tuple[str, str | None]:
    session.refresh_from_db()
    return session.state, (session.error or {}).get("code")


def test_session_left_longer_than_ttl_is_reaped_as_idle(make_session, settings):
    session = aged(make_session()[0], 1000)
    now = utcnow()
    sub = subscription_open(session=session, transport="ws", now=now - timedelta(seconds=500))
    subscription_close(subscription_id=sub, now=now - timedelta(seconds=settings.SESSION_IDLE_TTL_S + 1))

    assert reap_once(now=now) == 1

    assert ended_as(session) == ("aborted", "session_idle")
    types = list(Event.objects.filter(session=session).values_list("type", flat=True))
    assert types[-2:] == ["session.state", "session.ended"]
    assert Event.objects.get(session=session, type="session.ended").data["error"]["code"] == "session_idle"


def test_session_left_less_than_ttl_ago_is_spared(make_session, settings):
    session = aged(make_session()[0], 1000)
    now = utcnow()
    sub = subscription_open(session=session, transport="ws", now=now)
    subscription_close(subscription_id=sub, now=now - timedelta(seconds=settings.SESSION_IDLE_TTL_S - 5))

    assert reap_once(now=now) == 0
    assert ended_as(session) == ("pending", None)


def test_session_that_never_had_a_subscriber_is_reaped_counting_from_creation(make_session, settings):
    old = aged(make_session()[0], settings.SESSION_IDLE_TTL_S + 1)
    young = aged(make_session()[0], settings.SESSION_IDLE_TTL_S - 10)

    assert reap_once() == 1

    assert ended_as(old) == ("aborted", "session_idle")
    assert ended_as(young) == ("pending", None)


def test_subscribed_session_is_spared_however_old(make_session):
    session = aged(make_session()[0], 100_000)
    subscription_open(session=session, transport="sse")

    assert reap_once() == 0
    assert ended_as(session) == ("pending", None)


def test_subscription_of_dead_process_does_not_spare_the_session(make_session, settings):
    session = aged(make_session()[0], 10_000)
    dead = lease_register(role="web", now=utcnow() - timedelta(seconds=10_000))
    Subscription.objects.create(session=session, lease=dead, transport="ws")
    ProcessLease.objects.filter(pk=dead.pk).update(
        lease_expires_at=utcnow() - timedelta(seconds=settings.SESSION_IDLE_TTL_S * 2)
    )

    assert reap_once() == 1
    assert ended_as(session) == ("aborted", "session_idle")


def test_ended_sessions_are_never_reaped_again(make_session):
    session = aged(make_session()[0], 100_000)
    session_transition(session=session, to=SessionState.FAILED, error={"code": "x", "message": "y"})

    assert reap_once() == 0
    assert ended_as(session) == ("failed", "x")


def waiting_for_input(make_session) -> Session:
    session, _ = make_session(kind="agent")
    session = session_transition(session=session, to=SessionState.RUNNING)
    return session_transition(
        session=session, to=SessionState.INPUT_REQUIRED, pending_input={"run_id": None, "fields": [], "reason": "?"}
    )


def test_gc_aborts_input_required_session_with_stale_heartbeat_even_while_subscribed(make_session, settings):
    session = waiting_for_input(make_session)
    subscription_open(session=session, transport="ws")
    Session.objects.filter(pk=session.pk).update(
        last_heartbeat_at=utcnow() - timedelta(seconds=settings.SESSION_GC_AFTER_S + 1),
        state_changed_at=utcnow() - timedelta(seconds=settings.SESSION_GC_AFTER_S + 100),
    )

    assert gc_once() == 1

    assert ended_as(session) == ("aborted", "session_abandoned")
    assert Event.objects.filter(session=session, type="session.ended").count() == 1


def test_gc_spares_fresh_heartbeat(make_session, settings):
    session = waiting_for_input(make_session)
    Session.objects.filter(pk=session.pk).update(
        last_heartbeat_at=utcnow() - timedelta(seconds=10),
        state_changed_at=utcnow() - timedelta(seconds=settings.SESSION_GC_AFTER_S * 2),
    )

    assert gc_once() == 0
    assert ended_as(session) == ("input_required", None)


def test_gc_clock_starts_when_the_session_began_waiting(make_session, settings):
    waiting_for_input(make_session)
    now = utcnow()

    assert gc_once(now=now + timedelta(seconds=settings.SESSION_GC_AFTER_S - 1)) == 0
    assert gc_once(now=now + timedelta(seconds=settings.SESSION_GC_AFTER_S + 1)) == 1


def test_gc_ignores_sessions_not_waiting_for_input(make_session, settings):
    session, _ = make_session()
    session_transition(session=session, to=SessionState.RUNNING)

    assert gc_once(now=utcnow() + timedelta(seconds=settings.SESSION_GC_AFTER_S * 10)) == 0


def test_reaper_spares_a_session_that_gained_a_subscriber_after_the_pass_read_it(make_session, settings):
    from sessions_app.services.lifecycle import _abort_if_still_candidate, idle_sessions

    session = aged(make_session()[0], settings.SESSION_IDLE_TTL_S * 10)
    now = utcnow()
    candidates = idle_sessions(now)
    assert [s.pk for s in candidates] == [session.pk]

    subscription_open(session=session, transport="ws", now=now)

    assert _abort_if_still_candidate(candidates, session, "session_idle", now) is False
    assert ended_as(session) == ("pending", None)


def test_gc_spares_a_session_answered_after_the_pass_read_it(make_session, settings):
    from sessions_app.services.lifecycle import _abort_if_still_candidate, abandoned_sessions
    from sessions_app.services.sessions import session_input

    session = waiting_for_input(make_session)
    later = utcnow() + timedelta(seconds=settings.SESSION_GC_AFTER_S + 1)
    candidates = abandoned_sessions(later)
    assert [s.pk for s in candidates] == [session.pk]

    session_input(session=session, input={"focus": "all"}, now=later)

    assert _abort_if_still_candidate(candidates, session, "session_abandoned", later) is False
    assert ended_as(session) == ("running", None)


def test_reaper_gives_a_dead_process_subscriber_the_full_ttl_from_its_lease_expiry(make_session, settings):
    session = aged(make_session()[0], settings.SESSION_IDLE_TTL_S * 100)
    now = utcnow()
    dead = lease_register(role="web", now=now - timedelta(seconds=settings.PRESENCE_LEASE_TTL_S + 1))
    Subscription.objects.create(session=session, lease=dead, transport="ws")

    assert reap_once(now=now) == 0
    assert reap_once(now=dead.lease_expires_at + timedelta(seconds=settings.SESSION_IDLE_TTL_S + 1)) == 1
    assert ended_as(session) == ("aborted", "session_idle")
