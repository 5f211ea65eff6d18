import json
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from sessions_app import console, errors, selectors_console
from sessions_app.clock import utcnow
from sessions_app.models import Event, ProcessLease, SessionKind, SessionState
from sessions_app.selectors_console import ConsoleSampler, console_snapshot, process_json
from sessions_app.services.events import events_append_one
from sessions_app.services.presence import subscription_open
from sessions_app.services.sessions import session_abort, session_end, session_open, session_transition

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://localhost")


@pytest.fixture(autouse=True)
def _fresh_sampler(monkeypatch):
    # The sampler is per process; each test starts with no readings of its own database.
    monkeypatch.setattr(selectors_console, "CONSOLE_SAMPLER", ConsoleSampler())


def _login_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def _cookie_of(*, staff: bool) -> bytes:
    user = await database_sync_to_async(get_user_model().objects.create_user)(
        username="staff" if staff else "visitor", password="pw-123456", is_staff=staff
    )
    return await database_sync_to_async(_login_cookie)(user)


class Console:
    """A `/ws/admin/live` client through the real ASGI application."""

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        from linnet_site.asgi import application

        self.communicator = WebsocketCommunicator(application, "/ws/admin/live", headers=headers)

    async def __aenter__(self) -> "Console":
        connected, _ = await self.communicator.connect()
        assert connected
        return self

    async def __aexit__(self, *exc) -> None:
        await self.communicator.disconnect()

    async def receive(self, timeout: float = 5) -> dict:
        return json.loads(await self.communicator.receive_from(timeout=timeout))

    async def receive_close(self, timeout: float = 5) -> int:
        while True:
            output = await self.communicator.receive_output(timeout)
            if output["type"] == "websocket.close":
                return output.get("code", 1000)


# The socket: who may watch -----------------------------------------------------------------


async def test_anonymous_console_socket_gets_an_error_frame_and_4401():
    async with Console([ORIGIN]) as client:
        error = await client.receive()
        assert error == {
            "type": "error",
            "code": errors.UNAUTHORIZED,
            "message": errors.STAFF_LOGIN_REQUIRED,
            "close_code": 4401,
        }
        assert await client.receive_close() == 4401


async def test_logged_in_non_staff_user_is_refused_4403():
    cookie = await _cookie_of(staff=False)
    async with Console([ORIGIN, (b"cookie", cookie)]) as client:
        error = await client.receive()
        assert (error["code"], error["message"]) == (errors.FORBIDDEN, errors.MESSAGES[errors.FORBIDDEN])
        assert await client.receive_close() == 4403


async def test_foreign_origin_is_refused_4403_even_with_a_staff_login():
    cookie = await _cookie_of(staff=True)
    async with Console([(b"origin", b"https://evil.example"), (b"cookie", cookie)]) as client:
        assert (await client.receive())["code"] == errors.FORBIDDEN_ORIGIN
        assert await client.receive_close() == 4403


async def test_staff_cookie_without_origin_counts_as_anonymous():
    # Cookie identity counts only from a browser, as on the session sockets.
    cookie = await _cookie_of(staff=True)
    async with Console([(b"cookie", cookie)]) as client:
        assert (await client.receive())["code"] == errors.UNAUTHORIZED
        assert await client.receive_close() == 4401


async def test_client_messages_close_the_console_4400():
    cookie = await _cookie_of(staff=True)
    async with Console([ORIGIN, (b"cookie", cookie)]) as client:
        assert (await client.receive())["type"] == "snapshot"
        await client.communicator.send_to(text_data='{"type": "hello"}')
        message = await client.receive()
        while message["type"] != "error":
            message = await client.receive()
        assert message["code"] == errors.MALFORMED_MESSAGE
        assert await client.receive_close() == 4400


# The socket: what staff see ----------------------------------------------------------------


def _populate(now):
    """Sessions in several states, a subscriber and four process leases."""
    session_open()  # pending
    voice, _ = session_open()
    subscription_open(session=voice, transport="ws")
    session_transition(session=voice, to=SessionState.RUNNING)
    agent, _ = session_open(kind=SessionKind.AGENT)
    session_transition(session=agent, to=SessionState.RUNNING)
    ended, _ = session_open()
    session_end(session=ended)
    idle, _ = session_open()
    session_abort(session=idle, code=errors.SESSION_IDLE)

    def last_pass(age_s: float, every_s: float) -> dict:
        return {"at": (now - timedelta(seconds=age_s)).isoformat(), "count": 2, "ms": 1.5, "every_s": every_s}

    lease = {"hostname": "box", "pid": 1, "started_at": now - timedelta(hours=1)}
    ProcessLease.objects.create(
        id="healthy",
        role="worker",
        lease_expires_at=now + timedelta(seconds=30),
        passes={"reap": last_pass(5, 45)},
        **lease,
    )
    ProcessLease.objects.create(
        id="killed",
        role="worker",
        lease_expires_at=now - timedelta(seconds=60),
        passes={"reap": last_pass(80, 45)},
        **lease,
    )
    ProcessLease.objects.create(
        id="lagging",
        role="worker",
        lease_expires_at=now + timedelta(seconds=30),
        passes={"reap": last_pass(5, 45), "gc": last_pass(3600, 300)},
        **lease,
    )
    ProcessLease.objects.create(
        id="stopped",
        role="worker",
        lease_expires_at=now - timedelta(minutes=5),
        stopped_at=now - timedelta(minutes=5),
        **lease,
    )


