"""The replay/live merge every event stream (WebSocket or SSE) shares.

A subscriber joins the session's group *before* reading the log, so nothing published
while it replays is missed; the cursor then drops what replay already delivered and reads
from the log any seq the layer skipped (a dropped message, or publishes that overtook each
other between commit and fan-out). The log is the single source of truth.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from channels.db import database_sync_to_async

from sessions_app import selectors

_events_after = database_sync_to_async(selectors.events_after)


class EventCursor:
    """The last seq delivered to one subscriber, and the rule for what may come next."""

    def __init__(self, session_id: uuid.UUID | str, after: int) -> None:
        self.session_id = session_id
        self.last_seq = after
        self.ended = False

    def _delivered(self, envelope: dict) -> dict:
        self.last_seq = envelope["seq"]
        if envelope["type"] == "session.ended":
            self.ended = True
        return envelope

    async def _read(self, *, until: int | None = None) -> AsyncIterator[list[dict]]:
        while True:
            page = await _events_after(session_id=self.session_id, after=self.last_seq, until=until)
            if not page:
                return
            yield [self._delivered(envelope) for envelope in page]
            if len(page) < selectors.EVENT_PAGE:
                return

    async def replay(self) -> AsyncIterator[list[dict]]:
        """Every logged event after the cursor, page by page."""
        async for page in self._read():
            yield page

    async def admit(self, envelopes: list[dict]) -> list[dict]:
        """Live events in seq order with duplicates dropped and gaps filled from the log."""
        admitted: list[dict] = []
        for envelope in sorted(envelopes, key=lambda e: e["seq"]):
            if envelope["seq"] <= self.last_seq:
                continue
            if envelope["seq"] > self.last_seq + 1:
                async for page in self._read(until=envelope["seq"] - 1):
                    admitted.extend(page)
            admitted.append(self._delivered(envelope))
        return admitted
