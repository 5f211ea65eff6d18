import asyncio
import json
from unittest import mock

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client

from sessions_app.consumers import EventsConsumer
from sessions_app.models import Session, SessionState
from sessions_app.services.events import events_append_one
from sessions_app.services.sessions import session_end, session_transition
from tests.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)

append = database_sync_to_async(events_append_one)


async def _append_many(session_id, n, *, type_="tone"):
    for i in range(n):
        await append(session_id=session_id, type=type_, data={"i": i})


async def test_replays_log_then_marks_boundary_then_streams_live(amake_session, subscriber):
    session, token = await amake_session()
    await _append_many(session.id, 3)
    client = subscriber(session.id, token=token)
    assert await client.connect()

    replayed, complete = await client.receive_until_replay_complete()
    # The first subscriber moves the session from pending to running before replay starts.
    assert [(e["seq"], e["type"]) for e in replayed] == [
        (1, "session.state"),
        (2, "tone"),
        (3, "tone"),
        (4, "tone"),
        (5, "session.state"),
    ]
    assert set(replayed[0]) == {"seq", "type", "ts", "data"}
    assert complete["last_seq"] == 5
    await append(session_id=session.id, type="tone", data={"live": True})
    live = await client.receive()
    assert (live["seq"], live["type"], live["data"]) == (6, "tone", {"live": True})


async def test_resume_after_seq_skips_replayed_events(amake_session, subscriber):
    session, token = await amake_session()
    await _append_many(session.id, 5)
    client = subscriber(session.id, token=token, after=4)
    assert await client.connect()

    replayed, complete = await client.receive_until_replay_complete()
    assert [e["seq"] for e in replayed] == [5, 6, 7]
    assert complete["last_seq"] == 7


async def test_replay_live_boundary_has_no_gap_or_duplicate_under_concurrent_publishing(amake_session, subscriber):
    session, token = await amake_session()
    await _append_many(session.id, 40)
    total_published = 3 * 60

    publishers = [asyncio.create_task(_append_many(session.id, 60)) for _ in range(3)]
    await asyncio.sleep(0)
    clients = [subscriber(session.id, token=token, after=after) for after in (0, 10, 41)]
    for client in clients:
        assert await client.connect()
    await asyncio.gather(*publishers)
    await database_sync_to_async(session.refresh_from_db)()
    final_seq = session.last_seq
    assert final_seq >= 1 + 40 + total_published

    for client, after in zip(clients, (0, 10, 41), strict=True):
        seqs = []
        saw_boundary = False
        while not seqs or seqs[-1] < final_seq:
            message = await client.receive()
            if message.get("type") == "replay.complete":
                saw_boundary = True
                assert message["last_seq"] == (seqs[-1] if seqs else after)
                continue
            seqs.append(message["seq"])
        assert saw_boundary
        assert seqs == list(range(after + 1, final_seq + 1))


async def test_gap_in_live_stream_is_filled_from_the_log(amake_session, subscriber):
    session, token = await amake_session()
    client = subscriber(session.id, token=token)
    assert await client.connect()
    await client.receive_until_replay_complete()
    # A layer that dropped seq 3 and 4: they are written but never published.
    with mock.patch("sessions_app.services.events.events_publish"):
        await _append_many(session.id, 2)
    await append(session_id=session.id, type="tone", data={"after_gap": True})

    got = [await client.receive() for _ in range(3)]
    assert [e["seq"] for e in got] == [3, 4, 5]


async def test_subscribing_to_ended_session_replays_then_closes_normally(amake_session, subscriber):
    session, token = await amake_session()
    await database_sync_to_async(session_end)(session=session)
    client = subscriber(session.id, token=token)
    assert await client.connect()

    replayed, complete = await client.receive_until_replay_complete()
    assert replayed[-1]["type"] == "session.ended"
    assert complete["last_seq"] == replayed[-1]["seq"]
    assert await client.receive_close() == 1000


async def test_session_end_pushes_ended_and_closes_every_subscriber(amake_session, subscriber):
    session, token = await amake_session()
    clients = [subscriber(session.id, token=token) for _ in range(2)]
    for client in clients:
        assert await client.connect()
        await client.receive_until_replay_complete()
    await database_sync_to_async(session_end)(session=session)

    for client in clients:
        types = []
        while "session.ended" not in types:
            types.append((await client.receive())["type"])
        assert await client.receive_close() == 1000