async def test_staff_get_a_snapshot_whose_counts_match_the_database():
    await database_sync_to_async(_populate)(utcnow())
    cookie = await _cookie_of(staff=True)

    async with Console([ORIGIN, (b"cookie", cookie)]) as client:
        snapshot = await client.receive()

    assert snapshot["type"] == "snapshot"
    assert snapshot["sessions_by_state"] == {
        "pending": 1,
        "running": 2,
        "input_required": 0,
        "done": 1,
        "failed": 0,
        "aborted": 1,
    }
    assert snapshot["subscribers"] == 1
    # The first reading is only a baseline: no rate yet, rather than the whole log as one spike.
    assert snapshot["events_per_second"] == []

    processes = {p["id"]: p for p in snapshot["processes"]}
    assert {
        pid: (p["status"], p["alive"], p["stalled"])
        for pid, p in processes.items()
        if pid in {"healthy", "killed", "lagging", "stopped"}
    } == {
        "healthy": ("alive", True, False),
        "killed": ("expired", False, True),
        "lagging": ("lagging", True, True),
        "stopped": ("stopped", False, False),
    }
    assert processes["lagging"]["loops"]["gc"]["stalled"] is True
    assert processes["lagging"]["loops"]["reap"]["stalled"] is False
    assert processes["healthy"]["loops"]["reap"]["age_s"] == pytest.approx(5, abs=3)
    assert set(processes["healthy"]) >= {"id", "role", "hostname", "pid", "alive", "lease_expires_at", "stopped_at"}
    # This process's own lease (it holds the subscription and the stream) is listed too, and
    # processes not stopped come first.
    assert [p["stopped_at"] is None for p in snapshot["processes"]] == [True, True, True, True, False]


async def test_snapshots_keep_coming_and_show_events_per_second_once_events_are_appended(monkeypatch):
    monkeypatch.setattr(console, "SNAPSHOT_INTERVAL_S", 0.02)
    session, _ = await database_sync_to_async(session_open)()
    cookie = await _cookie_of(staff=True)

    async with Console([ORIGIN, (b"cookie", cookie)]) as client:
        first = await client.receive()
        assert first["events_per_second"] == []
        for i in range(5):
            await database_sync_to_async(events_append_one)(session_id=session.id, type="tone", data={"i": i})
        rates: list[float] = []
        for _ in range(200):
            snapshot = await client.receive()
            assert snapshot["type"] == "snapshot"
            rates = [sample["per_s"] for sample in snapshot["events_per_second"]]
            if any(rate > 0 for rate in rates):
                break

    assert any(rate > 0 for rate in rates)
    assert all(rate >= 0 for rate in rates)


# The selector, on a clock the test controls ------------------------------------------------


def test_events_per_second_differences_max_event_id_over_time():
    sampler = ConsoleSampler(window_s=300)
    t0 = utcnow()

    assert sampler.events_per_second(at=t0, max_event_id=1_000_000) == []
    second = sampler.events_per_second(at=t0 + timedelta(seconds=2), max_event_id=1_000_020)
    third = sampler.events_per_second(at=t0 + timedelta(seconds=4), max_event_id=1_000_020)

    assert [sample["per_s"] for sample in second] == [10.0]
    assert [sample["per_s"] for sample in third] == [10.0, 0.0]
    assert third[-1]["at"] == (t0 + timedelta(seconds=4)).isoformat()


def test_rates_older_than_the_window_are_dropped_and_a_stale_baseline_starts_over():
    sampler = ConsoleSampler(window_s=60)
    t0 = utcnow()
    sampler.events_per_second(at=t0, max_event_id=0)
    sampler.events_per_second(at=t0 + timedelta(seconds=30), max_event_id=300)
    sampler.events_per_second(at=t0 + timedelta(seconds=60), max_event_id=600)
    kept = sampler.events_per_second(at=t0 + timedelta(seconds=100), max_event_id=1000)
    assert [sample["at"] for sample in kept] == [(t0 + timedelta(seconds=s)).isoformat() for s in (60, 100)]

    # Nobody watched for ten minutes: the interval since is no rate of the last minute.
    assert sampler.events_per_second(at=t0 + timedelta(minutes=11), max_event_id=5000) == []
    assert sampler.events_per_second(at=t0 + timedelta(minutes=11, seconds=1), max_event_id=5004) == [
        {"at": (t0 + timedelta(minutes=11, seconds=1)).isoformat(), "per_s": 4.0}
    ]


