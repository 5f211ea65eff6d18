"""What every event stream (WebSocket or SSE) shares: the subscription and the replay/live merge.

`session_subscription` is the one way in and out: join the session's group, count the
subscriber, activate the session, and undo all of it on every way out.

A subscriber joins the session's group *before* reading the log, so nothing published
while it replays is missed; the cursor then drops what replay already delivered and reads
from the log any seq the layer skipped (a dropped message, or publishes that overtook each
other between commit and fan-out). The log is the single source of truth.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from channels.db import database_sync_to_async
from channels.layers import BaseChannelLayer

from sessions_app import selectors
from sessions_app.models import EncodedEvent, Session, SessionState, envelope_encode
from sessions_app.services import presence, sessions

_events_after_encoded = database_sync_to_async(selectors.events_after_encoded)
_subscription_open = database_sync_to_async(presence.subscription_open)
_subscription_close = database_sync_to_async(presence.subscription_close)
_session_activate = database_sync_to_async(sessions.session_activate)


@asynccontextmanager
async def session_subscription(
    session: Session, *, layer: BaseChannelLayer, channel: str, transport: str
) -> AsyncIterator[None]:
    """Subscribe `channel` to a session's events for the duration of the block.

    1. Join the session's group first, so whatever is published from here on is buffered
       while the log is replayed.
    2. For a live session: keep this process's lease renewed, open the subscription row
       (the subscriber count) and activate the session (pending → running).
    3. On the way out, however it comes: close the subscription row before leaving the
       group, so a failing layer cannot leave a subscriber counted forever.
    """
    await layer.group_add(session.group_name, channel)
    subscription_id = None
    try:
        if not session.is_terminal:
            await presence.lease_keepalive_start()
            subscription_id = await _subscription_open(session=session, transport=transport)
            if session.state == SessionState.PENDING:
                await _session_activate(session=session)
        yield
    finally:
        if subscription_id is not None:
            await _subscription_close(subscription_id=subscription_id)
        await layer.group_discard(session.group_name, channel)


class EventCursor:
    """The last seq delivered to one subscriber, and the rule for what may come next.

    It hands out events encoded for the wire (`EncodedEvent`): replayed rows are spliced
    from the log's stored JSON, live ones are encoded once here for every transport.
    """

    def __init__(self, session_id: uuid.UUID | str, after: int) -> None:
        self.session_id = session_id
        self.last_seq = after
        self.ended = False

    def _delivered(self, event: EncodedEvent) -> EncodedEvent:
        self.last_seq = event.seq
        if event.type == "session.ended":
            self.ended = True
        return event

    async def _read(self, *, until: int | None = None) -> AsyncIterator[list[EncodedEvent]]:
        while True:
            page = await _events_after_encoded(session_id=self.session_id, after=self.last_seq, until=until)
            if not page:
                return
            yield [self._delivered(event) for event in page]
            if len(page) < selectors.EVENT_PAGE:
                return

    async def replay(self) -> AsyncIterator[list[EncodedEvent]]:
        """Every logged event after the cursor, page by page."""
        async for page in self._read():
            yield page

    async def admit(self, envelopes: list[dict]) -> list[EncodedEvent]:
        """Live events in seq order with duplicates dropped and gaps filled from the log."""
        admitted: list[EncodedEvent] = []
        for envelope in sorted(envelopes, key=lambda e: e["seq"]):
            if envelope["seq"] <= self.last_seq:
                continue
            if envelope["seq"] > self.last_seq + 1:
                async for page in self._read(until=envelope["seq"] - 1):
                    admitted.extend(page)
            admitted.append(self._delivered(envelope_encode(envelope)))
        return admitted
