"""Voice writes: claiming and closing the session's audio stream, logging a window's events,
the bookkeeping of cf-orch allocations, and the feedback people give on tones."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from functools import partial

from django.db import IntegrityError, transaction
from django.db.models import Q

from sessions_app.clock import utcnow
from sessions_app.errors import LinnetError
from sessions_app.models import TERMINAL_STATES, Event, Session, SessionKind, lease_alive_q
from sessions_app.services.events import events_append, events_append_one
from sessions_app.services.presence import current_lease_id
from sessions_app.services.sessions import session_activate
from voice_app import errors
from voice_app.models import AudioStream, Feedback
from voice_app.sidecar import allocation_release_soon


def _held_by_lapsed_lease(now: datetime) -> Q:
    """Streams whose process can no longer be holding them (its lease lapsed, or is gone)."""
    return Q(lease__isnull=True) | ~lease_alive_q(now=now, via="lease__")


def audio_stream_open(*, session: Session, now: datetime | None = None) -> AudioStream:
    """Claim the session's one audio stream for this process and activate a pending session.

    1. Lock the session row and check it is a live voice session.
    2. Close open streams of processes whose lease expired (a killed server), releasing
       their allocations after commit.
    3. Insert the open row; the partial unique constraint refuses a second live stream,
       whichever process holds the first.

    Raises LinnetError (409) with SESSION_NOT_VOICE, SESSION_NOT_ACTIVE or AUDIO_STREAM_ATTACHED.
    """
    now = now or utcnow()
    lease_id = current_lease_id(now=now)
    with transaction.atomic():
        locked = Session.objects.select_for_update().get(pk=session.pk)
        if locked.kind != SessionKind.VOICE:
            raise LinnetError(errors.SESSION_NOT_VOICE, status=409)
        if locked.is_terminal:
            raise LinnetError(errors.SESSION_NOT_ACTIVE, status=409)
        abandoned = AudioStream.objects.filter(_held_by_lapsed_lease(now), session=locked, closed_at__isnull=True)
        for stream in abandoned:
            _stream_close_and_release(stream_id=stream.pk, now=now)
        try:
            with transaction.atomic():
                stream = AudioStream.objects.create(session=locked, lease_id=lease_id, opened_at=now)
        except IntegrityError:
            raise LinnetError(errors.AUDIO_STREAM_ATTACHED, status=409) from None
        session_activate(session=locked)
    return stream


def audio_stream_close(
    *,
    stream_id: int,
    frames: int,
    bytes_received: int,
    windows: int,
    close_code: int | None,
    now: datetime | None = None,
) -> None:
    """Record a stream's totals and free the session for the next producer (idempotent)."""
    now = now or utcnow()
    with transaction.atomic():
        AudioStream.objects.filter(pk=stream_id, closed_at__isnull=True).update(
            frames=frames, bytes=bytes_received, windows=windows, close_code=close_code
        )
        _stream_close_and_release(stream_id=stream_id, now=now)


def _stream_close_and_release(*, stream_id: int, now: datetime) -> None:
    AudioStream.objects.filter(pk=stream_id, closed_at__isnull=True).update(closed_at=now)
    allocation_id = _allocation_claim(stream_id=stream_id, now=now)
    if allocation_id:
        _release_after_commit(allocation_id)


def audio_stream_allocation_record(*, stream_id: int, allocation_id: str) -> bool:
    """Remember the cf-orch allocation serving a stream; False when the stream already closed.

    A stream that closed while its allocation was being requested no longer releases
    anything, so the caller must release this allocation itself.
    """
    with transaction.atomic():
        recorded = AudioStream.objects.filter(pk=stream_id, closed_at__isnull=True).update(allocation_id=allocation_id)
    return bool(recorded)


def _allocation_claim(*, stream_id: int, now: datetime) -> str:
    """The stream's allocation id if this call is the one that releases it, else ""."""
    allocation_id = (
        AudioStream.objects.filter(pk=stream_id, allocation_released_at__isnull=True)
        .exclude(allocation_id="")
        .values_list("allocation_id", flat=True)
        .first()
    )
    if not allocation_id:
        return ""
    claimed = AudioStream.objects.filter(pk=stream_id, allocation_released_at__isnull=True).update(
        allocation_released_at=now
    )
    return allocation_id if claimed else ""


def audio_allocations_release_for_session(*, session_id: uuid.UUID | str, now: datetime | None = None) -> list[str]:
    """Claim every unreleased allocation of a session and release them after commit."""
    now = now or utcnow()
    stream_ids = AudioStream.objects.filter(session_id=session_id, allocation_released_at__isnull=True).exclude(
        allocation_id=""
    )
    released = []
    for stream_id in stream_ids.values_list("pk", flat=True):
        allocation_id = _allocation_claim(stream_id=stream_id, now=now)
        if allocation_id:
            _release_after_commit(allocation_id)
            released.append(allocation_id)
    return released


def _release_after_commit(allocation_id: str) -> None:
    transaction.on_commit(partial(allocation_release_soon, allocation_id=allocation_id))


def voice_events_append(
    *, session_id: uuid.UUID | str, stream_id: int, items: Iterable[tuple[str, dict]]
) -> list[Event]:
    """Log one window's events while the session is live and this stream still holds it.

    Checked for every window, even one with nothing to log, because this is how the stream
    learns it is over when the channel layer dropped the message that would have told it.

    Raises LinnetError (409) with SESSION_NOT_ACTIVE once the session has ended (a window
    logged after `session.ended` would reach no subscriber), or with AUDIO_STREAM_ATTACHED
    once another producer took the stream over (this process's lease lapsed meanwhile and
    the row was closed as abandoned).
    """
    with transaction.atomic():
        state = Session.objects.select_for_update().filter(pk=session_id).values_list("state", flat=True).first()
        if state is None or state in TERMINAL_STATES:
            raise LinnetError(errors.SESSION_NOT_ACTIVE, status=409)
        if not AudioStream.objects.filter(pk=stream_id, closed_at__isnull=True).exists():
            raise LinnetError(errors.AUDIO_STREAM_ATTACHED, status=409)
        return events_append(session_id=session_id, items=items)


TONE_FEEDBACK_EVENT = "tone.feedback"


def feedback_give(
    *, session: Session, seq: int, verdict: str, label: str | None = None, user=None, now: datetime | None = None
) -> Feedback:
    """Record a verdict on one of the session's tone events and log `tone.feedback` with it.

    A later verdict on the same tone replaces the earlier one (and logs again). Ended
    sessions take feedback too: people review finished sessions, and it only adds a row
    and a log entry.

    Raises LinnetError (404) with EVENT_NOT_FOUND when `seq` is not a tone of this session.
    """
    now = now or utcnow()
    giver = user if user is not None and user.is_authenticated else None
    with transaction.atomic():
        tone = Event.objects.filter(session_id=session.pk, seq=seq, type="tone").values_list("data", flat=True).first()
        if tone is None:
            raise LinnetError(errors.EVENT_NOT_FOUND, status=404)
        # Two verdicts on one tone queue on the row lock update_or_create takes (on the unique
        # constraint for a first verdict), so the last `tone.feedback` logged is what the row keeps.
        values = {"tone": tone, "verdict": verdict, "label": label, "user": giver, "updated_at": now}
        feedback, _ = Feedback.objects.update_or_create(
            session_id=session.pk, seq=seq, defaults=values, create_defaults={**values, "created_at": now}
        )
        events_append_one(
            session_id=session.pk, type=TONE_FEEDBACK_EVENT, data={"seq": seq, "verdict": verdict, "label": label}
        )
    return feedback