def test_a_shrinking_max_id_rebases_instead_of_drawing_a_negative_rate():
    sampler = ConsoleSampler()
    t0 = utcnow()
    sampler.events_per_second(at=t0, max_event_id=100)
    assert sampler.events_per_second(at=t0 + timedelta(seconds=1), max_event_id=40) == []
    assert [s["per_s"] for s in sampler.events_per_second(at=t0 + timedelta(seconds=2), max_event_id=50)] == [10.0]


def test_a_snapshot_is_shared_within_the_reuse_window(make_session, django_assert_num_queries):
    session, _ = make_session()
    sampler = ConsoleSampler()
    now = utcnow()
    first = console_snapshot(sampler=sampler, now=now, reuse_within_s=1.0)

    with django_assert_num_queries(0):
        again = console_snapshot(sampler=sampler, now=now + timedelta(seconds=0.5), reuse_within_s=1.0)
    events_append_one(session_id=session.id, type="tone", data={})
    later = console_snapshot(sampler=sampler, now=now + timedelta(seconds=2), reuse_within_s=1.0)

    assert again is first
    assert [sample["per_s"] for sample in later["events_per_second"]] == [0.5]
    assert Event.objects.count() == 2


def test_a_loop_pass_several_intervals_old_is_stalled_only_while_the_process_runs():
    now = utcnow()
    old_pass = {"at": (now - timedelta(minutes=10)).isoformat(), "count": 0, "ms": 1.0, "every_s": 5}
    running = ProcessLease(
        id="w", role="worker", hostname="h", pid=1, started_at=now, lease_expires_at=now + timedelta(seconds=30)
    )
    running.passes = {"run_expire": old_pass}
    stopped = ProcessLease(
        id="s", role="worker", hostname="h", pid=2, started_at=now, lease_expires_at=now, stopped_at=now
    )
    stopped.passes = {"run_expire": old_pass}

    assert process_json(running, now=now)["loops"]["run_expire"]["stalled"] is True
    assert process_json(running, now=now)["status"] == "lagging"
    assert process_json(stopped, now=now)["loops"]["run_expire"]["stalled"] is False
    assert process_json(stopped, now=now)["status"] == "stopped"


def test_a_pass_recorded_without_its_interval_is_judged_by_the_default():
    now = utcnow()
    worker = ProcessLease(
        id="w", role="worker", hostname="h", pid=1, started_at=now, lease_expires_at=now + timedelta(seconds=30)
    )
    default = selectors_console.LOOP_DEFAULT_INTERVAL_S * selectors_console.LOOP_STALL_FACTOR
    worker.passes = {
        "fresh": {"at": (now - timedelta(seconds=default - 1)).isoformat(), "count": 0, "ms": 1.0},
        "stale": {"at": (now - timedelta(seconds=default + 1)).isoformat(), "count": 0, "ms": 1.0},
    }
    loops = process_json(worker, now=now)["loops"]
    assert (loops["fresh"]["stalled"], loops["stale"]["stalled"]) == (False, True)


def test_a_lease_the_sweep_stopped_after_it_lapsed_is_still_shown_expired():
    now = utcnow()
    swept = ProcessLease(
        id="w",
        role="web",
        hostname="h",
        pid=1,
        started_at=now - timedelta(hours=1),
        lease_expires_at=now - timedelta(seconds=40),
        stopped_at=now - timedelta(seconds=5),
    )
    assert (process_json(swept, now=now)["status"], process_json(swept, now=now)["stalled"]) == ("expired", True)


# The page and the admin's branding ---------------------------------------------------------


@pytest.fixture
def staff_client(client):
    client.force_login(get_user_model().objects.create_user("root", password="pw-123456", is_staff=True))
    return client


def test_live_dashboard_page_renders_for_staff(staff_client):
    page = staff_client.get("/admin/live/")

    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-socket-path="/ws/admin/live"' in html
    assert "linnet/console.js" in html
    assert "<h1>Live dashboard</h1>" in html
    assert 'aria-live="polite"' in html


@pytest.mark.parametrize("staff", [None, False])
def test_live_dashboard_sends_anonymous_and_non_staff_users_to_the_admin_login(client, staff):
    if staff is not None:
        client.force_login(get_user_model().objects.create_user("visitor", password="pw-123456", is_staff=staff))

    page = client.get("/admin/live/")

    assert page.status_code == 302
    assert page["Location"] == "/admin/login/?next=/admin/live/"


def test_admin_index_is_branded_linnet_and_links_the_live_dashboard(staff_client):
    page = staff_client.get("/admin/")

    html = page.content.decode()
    assert page.status_code == 200
    assert 'href="/admin/live/"' in html
    title = html.split("<title>", 1)[1].split("</title>", 1)[0]
    assert "Linnet console" in title
    assert "linnet/favicon.svg" in html
    assert 'href="/"' in html  # View site
