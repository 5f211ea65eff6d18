"""What the benchmarks publish: tone events of the size a voice session really produces."""

from __future__ import annotations

TONE_TYPE = "tone"


def tone_data(index: int) -> dict:
    return {
        "label": "calm",
        "confidence": 0.82,
        "speaker_id": "speaker_a",
        "shift_magnitude": 0.12,
        "shift_direction": "stable",
        "affect": "neutral",
        "subtext": "Steady, even delivery.",
        "prosody_flags": ["steady_pitch"],
        "start": float(index),
        "end": float(index + 1),
    }
