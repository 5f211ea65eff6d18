"""What the benchmarks publish: tone events of the size a voice session really produces, and run tokens."""

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


def token_text(index: int) -> str:
    """A run's token, numbered, so a client can tell which tokens a merged `run.delta` carries."""
    return f"t{index} "


def token_indices(text: str) -> list[int]:
    """The indices of the tokens a delta's text carries."""
    return [int(word[1:]) for word in text.split()]
