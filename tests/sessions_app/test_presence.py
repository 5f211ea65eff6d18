from datetime import timedelta

import pytest

from sessions_app import selectors
from sessions_app.clock import utcnow
from sessions_app.models import ProcessLease, Session, Subscription
from sessions_app.services import presence
from sessions_app.services.presence import (
    lease_register,
    presence_sweep_once,
    subscription_close,
    subscription_open,
)

pytestmark = pytest.mark.django_db


def test_last_subscriber_leaving_starts_the_idle_clock(make_session):
    session, _ = make_session()
    now = utcnow()
    first = subscription_open(session=session, transport="ws", now=now)
    second = subscription_open(session=session, transport="sse", now=now)
    assert selectors.subscriber_count(session_id=session.id, now=now) == 2

    subscription_close(subscription_id=first, now=now + timedelta(seconds=1))
    session.refresh_from_db()
    assert session.last_subscriber_left_at is None

    subscription_close(subscription_id=second, now=now + timedelta(seconds=2))
    session.refresh_from_db()
    assert session.last_subscriber_left_at == now + timedelta(seconds=2)
    assert selectors.subscriber_count(session_id=session.id, now=now) == 0


def test_new_subscriber_clears_the_idle_clock(make_session):
    session, _ = make_session()
    Session.objects.filter(pk=session.pk).update(last_subscriber_left_at=utcnow())
    subscription_open(session=session, transport="ws")
    session.refresh_from_db()
    assert session.last_subscriber_left_at is None


def test_killed_process_subscriptions_expire_and_are_swept(make_session, settings):
    """A process that dies without closing its sockets stops renewing; within the lease TTL
    its subscribers stop counting, and the sweep deletes them and starts the idle clock."""
    session, _ = make_session()
    other, _ = make_session()
    start = utcnow()
    dead = lease_register(role="web", now=start)
    Subscription.objects.create(session=session, lease=dead, transport="ws")
    presence.PROCESS.lease_id = None  # this test process gets a lease of its own
    alive_sub = subscription_open(session=other, transport="ws", now=start)
    assert alive_sub

    # This process keeps renewing; the dead one stopped at `start`.
    presence.lease_renew(now=start + timedelta(seconds=settings.PRESENCE_LEASE_RENEW_S))
    later = start + timedelta(seconds=settings.PRESENCE_LEASE_TTL_S + 1)
    presence.lease_renew(now=later)
    assert selectors.subscriber_count(session_id=session.id, now=later) == 0
    assert selectors.subscriber_count(session_id=other.id, now=later) == 1

    assert presence_sweep_once(now=later) == 1
    session.refresh_from_db()
    other.refresh_from_db()
    assert session.last_subscriber_left_at == dead.lease_expires_at
    assert other.last_subscriber_left_at is None
    assert ProcessLease.objects.get(pk=dead.pk).stopped_at == later
    assert Subscription.objects.filter(session=other).count() == 1


def test_lapsed_own_lease_is_taken_back_with_the_subscriptions_a_sweep_removed(make_session, settings):
    """A process that stalled past its lease keeps its id and gets its live sockets counted again."""
    session, _ = make_session()
    start = utcnow()
    first = presence.current_lease_id(now=start)
    subscription = subscription_open(session=session, transport="ws", now=start)
    stalled_until = start + timedelta(seconds=settings.PRESENCE_LEASE_TTL_S + 5)
    assert presence_sweep_once(now=stalled_until) == 1
    assert selectors.subscriber_count(session_id=session.id, now=stalled_until) == 0

    second = presence.current_lease_id(now=stalled_until)

    assert second == first
    worker = ProcessLease.objects.get(pk=first)
    assert worker.stopped_at is None
    assert worker.lease_expires_at > stalled_until
    assert selectors.subscriber_count(session_id=session.id, now=stalled_until) == 1
    assert Subscription.objects.filter(pk=subscription).exists()
    session.refresh_from_db()
    assert session.last_subscriber_left_at is None
    subscription_close(subscription_id=subscription, now=stalled_until)
    assert Subscription.objects.count() == 0


def test_sweep_starts_the_idle_clock_when_the_lease_expired_not_later(make_session, settings):
    session, _ = make_session()
    start = utcnow()
    dead = lease_register(role="web", now=start)
    Subscription.objects.create(session=session, lease=dead, transport="ws")
    presence.PROCESS.lease_id = None

    presence_sweep_once(now=start + timedelta(hours=1))

    session.refresh_from_db()
    assert session.last_subscriber_left_at == dead.lease_expires_at


def test_graceful_stop_drops_this_process_subscriptions(make_session):
    session, _ = make_session()
    subscription_open(session=session, transport="ws")

    presence.lease_stop()

    session.refresh_from_db()
    assert Subscription.objects.count() == 0
    assert session.last_subscriber_left_at is not None