@pytest.mark.parametrize(
    ("frame", "expected_code"),
    [
        ("{not json", "malformed_message"),
        (json.dumps({"type": "dance"}), "malformed_message"),
        ("[1, 2]", "malformed_message"),
        ("[" * 5000 + "]" * 5000, "malformed_message"),
        (json.dumps({"type": "heartbeat", "last_seq": "7"}), "malformed_message"),
        (json.dumps({"type": "heartbeat", "last_seq": 10_000}), "malformed_message"),
    ],
)
async def test_malformed_client_message_closes_4400_and_leaves_session_intact(
    amake_session, subscriber, frame, expected_code
):
    session, token = await amake_session()
    bystander = subscriber(session.id, token=token)
    assert await bystander.connect()
    await bystander.receive_until_replay_complete()
    client = subscriber(session.id, token=token)
    assert await client.connect()
    await client.receive_until_replay_complete()

    await client.send(frame)
    error = None
    while error is None:
        message = await client.receive()
        if message.get("type") == "error":
            error = message
    assert error["code"] == expected_code
    assert await client.receive_close() == 4400

    await append(session_id=session.id, type="tone", data={"still": "flowing"})
    received = await bystander.receive()
    while received["type"] != "tone":
        received = await bystander.receive()
    assert received["data"] == {"still": "flowing"}
    refreshed = await database_sync_to_async(Session.objects.get)(pk=session.pk)
    assert refreshed.state == SessionState.RUNNING


@pytest.mark.parametrize("after", ["abc", "-1", "999"])
async def test_bad_after_closes_4400(amake_session, subscriber, after):
    session, token = await amake_session()
    client = subscriber(session.id, token=token, query=f"after={after}")
    assert await client.connect()
    error = await client.receive()
    assert (error["type"], error["code"]) == ("error", "invalid_request")
    assert await client.receive_close() == 4400


async def test_unknown_session_closes_4404(subscriber):
    client = subscriber("6f1c1f5e-8c1d-4d6e-9a53-0d1f7c4a1b11", token="x")
    assert await client.connect()
    assert (await client.receive())["code"] == "session_not_found"
    assert await client.receive_close() == 4404


async def test_malformed_session_id_closes_4404(subscriber):
    client = subscriber("not-a-uuid", token="x")
    assert await client.connect()
    assert await client.receive_close() == 4404


@pytest.mark.parametrize("token", [None, "wrong-token"])
async def test_missing_or_wrong_token_closes_4401(amake_session, subscriber, token):
    session, _ = await amake_session()
    client = subscriber(session.id, token=token)
    assert await client.connect()
    assert (await client.receive())["code"] == "unauthorized"
    assert await client.receive_close() == 4401


async def test_foreign_origin_closes_4403(amake_session, subscriber):
    session, token = await amake_session()
    client = subscriber(session.id, token=token, headers=[(b"origin", b"https://evil.example")])
    assert await client.connect()
    assert (await client.receive())["code"] == "origin_not_allowed"
    assert await client.receive_close() == 4403


async def test_no_origin_with_valid_token_is_accepted(amake_session, subscriber):
    session, token = await amake_session()
    client = subscriber(session.id, token=token, headers=[])
    assert await client.connect()
    _, complete = await client.receive_until_replay_complete()
    assert complete["type"] == "replay.complete"


def _login_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


@pytest.mark.parametrize("who", ["staff", "owner"])
async def test_staff_and_owner_need_no_token(amake_session, subscriber, who):
    User = get_user_model()
    user = await database_sync_to_async(User.objects.create_user)(
        username=who, password="pw-123456", is_staff=(who == "staff")
    )
    owner = user if who == "owner" else None
    session, _ = await amake_session(owner=owner)
    cookie = await database_sync_to_async(_login_cookie)(user)
    client = subscriber(session.id, headers=[(b"origin", b"http://localhost"), (b"cookie", cookie)])
    assert await client.connect()
    _, complete = await client.receive_until_replay_complete()
    assert complete["type"] == "replay.complete"


async def test_other_logged_in_user_needs_a_token(amake_session, subscriber):
    User = get_user_model()
    stranger = await database_sync_to_async(User.objects.create_user)(username="stranger", password="pw-123456")
    owner = await database_sync_to_async(User.objects.create_user)(username="owner", password="pw-123456")
    session, _ = await amake_session(owner=owner)
    cookie = await database_sync_to_async(_login_cookie)(stranger)
    client = subscriber(session.id, headers=[(b"origin", b"http://localhost"), (b"cookie", cookie)])
    assert await client.connect()
    assert await client.receive_close() == 4401


async def test_heartbeat_message_records_client_heartbeat(amake_session, subscriber):
    session, token = await amake_session()
    client = subscriber(session.id, token=token)
    assert await client.connect()
    await client.receive_until_replay_complete()
    await client.send({"type": "heartbeat"})
    await client.send({"type": "input", "input": {"a": 1}})
    error = await client.receive()
    while error.get("type") != "error":
        error = await client.receive()

    assert error["code"] == "not_awaiting_input"
    refreshed = await database_sync_to_async(Session.objects.get)(pk=session.pk)
    assert refreshed.last_heartbeat_at is not None


