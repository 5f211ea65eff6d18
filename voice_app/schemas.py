"""Request and response shapes of the feedback API (they also make /api/openapi.json)."""

from __future__ import annotations

from enum import StrEnum

from ninja import Schema
from pydantic import ConfigDict, Field, StrictInt

from voice_app.annotation import TONE_LABELS
from voice_app.models import FeedbackVerdict

# The vocabulary as an enum so /api/openapi.json lists the labels a correction may use.
ToneLabelName = StrEnum("ToneLabelName", {name: name for name in TONE_LABELS})


class FeedbackIn(Schema):
    model_config = ConfigDict(extra="forbid", use_enum_values=True)

    seq: StrictInt = Field(ge=1, description="The seq of one of the session's `tone` events.")
    verdict: FeedbackVerdict = Field(description="`up`: the tone was right; `down`: it was wrong.")
    label: ToneLabelName | None = Field(default=None, description="The right label, from the tone vocabulary.")


class FeedbackOut(Schema):
    seq: int
    verdict: str
    label: str | None
    created_at: str
    updated_at: str
