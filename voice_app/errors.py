"""Error codes and messages of the audio socket, the voice sidecar and the feedback API,
shared with the tests."""

from __future__ import annotations

from sessions_app import errors as session_errors

INVALID_AUDIO = "invalid_audio"
FRAME_TOO_LARGE = "frame_too_large"
AUDIO_TOO_FAST = "audio_too_fast"
AUDIO_IDLE = "audio_idle"
AUDIO_STREAM_ATTACHED = "audio_stream_attached"
SESSION_NOT_VOICE = "session_not_voice"
EVENT_NOT_FOUND = "event_not_found"
# Reused from the session API so a client handles them the same on every socket.
MALFORMED_MESSAGE = session_errors.MALFORMED_MESSAGE
SESSION_NOT_ACTIVE = session_errors.SESSION_NOT_ACTIVE
INVALID_REQUEST = session_errors.INVALID_REQUEST
NOT_FOUND = session_errors.NOT_FOUND
PAYLOAD_TOO_LARGE = session_errors.PAYLOAD_TOO_LARGE
INTERNAL_ERROR = session_errors.INTERNAL_ERROR

MESSAGES = {
    INVALID_AUDIO: "Audio must be 16-bit little-endian mono PCM (an even number of bytes).",
    FRAME_TOO_LARGE: "The frame is larger than AUDIO_MAX_FRAME_BYTES.",
    AUDIO_TOO_FAST: "Audio is arriving faster than twice real time.",
    AUDIO_IDLE: "No audio or keepalive for longer than AUDIO_IDLE_TIMEOUT_S.",
    AUDIO_STREAM_ATTACHED: "An audio stream is already attached to this session.",
    SESSION_NOT_VOICE: "Only voice sessions take audio.",
    EVENT_NOT_FOUND: "No tone event with that seq in this session.",
}
session_errors.messages_register(MESSAGES)
