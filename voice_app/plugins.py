"""What voice plugs into the core (imported from `VoiceAppConfig.ready()`): the hold an
attached audio stream keeps on its session, the audio-stream gauge, and what voice does
when a session ends."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q

from sessions_app import plugins
from sessions_app.models import Session, lease_alive_q
from sessions_app.signals import session_ended
from voice_app import receivers
from voice_app.models import AudioStream


def attached_streams(now: datetime) -> Q:
    """Streams still open on a live process: a producer is there, even if nobody reads."""
    return Q(closed_at__isnull=True) & lease_alive_q(now=now, via="lease__")


def audio_stream_count(now: datetime) -> int:
    return AudioStream.objects.filter(attached_streams(now)).count()


def plug_in() -> None:
    plugins.keep_alive_register(
        plugins.KeepAlive(
            name="audio stream attached",
            rows=AudioStream.objects.all,
            busy=attached_streams,
            ended_field="closed_at",
        )
    )
    plugins.gauge_register(
        plugins.Gauge("audio_streams", "linnet_audio_streams_open", "Audio streams attached now.", audio_stream_count)
    )
    session_ended.connect(
        receivers.release_allocations_on_session_end,
        sender=Session,
        dispatch_uid="voice_app.release_allocations_on_session_end",
    )
