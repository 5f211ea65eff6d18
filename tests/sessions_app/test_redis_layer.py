"""The scale-out channel layer: events fan out through channels-redis to every subscriber."""

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels_redis.core import RedisChannelLayer

from sessions_app.services.events import events_append_one

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

append = database_sync_to_async(events_append_one)


@pytest.fixture
def redis_layer(settings, redis_url):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url], "capacity": 1000, "prefix": f"linnet-test-{id(settings)}"},
        }
    }
    channel_layers.backends.clear()
    yield redis_url
    channel_layers.backends.clear()


async def test_events_reach_subscribers_through_redis_without_gap(redis_layer, amake_session, subscriber):
    session, token = await amake_session()
    for i in range(10):
        await append(session_id=session.id, type="tone", data={"i": i})
    publishing = asyncio.create_task(_append_many(session.id, 50))
    client = subscriber(session.id, token=token)
    assert await client.connect()
    await publishing
    await database_sync_to_async(session.refresh_from_db)()

    seqs = []
    while not seqs or seqs[-1] < session.last_seq:
        message = await client.receive()
        if "seq" in message:
            seqs.append(message["seq"])
    assert seqs == list(range(1, session.last_seq + 1))
    assert isinstance(channel_layers["default"], RedisChannelLayer)


async def test_group_send_from_another_process_layer_reaches_subscriber(redis_layer, amake_session, subscriber):
    """A second layer instance stands in for another daphne/worker process on the same Redis."""
    session, token = await amake_session()
    client = subscriber(session.id, token=token)
    assert await client.connect()
    await client.receive_until_replay_complete()
    other_process = RedisChannelLayer(hosts=[redis_layer], prefix=channel_layers["default"].prefix)

    await append(session_id=session.id, type="tone", data={"from": "here"})
    envelope = {"seq": 99, "type": "tone", "ts": 0.0, "data": {"from": "there"}}
    await other_process.group_send(f"session.{session.id}", {"type": "session.events", "events": [envelope]})

    first = await client.receive()
    second = await client.receive()
    assert first["data"] == {"from": "here"}
    assert (second["seq"], second["data"]) == (99, {"from": "there"})
    await other_process.flush()


async def _append_many(session_id, n):
    for i in range(n):
        await append(session_id=session_id, type="tone", data={"i": i})
