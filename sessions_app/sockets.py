"""What every Linnet WebSocket shares: the handshake checks and typed error closes."""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs, urlsplit

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http.request import split_domain_port, validate_host

from sessions_app import errors, metrics, selectors
from sessions_app.errors import LinnetError
from sessions_app.models import Session

logger = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_MALFORMED = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_FORBIDDEN_ORIGIN = CLOSE_FORBIDDEN
CLOSE_NOT_FOUND = 4404
CLOSE_IDLE = 4408
CLOSE_NOT_ACTIVE = 4409
CLOSE_TOO_LARGE = 4413
CLOSE_TOO_FAST = 4429
CLOSE_INTERNAL_ERROR = 1011

_session_get_authorized = database_sync_to_async(selectors.session_get_authorized)

_HTTP_TO_CLOSE = {401: CLOSE_UNAUTHORIZED, 404: CLOSE_NOT_FOUND, 409: CLOSE_NOT_ACTIVE, 413: CLOSE_TOO_LARGE}


def origin_allowed(origin: str) -> bool:
    """An Origin is allowed when its host is one of ALLOWED_HOSTS or it is a trusted origin."""
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    domain, _port = split_domain_port(parts.netloc)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


class LinnetSocketConsumer(AsyncWebsocketConsumer):
    """Accepts, then checks the origin, closing with the typed code and an error frame on failure.

    Accepting first is what lets the client see the error frame and the 44xx close code;
    a refused handshake would only show it a generic failure.
    """

    endpoint = "socket"
    closing = False

    def query_param(self, name: str) -> str | None:
        values = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get(name)
        return values[-1] if values else None

    def header(self, name: bytes) -> str | None:
        for key, value in self.scope.get("headers", []):
            if key == name:
                return value.decode("latin-1")
        return None

    async def accept_from_allowed_origin(self) -> bool:
        """Accept the socket; close it 4403 and return False when its Origin is foreign."""
        await self.accept()
        metrics.SOCKETS_OPEN.labels(self.endpoint).inc()
        origin = self.header(b"origin")
        if origin is not None and not origin_allowed(origin):
            await self.close_with_error(CLOSE_FORBIDDEN_ORIGIN, errors.FORBIDDEN_ORIGIN)
            return False
        return True

    def browser_user(self):
        """The cookie-authenticated user, or None for a handshake without an Origin.

        Cookie identity counts only from a browser (an Origin we checked): a handshake
        without Origin must prove itself some other way, such as a session's token.
        """
        return self.scope.get("user") if self.header(b"origin") is not None else None

    async def dispatch(self, message: dict) -> None:
        """Hand a message to its handler, without Channels' connection check before each one.

        Channels closes stale database connections before every message, a hop to the one
        database thread each: every audio frame and every fanned-out event would queue
        behind the windows and deltas being written. Our own database calls check their
        connection anyway (`database_sync_to_async` does, before and after each call).
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def send_json(self, payload: dict) -> None:
        await self.send(text_data=json.dumps(payload, separators=(",", ":")))

    async def close_with_error(self, close_code: int, code: str, message: str | None = None) -> None:
        """Send `{"type": "error", ...}` then close; logged once, here."""
        if self.closing:
            return
        self.closing = True
        message = message or errors.message_for(code)
        logger.info(
            "%s socket %s closed with %d %s: %s", self.endpoint, self.scope.get("path"), close_code, code, message
        )
        await self.send_json({"type": "error", "code": code, "message": message, "close_code": close_code})
        await self.close_normally(close_code)

    async def close_normally(self, close_code: int = CLOSE_NORMAL) -> None:
        self.closing = True
        metrics.SOCKETS_CLOSED.labels(self.endpoint, str(close_code)).inc()
        await self.close(code=close_code)

    async def websocket_disconnect(self, message: dict) -> None:
        metrics.SOCKETS_OPEN.labels(self.endpoint).dec()
        await super().websocket_disconnect(message)


class SessionSocketConsumer(LinnetSocketConsumer):
    """A socket on one session: the origin, then the session and its token (or a staff or owner login)."""

    endpoint = "session"

    async def open_session(self) -> Session | None:
        """Accept the socket and return the session, or close with the right code and None."""
        if not await self.accept_from_allowed_origin():
            return None
        user = self.browser_user()
        token = self.query_param("token")
        try:
            # One database hop: a resuming client should wait for as few as possible.
            return await _session_get_authorized(
                session_id=self.scope["url_route"]["kwargs"]["session_id"], token=token, user=user
            )
        except LinnetError as exc:
            await self.close_with_error(_HTTP_TO_CLOSE.get(exc.status, CLOSE_MALFORMED), exc.code, exc.message)
            return None
