"""Voice reads: where a session's audio timeline stands, and the feedback given on tones."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from django.db.models import FloatField, Max
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from sessions_app.models import Event
from voice_app.models import Feedback

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


FEEDBACK_EXPORT_CHUNK = 500


def feedback_json(feedback: Feedback) -> dict:
    return {
        "seq": feedback.seq,
        "verdict": feedback.verdict,
        "label": feedback.label,
        "created_at": feedback.created_at.isoformat(),
        "updated_at": feedback.updated_at.isoformat(),
    }


def feedback_shared_iter() -> Iterator[dict]:
    """One training example per feedback row of the sessions created with `share_feedback`.

    Streamed from a database cursor in chunks, so the export's size never sits in memory.
    Who gave the feedback stays out: only the session id leaves with it.
    """
    rows = (
        Feedback.objects.filter(session__share_feedback=True)
        .order_by("session_id", "seq")
        .values_list("session_id", "seq", "tone", "verdict", "label", "created_at", "updated_at")
    )
    for session_id, seq, tone, verdict, label, created_at, updated_at in rows.iterator(FEEDBACK_EXPORT_CHUNK):
        yield {
            "session_id": str(session_id),
            "seq": seq,
            "tone": tone,
            "verdict": verdict,
            "label": label,
            "created_at": created_at.isoformat(),
            "updated_at": updated_at.isoformat(),
        }
