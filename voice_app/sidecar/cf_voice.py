"""The cf-voice protocol, client side: a sidecar's health, one window classified, and its answer
turned into Linnet log items.
"""

from __future__ import annotations

import base64

import httpx

from voice_app.annotation import tone_annotation
from voice_app.sidecar.client import SidecarError, failure_reason, sidecar_client

# A window is a second or so of audio: a sidecar slower than this is worse than the
# in-process classifier, which takes over for the window.
CLASSIFY_TIMEOUT = httpx.Timeout(4.0, connect=1.0)
HEALTH_TIMEOUT = httpx.Timeout(2.0, connect=1.0)

SHIFT_DIRECTIONS = frozenset({"stable", "escalating", "de-escalating"})
# How much vocal intensity (loudness, pitch, rate) each tone label of the vocabulary implies;
# a sidecar gives only an unsigned shift_magnitude, so its direction comes from the move
# between consecutive labels. Labels outside this table carry no direction.
TONE_INTENSITY = {"subdued": 0, "hesitant": 1, "calm": 2, "questioning": 2, "animated": 3, "tense": 4}
# Below this magnitude a change of label is noise, not a shift.
SHIFT_STABLE_BELOW = 0.15
MAPPED_TYPES = frozenset({"tone", "speaker", "transcript", "queue", "environ"})


async def sidecar_health(*, url: str) -> bool:
    """True when the sidecar's /health answers 200, False while it answers anything else.

    Raises SidecarError when it cannot be reached at all.
    """
    try:
        response = await sidecar_client().get(f"{url}/health", timeout=HEALTH_TIMEOUT)
    except httpx.HTTPError as exc:
        raise SidecarError(f"sidecar {url} unreachable ({failure_reason(exc)})") from exc
    return response.status_code == 200


async def sidecar_classify(
    *,
    url: str,
    pcm: bytes,
    timestamp: float,
    elcor: bool,
    session_id: str,
    language: str,
    num_speakers: int | None,
) -> list:
    """POST one window to {url}/classify and return its raw `events` list."""
    body = {
        "audio_chunk": base64.b64encode(pcm).decode("ascii"),
        "timestamp": timestamp,
        "elcor": elcor,
        "session_id": session_id,
        "language": language,
        "num_speakers": num_speakers,
    }
    try:
        response = await sidecar_client().post(f"{url}/classify", json=body, timeout=CLASSIFY_TIMEOUT)
        response.raise_for_status()
        payload = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SidecarError(f"sidecar {url} failed ({failure_reason(exc)})") from exc
    events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(events, list):
        raise SidecarError(f"sidecar {url} answered without an `events` list")
    return events


class SidecarShiftTracker:
    """Derives shift_direction for sidecar tones from the move between consecutive labels."""

    def __init__(self) -> None:
        self.previous_intensity: int | None = None

    def direction(self, *, label: str, shift_magnitude: float) -> str:
        level = TONE_INTENSITY.get(label.strip().lower())
        previous = self.previous_intensity
        if level is not None:
            self.previous_intensity = level
        if level is None or previous is None or shift_magnitude < SHIFT_STABLE_BELOW or level == previous:
            return "stable"
        return "escalating" if level > previous else "de-escalating"


def _unit_interval(value: object, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return min(1.0, max(0.0, float(value)))


def _event_start(timestamp: object, *, start: float, end: float) -> float:
    # An event may start inside the window (speech onset) or before it (a silence that has
    # lasted several windows); anything else is not a time in this stream.
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float) or not 0 <= timestamp <= end:
        return round(start, 3)
    return round(float(timestamp), 3)


def sidecar_events_map(
    *,
    events: list,
    start: float,
    end: float,
    elcor: bool,
    threshold: float,
    shift_tracker: SidecarShiftTracker,
) -> list[tuple[str, dict]]:
    """Turn a sidecar's `events` into Linnet log items for one window.

    Entries that are not objects with a string `event_type` and `label`, and event types
    Linnet does not know, are skipped. A missing confidence counts as 1.0 (the sidecar
    asserted the label); tones under `threshold` are dropped. An event spans from its
    `timestamp` (the window's start when it has none) to the window's end.
    """
    items: list[tuple[str, dict]] = []
    window_end = round(end, 3)
    for event in events:
        if not isinstance(event, dict):
            continue
        event_type, label = event.get("event_type"), event.get("label")
        if event_type not in MAPPED_TYPES or not isinstance(label, str) or not label.strip():
            continue
        confidence = _unit_interval(event.get("confidence"), 1.0)
        event_start = _event_start(event.get("timestamp"), start=start, end=end)
        speaker_id = event.get("speaker_id")
        speaker_id = speaker_id if isinstance(speaker_id, str | int) and not isinstance(speaker_id, bool) else None
        if event_type == "transcript":
            items.append(
                ("transcript", {"text": label, "speaker_id": speaker_id, "start": event_start, "end": window_end})
            )
        elif event_type == "tone":
            if confidence < threshold:
                continue
            magnitude = _unit_interval(event.get("shift_magnitude"), 0.0)
            derived = shift_tracker.direction(label=label, shift_magnitude=magnitude)
            given = event.get("shift_direction")
            shift_direction = given if given in SHIFT_DIRECTIONS else derived
            flags = event.get("prosody_flags")
            items.append(
                (
                    "tone",
                    {
                        "label": label,
                        "confidence": confidence,
                        "speaker_id": speaker_id,
                        "shift_magnitude": magnitude,
                        "shift_direction": shift_direction,
                        **tone_annotation(
                            label=label, confidence=confidence, shift_direction=shift_direction, elcor=elcor
                        ),
                        "prosody_flags": [f for f in flags if isinstance(f, str)] if isinstance(flags, list) else [],
                        "start": event_start,
                        "end": window_end,
                    },
                )
            )
        else:
            items.append(
                (event_type, {"label": label, "confidence": confidence, "start": event_start, "end": window_end})
            )
    return items
