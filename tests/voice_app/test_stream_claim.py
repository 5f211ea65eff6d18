"""The one-audio-stream-per-session claim holds across processes and expires with a dead one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.db import IntegrityError, transaction

from sessions_app.clock import utcnow
from sessions_app.models import ProcessLease
from sessions_app.services.sessions import session_open
from voice_app.models import AudioStream
from voice_app.services import audio_stream_close, audio_stream_open

pytestmark = pytest.mark.django_db(transaction=True)


def other_process_stream(session, *, lease_left_s: float, stopped: bool = False) -> AudioStream:
    """An open stream held by another server process whose lease ends `lease_left_s` from now."""
    now = utcnow()
    worker = ProcessLease.objects.create(
        id=f"other-host-4242-{lease_left_s}",
        role="web",
        hostname="other-host",
        pid=4242,
        started_at=now - timedelta(minutes=5),
        lease_expires_at=now + timedelta(seconds=lease_left_s),
        stopped_at=now if stopped else None,
    )
    return AudioStream.objects.create(session=session, lease=worker, opened_at=now, allocation_id="")


async def test_a_stream_held_by_another_live_process_refuses_a_second_with_4409(amake_session, audio_client):
    session, token = await amake_session()
    held = await database_sync_to_async(other_process_stream)(session, lease_left_s=20)
    client = audio_client(session.id, token=token)
    assert await client.connect_refused() == ("audio_stream_attached", 4409)
    await database_sync_to_async(held.refresh_from_db)()
    assert held.closed_at is None


@pytest.mark.parametrize("stopped", [False, True], ids=["lease_expired", "process_stopped"])
async def test_a_stream_of_a_dead_process_is_taken_over(amake_session, audio_client, stopped):
    session, token = await amake_session()
    held = await database_sync_to_async(other_process_stream)(
        session, lease_left_s=0 if stopped else -1, stopped=stopped
    )
    client = audio_client(session.id, token=token)

    assert (await client.connect())["type"] == "ready"
    await database_sync_to_async(held.refresh_from_db)()
    assert held.closed_at is not None
    open_streams = await database_sync_to_async(AudioStream.objects.filter(session=session, closed_at=None).count)()
    assert open_streams == 1


def test_the_database_refuses_two_open_streams_of_one_session():
    session, _ = session_open()
    audio_stream_open(session=session)
    lease_id = AudioStream.objects.get(session=session).lease_id
    with pytest.raises(IntegrityError), transaction.atomic():
        AudioStream.objects.create(session=session, lease_id=lease_id, opened_at=utcnow())


def test_closing_is_idempotent_and_keeps_the_first_totals():
    session, _ = session_open()
    stream = audio_stream_open(session=session)
    audio_stream_close(stream_id=stream.pk, frames=3, bytes_received=9600, windows=1, close_code=1000)
    audio_stream_close(stream_id=stream.pk, frames=0, bytes_received=0, windows=0, close_code=4400)

    stream.refresh_from_db()
    assert (stream.frames, stream.bytes, stream.windows, stream.close_code) == (3, 9600, 1, 1000)
    assert audio_stream_open(session=session).pk != stream.pk
