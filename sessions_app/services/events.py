"""The durable event log and its one publish path."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Iterable
from functools import partial

from asgiref.sync import SyncToAsync, async_to_sync
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


def events_append_one(*, session_id: uuid.UUID | str, type: str, data: dict) -> Event:
    return events_append(session_id=session_id, items=[(type, data)])[0]


def events_publish(*, session_id: uuid.UUID | str, envelopes: list[dict]) -> None:
    """Fan committed events out to the session's group; a lost message is healed from the log."""
    metrics.events_published(envelopes)
    group_send_logged(
        session_group_name(session_id),
        {"type": LAYER_EVENTS, "events": envelopes},
        failure=f"publishing {len(envelopes)} event(s) of session {session_id} failed",
    )


def group_send_on_commit(group: str, message: dict, *, failure: str) -> None:
    """Send a layer message once the transaction commits (never for a rolled-back one)."""
    transaction.on_commit(partial(group_send_logged, group, message, failure=failure))


def group_send_logged(group: str, message: dict, *, failure: str) -> None:
    """Send a layer message; a failure is logged, not raised.

    Nothing sent this way is the only copy: receivers heal what a lost message would have
    told them from the database (the log by seq, the runs table on their next poll).

    Called on the database thread of a running server (the usual case: an on-commit hook
    of a `database_sync_to_async` call), the send is handed to the event loop and not
    waited for: every other socket's database work queues on that one thread, and must
    not wait for the layer too. Elsewhere (commands, sync tests) it is sent before returning.
    """
    loop = _serving_loop()
    if loop is None:
        try:
            async_to_sync(get_channel_layer().group_send)(group, message)
        except Exception:
            logger.exception(failure)
        return
    loop.call_soon_threadsafe(_group_send_task, loop, group, message, failure)


# Sends handed to the loop and not finished yet: a task nobody references may be collected.
_SENDS_IN_FLIGHT: set[asyncio.Task] = set()


async def events_sent() -> None:
    """Wait until every publish handed to this process's loop so far has been sent.

    A writer that can write again the moment its commit returns (a run's drain) waits here,
    so it never outruns the layer: what it buffered meanwhile goes out in its next write,
    and its own publishes reach the layer in the order it wrote them.
    """
    pending = list(_SENDS_IN_FLIGHT)
    if pending:
        await asyncio.wait(pending)


def _serving_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop this database thread works for, when it is running in this process."""
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if loop is None or getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) != os.getpid():
        return None
    if loop.is_closed() or not loop.is_running():
        return None
    return loop


def _group_send_task(loop: asyncio.AbstractEventLoop, group: str, message: dict, failure: str) -> None:
    async def send() -> None:
        try:
            await get_channel_layer().group_send(group, message)
        except Exception:
            logger.exception(failure)

    task = loop.create_task(send())
    _SENDS_IN_FLIGHT.add(task)
    task.add_done_callback(_SENDS_IN_FLIGHT.discard)
