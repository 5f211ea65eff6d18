"""What the classifier emits: one VoiceEvent per event, shaped exactly as the session log wants it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VoiceEvent:
    """One classifier result; `data` is exactly the event-envelope payload of its type (docs/protocol.md, Events)."""

    type: str
    data: dict


def labelled_event(kind: str, label: str, confidence: float, start: float, end: float) -> VoiceEvent:
    """A speaker, queue or environ event: the envelope gives them the same four fields."""
    return VoiceEvent(
        type=kind,
        data={"label": label, "confidence": round(confidence, 3), "start": round(start, 3), "end": round(end, 3)},
    )
