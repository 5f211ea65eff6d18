"""Parsing the audio socket's client frames; every refusal carries its close code."""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass

from sessions_app.errors import message_for
from sessions_app.sockets import CLOSE_MALFORMED, CLOSE_TOO_LARGE
from voice_app import errors

CONTROL_TYPES = frozenset({"keepalive", "finalize", "close"})
# Room for the JSON around a maximal base64 chunk (type, timestamp, whitespace).
TEXT_FRAME_OVERHEAD = 1024


@dataclass(frozen=True)
class AudioFrame:
    pcm: bytes


@dataclass(frozen=True)
class ControlFrame:
    type: str


class FrameError(Exception):
    """A frame the socket refuses: the close code, and the error code and message sent before it."""

    def __init__(self, close_code: int, code: str, message: str | None = None) -> None:
        self.close_code = close_code
        self.code = code
        self.message = message or message_for(code)
        super().__init__(self.message)


def _checked_pcm(pcm: bytes, *, max_bytes: int) -> AudioFrame:
    if len(pcm) > max_bytes:
        raise FrameError(
            CLOSE_TOO_LARGE,
            errors.FRAME_TOO_LARGE,
            f"An audio frame of {len(pcm)} bytes is over the {max_bytes}-byte limit.",
        )
    if len(pcm) % 2:
        raise FrameError(
            CLOSE_MALFORMED,
            errors.INVALID_AUDIO,
            f"An audio frame of {len(pcm)} bytes is not whole 16-bit samples (odd length).",
        )
    return AudioFrame(pcm)


def frame_from_bytes(data: bytes, *, max_bytes: int) -> AudioFrame:
    """A binary frame: raw PCM16 LE mono."""
    return _checked_pcm(data, max_bytes=max_bytes)


def max_text_frame_chars(max_bytes: int) -> int:
    return 4 * math.ceil(max_bytes / 3) + TEXT_FRAME_OVERHEAD


def frame_from_text(text: str, *, max_bytes: int) -> AudioFrame | ControlFrame:
    """A JSON text frame: `audio` (base64 PCM16) or a control message."""
    # Refuse an absurd frame by its length, before spending time and memory decoding it.
    if len(text) > max_text_frame_chars(max_bytes):
        raise FrameError(
            CLOSE_TOO_LARGE,
            errors.FRAME_TOO_LARGE,
            f"A text frame of {len(text)} characters cannot be a valid audio frame.",
        )
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        # A few thousand nested brackets fit well within the length limit and exhaust the
        # decoder's recursion limit: that is malformed input too, not a server fault.
        raise FrameError(CLOSE_MALFORMED, errors.MALFORMED_MESSAGE, "The text frame is not valid JSON.") from None
    kind = message.get("type") if isinstance(message, dict) else None
    if not isinstance(kind, str):
        raise FrameError(
            CLOSE_MALFORMED,
            errors.MALFORMED_MESSAGE,
            "A text frame must be a JSON object with a string `type`: audio, keepalive, finalize or close.",
        )
    if kind in CONTROL_TYPES:
        return ControlFrame(kind)
    if kind != "audio":
        raise FrameError(
            CLOSE_MALFORMED,
            errors.MALFORMED_MESSAGE,
            f"Unknown message type {kind!r}; expected audio, keepalive, finalize or close.",
        )
    chunk = message.get("audio_chunk")
    if not isinstance(chunk, str):
        raise FrameError(CLOSE_MALFORMED, errors.MALFORMED_MESSAGE, "An audio message needs `audio_chunk` (base64).")
    timestamp = message.get("timestamp")
    if timestamp is not None and (isinstance(timestamp, bool) or not isinstance(timestamp, int | float)):
        raise FrameError(CLOSE_MALFORMED, errors.MALFORMED_MESSAGE, "`timestamp` must be a number when present.")
    try:
        pcm = base64.b64decode(chunk, validate=True)
    except (binascii.Error, ValueError):
        raise FrameError(CLOSE_MALFORMED, errors.INVALID_AUDIO, "`audio_chunk` is not valid base64.") from None
    return _checked_pcm(pcm, max_bytes=max_bytes)
