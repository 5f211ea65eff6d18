"""The events WebSocket: replay, then live, per session; heartbeat and input from the client."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from contextlib import AsyncExitStack

from channels.db import database_sync_to_async
from django.conf import settings

from sessions_app import errors
from sessions_app.errors import LinnetError
from sessions_app.services import sessions
from sessions_app.sockets import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_MALFORMED,
    CLOSE_NORMAL,
    CLOSE_TOO_FAST,
    SessionSocketConsumer,
)
from sessions_app.streaming import EventCursor, session_subscription

logger = logging.getLogger(__name__)

_session_heartbeat = database_sync_to_async(sessions.session_heartbeat)
_session_input = database_sync_to_async(sessions.session_input)


def parse_after(raw: str | None, last_seq: int) -> int:
    """`after` must be a whole number between 0 and the session's last seq."""
    if raw is None or raw == "":
        return 0
    try:
        after = int(raw)
    except ValueError:
        raise LinnetError(errors.INVALID_REQUEST, f"`after` must be a whole number, got {raw!r}.") from None
    if not 0 <= after <= last_seq:
        raise LinnetError(errors.INVALID_REQUEST, f"`after` must be between 0 and the last seq ({last_seq}).")
    return after


class EventsConsumer(SessionSocketConsumer):
    endpoint = "events"

    async def connect(self) -> None:
        self.subscription = AsyncExitStack()
        self.delivery: asyncio.Task | None = None
        self.live: deque[list[dict]] = deque()
        self.live_pending = 0
        self.live_arrived = asyncio.Event()
        # The last seq the client says it has (heartbeat `last_seq`); None until it says.
        self.acked_seq: int | None = None

        session = await self.open_session()
        if session is None:
            return
        try:
            after = parse_after(self.query_param("after"), session.last_seq)
        except LinnetError as exc:
            await self.close_with_error(CLOSE_MALFORMED, exc.code, exc.message)
            return
        self.session = session
        self.cursor = EventCursor(session.id, after)
        # Held from here until disconnect(), which closes it whatever happened in between.
        await self.subscription.enter_async_context(
            session_subscription(session, layer=self.channel_layer, channel=self.channel_name, transport="ws")
        )
        self.delivery = asyncio.get_running_loop().create_task(self.deliver())

    async def deliver(self) -> None:
        """Replay the log, mark the boundary, then stream live events in seq order."""
        try:
            async for page in self.cursor.replay():
                for event in page:
                    await self.send(text_data=event.text)
            await self.send_json({"type": "replay.complete", "last_seq": self.cursor.last_seq})
            while not self.cursor.ended:
                await self.live_arrived.wait()
                self.live_arrived.clear()
                while self.live and not self.cursor.ended:
                    batch = self.live.popleft()
                    self.live_pending -= len(batch)
                    admitted = await self.cursor.admit(batch)
                    if self.too_far_ahead():
                        await self.close_with_error(CLOSE_TOO_FAST, errors.SUBSCRIBER_TOO_SLOW)
                        return
                    for event in admitted:
                        await self.send(text_data=event.text)
            await self.close_normally(CLOSE_NORMAL)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("event delivery for session %s failed", self.session.id)
            await self.close_with_error(CLOSE_INTERNAL_ERROR, errors.INTERNAL_ERROR)

    def too_far_ahead(self) -> bool:
        """The server's socket buffer is invisible to the app, so a client that reports what it
        has received is held to the bound on what was sent past it."""
        if self.acked_seq is None:
            return False
        return self.cursor.last_seq - self.acked_seq > settings.EVENTS_SUBSCRIBER_MAX_PENDING

    async def session_events(self, message: dict) -> None:
        if self.closing:
            return
        events = message["events"]
        self.live.append(events)
        self.live_pending += len(events)
        if self.live_pending > settings.EVENTS_SUBSCRIBER_MAX_PENDING:
            # Never buffer without bound for a client that cannot keep up; it resumes with after=.
            self.stop_delivery()
            await self.close_with_error(CLOSE_TOO_FAST, errors.SUBSCRIBER_TOO_SLOW)
            return
        self.live_arrived.set()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing or not hasattr(self, "session"):
            return
        try:
            await self.handle_client_message(text_data)
        except Exception:
            # Whatever broke, the socket ends through the normal path, so disconnect() still
            # releases the subscription.
            logger.exception("events socket of session %s: a client message failed", self.session.id)
            await self.close_with_error(CLOSE_INTERNAL_ERROR, errors.INTERNAL_ERROR)

    async def handle_client_message(self, text_data: str | None) -> None:
        if text_data is None:
            await self.close_with_error(
                CLOSE_MALFORMED, errors.MALFORMED_MESSAGE, "The events socket takes JSON text frames only."
            )
            return
        try:
            message = json.loads(text_data)
        except (ValueError, RecursionError):
            await self.close_with_error(CLOSE_MALFORMED, errors.MALFORMED_MESSAGE, "The frame is not valid JSON.")
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "heartbeat":
            last_seq = message.get("last_seq")
            if last_seq is not None:
                if type(last_seq) is not int or not 0 <= last_seq <= self.cursor.last_seq:
                    await self.close_with_error(
                        CLOSE_MALFORMED, errors.MALFORMED_MESSAGE, "`last_seq` must be a seq this socket has sent."
                    )
                    return
                self.acked_seq = max(self.acked_seq or 0, last_seq)
            await _session_heartbeat(session=self.session)
        elif kind == "input":
            try:
                await _session_input(session=self.session, input=message.get("input"))
            except LinnetError as exc:
                # A well-formed request the session cannot take: tell the client, keep the stream.
                await self.send_json({"type": "error", "code": exc.code, "message": exc.message})
        else:
            await self.close_with_error(
                CLOSE_MALFORMED,
                errors.MALFORMED_MESSAGE,
                f"Unknown message type {kind!r}; expected heartbeat or input.",
            )

    def stop_delivery(self) -> None:
        if self.delivery is not None and not self.delivery.done():
            self.delivery.cancel()

    async def disconnect(self, code: int) -> None:
        self.stop_delivery()
        await self.subscription.aclose()
