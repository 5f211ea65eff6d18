"""The durable event log and its one publish path."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from functools import partial

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models import F

from sessions_app import metrics
from sessions_app.models import Event, Session, session_group_name

logger = logging.getLogger(__name__)

# Channel-layer message type that carries logged events; consumers name their handler after it.
LAYER_EVENTS = "session.events"


def events_append(*, session_id: uuid.UUID | str, items: Iterable[tuple[str, dict]]) -> list[Event]:
    """Append events to a session's log and publish them once the transaction commits.

    1. Reserve a block of seqs with one conditional UPDATE on the session row; the row lock
       it takes orders concurrent appenders, so commits happen in seq order.
    2. Insert the rows.
    3. On commit, publish them to the session group in one layer message.
    """
    items = list(items)
    if not items:
        return []
    with transaction.atomic():
        reserved = Session.objects.filter(pk=session_id).update(last_seq=F("last_seq") + len(items))
        if not reserved:
            raise Session.DoesNotExist(f"session {session_id}")
        last_seq = Session.objects.filter(pk=session_id).values_list("last_seq", flat=True).get()
        first_seq = last_seq - len(items) + 1
        now = time.time()
        events = Event.objects.bulk_create(
            Event(session_id=session_id, seq=first_seq + i, type=type_, ts=now, data=data)
            for i, (type_, data) in enumerate(items)
        )
        envelopes = [event.envelope() for event in events]
        transaction.on_commit(partial(events_publish, session_id=session_id, envelopes=envelopes))
    return events


def event_append(*, session_id: uuid.UUID | str, type: str, data: dict) -> Event:
    return events_append(session_id=session_id, items=[(type, data)])[0]


def events_publish(*, session_id: uuid.UUID | str, envelopes: list[dict]) -> None:
    """Fan committed events out to the session's group; a lost message is healed from the log."""
    metrics.events_published(envelopes)
    layer = get_channel_layer()
    message = {"type": LAYER_EVENTS, "events": envelopes}
    try:
        async_to_sync(layer.group_send)(session_group_name(session_id), message)
    except Exception:
        # The events are committed; subscribers recover them by seq from the log.
        logger.exception("publishing %d event(s) of session %s failed", len(envelopes), session_id)
