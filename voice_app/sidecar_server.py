"""A cf-voice-compatible HTTP server around the in-process classifier (`manage.py voice_sidecar`).

Built on the standard library's ThreadingHTTPServer: classification is synchronous CPU work
(numpy), so a thread per connection is the natural fit, there is no event loop to keep free,
and the sidecar adds no dependency. It never touches the database.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from sessions_app.errors import LinnetError
from voice_app import errors
from voice_app.classifier import ClassifierCache, VoiceEvent

logger = logging.getLogger(__name__)

# A 3 s window of 48 kHz audio is under 400 kB of base64; anything far larger is a mistake.
MAX_BODY_BYTES = 4 * 1024 * 1024
# A connection that sends nothing (or stops mid-body) for this long is closed: each one holds
# a thread, and a half-open client would otherwise hold it forever. Linnet's pooled client
# drops idle connections well before this.
REQUEST_TIMEOUT_S = 30.0
UNKNOWN_ENDPOINT_MESSAGE = "No such endpoint; try GET /health or POST /classify."


def _bad_request(message: str) -> LinnetError:
    return LinnetError(errors.INVALID_REQUEST, message, status=HTTPStatus.BAD_REQUEST)


def classify_request_parse(body: bytes) -> tuple[np.ndarray, float, str, bool]:
    """Validate a /classify body; returns (pcm, timestamp, session_id, elcor)."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        # Deeply nested brackets exhaust the decoder's recursion limit well within MAX_BODY_BYTES.
        raise _bad_request("The body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise _bad_request("The body must be a JSON object.")
    chunk = payload.get("audio_chunk")
    if not isinstance(chunk, str):
        raise _bad_request("`audio_chunk` (base64 PCM16) is required.")
    try:
        pcm = base64.b64decode(chunk, validate=True)
    except (binascii.Error, ValueError):
        raise _bad_request("`audio_chunk` is not valid base64.") from None
    if not pcm or len(pcm) % 2:
        raise _bad_request("`audio_chunk` must hold whole 16-bit samples (a non-empty, even number of bytes).")
    timestamp = payload.get("timestamp", 0.0)
    # json.loads takes NaN and Infinity, which would make every event time of the window nonsense.
    if (
        isinstance(timestamp, bool)
        or not isinstance(timestamp, int | float)
        or not math.isfinite(timestamp)
        or timestamp < 0
    ):
        raise _bad_request("`timestamp` must be a finite number of seconds >= 0.")
    session_id = payload.get("session_id", "")
    if not isinstance(session_id, str):
        raise _bad_request("`session_id` must be a string.")
    elcor = payload.get("elcor", False)
    if not isinstance(elcor, bool):
        raise _bad_request("`elcor` must be true or false.")
    # language and num_speakers are part of the protocol; this classifier reads prosody only,
    # whatever the language, and does not separate speakers, but still checks their types.
    if not isinstance(payload.get("language", ""), str):
        raise _bad_request("`language` must be a string.")
    num_speakers = payload.get("num_speakers")
    if num_speakers is not None and (isinstance(num_speakers, bool) or not isinstance(num_speakers, int)):
        raise _bad_request("`num_speakers` must be a whole number or null.")
    return np.frombuffer(pcm, dtype="<i2"), float(timestamp), session_id, elcor


def sidecar_event_json(event: VoiceEvent) -> dict:
    """One classifier event in cf-voice's shape; tone extras ride along for Linnet to reuse."""
    data = event.data
    body = {
        "event_type": event.type,
        "label": data.get("label"),
        "confidence": data.get("confidence"),
        "timestamp": data.get("start"),
    }
    if event.type == "tone":
        body.update(
            speaker_id=data.get("speaker_id"),
            shift_magnitude=data.get("shift_magnitude"),
            shift_direction=data.get("shift_direction"),
            prosody_flags=data.get("prosody_flags", []),
        )
    return body


class SidecarServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        classifiers: ClassifierCache,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        super().__init__(address, SidecarRequestHandler)
        self.classifiers = classifiers
        self.request_timeout_s = request_timeout_s

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class SidecarRequestHandler(BaseHTTPRequestHandler):
    server: SidecarServer
    # Keep-alive, so Linnet's pooled client reuses its connections.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, the body of every answer on
    # a kept-alive connection waited for the client's delayed ACK (about 40 ms).
    disable_nagle_algorithm = True

    def setup(self) -> None:
        # The base class applies `timeout` to the socket; a read past it ends the connection.
        self.timeout = self.server.request_timeout_s
        super().setup()

    def do_GET(self) -> None:
        if self.path != "/health":
            self._error(HTTPStatus.NOT_FOUND, errors.NOT_FOUND, UNKNOWN_ENDPOINT_MESSAGE)
            return
        self._json(
            HTTPStatus.OK,
            {
                "status": "ready",
                "sample_rate": self.server.classifiers.sample_rate,
                "sessions": len(self.server.classifiers),
            },
        )

    def do_POST(self) -> None:
        if self.path != "/classify":
            self._error(HTTPStatus.NOT_FOUND, errors.NOT_FOUND, UNKNOWN_ENDPOINT_MESSAGE)
            return
        try:
            body = self._body()
            pcm, timestamp, session_id, elcor = classify_request_parse(body)
        except LinnetError as exc:
            self._error(HTTPStatus(exc.status), exc.code, exc.message)
            return
        classifier = self.server.classifiers.get(session_id=session_id, elcor=elcor)
        end = timestamp + len(pcm) / self.server.classifiers.sample_rate
        try:
            events = classifier.classify(pcm, start=timestamp, end=end)
        except Exception:
            logger.exception("classifying %.1f-%.1f s of session %r failed", timestamp, end, session_id)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, errors.INTERNAL_ERROR, "The window could not be classified.")
            return
        self._json(HTTPStatus.OK, {"events": [sidecar_event_json(event) for event in events]})

    def _body(self) -> bytes:
        raw_length = self.headers.get("Content-Length")
        if raw_length is None or not raw_length.isdigit():
            self.close_connection = True
            raise _bad_request("A Content-Length header is required.")
        length = int(raw_length)
        if length > MAX_BODY_BYTES:
            # The unread body would otherwise be parsed as the next request.
            self.close_connection = True
            raise LinnetError(
                errors.PAYLOAD_TOO_LARGE,
                f"The body is {length} bytes; the limit is {MAX_BODY_BYTES}.",
                status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            )
        return self.rfile.read(length)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The base class answers malformed requests and unknown methods with an HTML page.
        self.close_connection = True
        status = HTTPStatus(code)
        self._error(status, errors.INVALID_REQUEST, message or status.phrase)

    def _error(self, status: HTTPStatus, code: str, message: str) -> None:
        self._json(status, {"error": {"code": code, "message": message}})

    def _json(self, status: HTTPStatus, payload: dict) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        logger.debug("%s %s", self.address_string(), format % args)
