"""Voice reads: where a session's audio timeline stands."""

from __future__ import annotations

import uuid

from django.db.models import FloatField, Max
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from sessions_app.models import Event

# The events a classified window logs; each carries `start` and `end` in seconds of the
# session's audio.
WINDOW_EVENT_TYPES = ("tone", "speaker", "transcript", "queue", "environ")


def session_audio_end_s(*, session_id: uuid.UUID | str) -> float:
    """Where the session's logged audio ends: the clock a newly attached stream starts from.

    Read from the log rather than summed from the closed streams' byte counts: a stream of a
    killed process is closed by the next producer without its totals, and its windows are in
    the log all the same. Starting after the latest logged `end` is what keeps a reconnecting
    client's timeline from overlapping what is already there. Audio a stream received but
    never classified (a partial window dropped on disconnect) is not on the timeline, so the
    clock does not count it either.
    """
    latest = (
        Event.objects.filter(session_id=session_id, type__in=WINDOW_EVENT_TYPES)
        .annotate(end_s=Cast(KeyTextTransform("end", "data"), FloatField()))
        .aggregate(latest=Max("end_s"))["latest"]
    )
    return float(latest or 0.0)