async def test_input_message_resumes_session_waiting_for_input(amake_session, subscriber):
    session, token = await amake_session()
    await database_sync_to_async(session_transition)(session=session, to=SessionState.RUNNING)
    await database_sync_to_async(session_transition)(
        session=session, to=SessionState.INPUT_REQUIRED, pending_input={"run_id": None, "fields": [], "reason": "?"}
    )
    client = subscriber(session.id, token=token)
    assert await client.connect()
    await client.receive_until_replay_complete()
    await client.send({"type": "input", "input": {"speaker": "speaker_1"}})

    state = await client.receive()
    assert state["type"] == "session.state"
    assert state["data"]["state"] == "running"


async def test_subscriber_whose_queue_overflows_is_closed_4429_and_can_resume(
    amake_session, subscriber, settings, monkeypatch
):
    settings.EVENTS_SUBSCRIBER_MAX_PENDING = 5
    session, token = await amake_session()
    client = subscriber(session.id, token=token)
    assert await client.connect()
    _, complete = await client.receive_until_replay_complete()

    stalled = asyncio.Event()
    original_send = EventsConsumer.send

    async def stalled_send(self, *args, **kwargs):
        text_data = kwargs.get("text_data")
        if isinstance(text_data, str) and json.loads(text_data).get("type") == "tone":
            await stalled.wait()
        await original_send(self, *args, **kwargs)

    monkeypatch.setattr(EventsConsumer, "send", stalled_send)
    for _ in range(4):
        await _append_many(session.id, 2)

    error = await client.receive()
    assert (error["type"], error["code"]) == ("error", "subscriber_too_slow")
    assert await client.receive_close() == 4429
    stalled.set()
    monkeypatch.setattr(EventsConsumer, "send", original_send)

    resumed = subscriber(session.id, token=token, after=complete["last_seq"])
    assert await resumed.connect()
    replayed, _ = await resumed.receive_until_replay_complete()
    assert [e["seq"] for e in replayed] == list(range(complete["last_seq"] + 1, complete["last_seq"] + 9))


async def acknowledging_subscriber(amake_session, subscriber):
    """A subscriber past replay that has reported the last seq it received."""
    session, token = await amake_session()
    client = subscriber(session.id, token=token)
    assert await client.connect()
    _, complete = await client.receive_until_replay_complete()
    await client.send({"type": "heartbeat", "last_seq": complete["last_seq"]})
    # A heartbeat is handled in order, its write last: once that has landed, the server holds
    # the client to the seq it reported.
    await until(lambda: Session.objects.get(pk=session.pk).last_heartbeat_at, what="the heartbeat to be handled")
    return session, client, complete


async def test_subscriber_that_reports_falling_behind_is_closed_4429(amake_session, subscriber, settings):
    settings.EVENTS_SUBSCRIBER_MAX_PENDING = 5
    session, client, _ = await acknowledging_subscriber(amake_session, subscriber)

    for i in range(8):
        await append(session_id=session.id, type="tone", data={"i": i})

    delivered = []
    while True:
        message = await client.receive()
        if message["type"] == "error":
            break
        delivered.append(message["seq"])
    assert message["code"] == "subscriber_too_slow"
    assert await client.receive_close() == 4429
    assert len(delivered) == settings.EVENTS_SUBSCRIBER_MAX_PENDING


async def test_client_that_keeps_acknowledging_is_never_cut_off(amake_session, subscriber, settings):
    settings.EVENTS_SUBSCRIBER_MAX_PENDING = 5
    session, client, complete = await acknowledging_subscriber(amake_session, subscriber)

    for i in range(12):
        await append(session_id=session.id, type="tone", data={"i": i})
        received = await client.receive()
        await client.send({"type": "heartbeat", "last_seq": received["seq"]})
    assert received["seq"] == complete["last_seq"] + 12


async def test_unexpected_failure_on_a_client_message_closes_1011_and_releases_the_subscriber(
    amake_session, subscriber, monkeypatch
):
    from sessions_app import consumers
    from sessions_app.models import Subscription

    session, token = await amake_session()
    client = subscriber(session.id, token=token)
    assert await client.connect()
    await client.receive_until_replay_complete()

    async def broken_heartbeat(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(consumers, "_session_heartbeat", broken_heartbeat)
    await client.send({"type": "heartbeat"})

    error = await client.receive()
    assert error["code"] == "internal_error"
    assert await client.receive_close() == 1011
    await client.close()
    assert await database_sync_to_async(Subscription.objects.filter(session=session).count)() == 0
