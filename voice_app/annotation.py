"""The tone vocabulary and the words a tone event carries: its affect and its subtext.

TONE_LABELS, QUEUE_LABELS and ENVIRON_LABELS are the one place the vocabulary is written
down; the classifier scores exactly the labels of TONE_LABELS and docs/voice.md embeds the
tables rendered by vocabulary_markdown() (a test keeps the two in step).
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "ENVIRON_LABELS",
    "GENERIC_AFFECT",
    "HEDGE_BELOW_CONFIDENCE",
    "QUEUE_LABELS",
    "TONE_LABELS",
    "ToneLabel",
    "tone_annotation",
    "vocabulary_markdown",
]


@dataclass(frozen=True)
class ToneLabel:
    """One tone of the vocabulary: its affect, its two subtext forms, and its evidence."""

    affect: str
    # Completes "Sounds ..." / "Possibly ..."; lower-case start so it can follow either.
    reading: str
    # The elcor tone prefix without its brackets.
    elcor: str
    based_on: str


TONE_LABELS: Mapping[str, ToneLabel] = MappingProxyType(
    {
        "calm": ToneLabel(
            affect="composed",
            reading="calm, with a steady, even delivery",
            elcor="Calmly — steady, even delivery",
            based_on="intensity (loudness, pitch level and syllable rate taken together) close to the "
            "speaker's baseline; no phrase-final pitch rise; no more pausing than usual",
        ),
        "animated": ToneLabel(
            affect="engaged",
            reading="animated, with lively pitch and a quicker pace",
            elcor="Animatedly — lively pitch, quick pace",
            based_on="intensity above the baseline together with a livelier contour: a wider pitch "
            "range than usual (or 6 semitones and more) or a faster syllable rate than usual",
        ),
        "tense": ToneLabel(
            affect="strained",
            reading="tense, louder and higher-pitched than usual",
            elcor="Tensely — louder, higher, pressed delivery",
            based_on="loudness and pitch level both clearly above the baseline while the pitch "
            "range does not widen with them",
        ),
        "subdued": ToneLabel(
            affect="withdrawn",
            reading="subdued, softer and lower than usual",
            elcor="Quietly — soft, low, flat delivery",
            based_on="intensity below the baseline: softer, lower-pitched or slower, with a pitch "
            "range no wider than usual",
        ),
        "hesitant": ToneLabel(
            affect="uncertain",
            reading="hesitant, pausing more and speaking more slowly than usual",
            elcor="Hesitantly — halting, unhurried delivery",
            based_on="more of the window spent in pauses (gaps of 150 ms or more inside the speech, "
            "a fifth of the window or more) than usual, the more so with a slower syllable rate or "
            "lower loudness",
        ),
        "questioning": ToneLabel(
            affect="inquiring",
            reading="questioning, with the pitch rising at the end",
            elcor="Questioningly — pitch rising at the end",
            based_on="a phrase-final pitch rise: the end of the last voiced stretch before a pause "
            "sits 2 semitones or more (fully at 3.5) above its lowest pitch of the last 300 ms, as in "
            "yes/no questions",
        ),
    }
)

QUEUE_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "silence": "nobody spoke in this window, though it may hold background noise; one per "
        "non-speech window, except a gap of under 300 ms straight after speech",
        "dead_air": "the silence has lasted 5 s without a break; once per silent stretch, spanning from its start",
    }
)

ENVIRON_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "noise_floor_change": "the background level of the non-speech windows moved by more than "
        "6 dB from its running value and stayed there for at least 1 s",
    }
)

# A label from a sidecar that is not in the vocabulary carries no claim about the speaker's state.
GENERIC_AFFECT = "neutral"
# Below this confidence the subtext is worded as a possibility rather than a reading.
HEDGE_BELOW_CONFIDENCE = 0.4

_PLAIN_SHIFT = {"escalating": "; getting more intense", "de-escalating": "; settling down"}
_ELCOR_SHIFT = {"escalating": ", intensifying", "de-escalating": ", settling"}
_UNSAFE_LABEL_CHARACTERS = re.compile(r"[^\w' ]+")
_LONGEST_FOREIGN_LABEL = 40


def tone_annotation(*, label: str, confidence: float, shift_direction: str, elcor: bool) -> dict:
    """Return the `affect` and `subtext` of a tone event for any label, known or not."""
    entry = TONE_LABELS.get(label.strip().lower())
    hedged = confidence < HEDGE_BELOW_CONFIDENCE
    if entry is not None:
        affect, reading, elcor_prefix = entry.affect, entry.reading, entry.elcor
    else:
        affect = GENERIC_AFFECT
        reading = _foreign_label_words(label)
        elcor_prefix = f"Sounding {reading}"
    if elcor:
        if hedged:
            elcor_prefix = f"Perhaps {elcor_prefix[0].lower()}{elcor_prefix[1:]}"
        subtext = f"[{elcor_prefix}{_ELCOR_SHIFT.get(shift_direction, '')}]"
    else:
        subtext = f"{'Possibly' if hedged else 'Sounds'} {reading}{_PLAIN_SHIFT.get(shift_direction, '')}."
    return {"affect": affect, "subtext": subtext}


def _foreign_label_words(label: str) -> str:
    """Turn a sidecar's label such as "very_Frustrated" into words safe to show: "very frustrated"."""
    words = _UNSAFE_LABEL_CHARACTERS.sub(" ", label.replace("_", " ")).split()
    text = " ".join(words).lower()[:_LONGEST_FOREIGN_LABEL].strip()
    return text or "hard to read"


def vocabulary_markdown() -> str:
    """Render the vocabulary tables as the Markdown that docs/voice.md embeds."""
    lines = [
        "| tone label | based on | affect | plain subtext | elcor subtext |",
        "|---|---|---|---|---|",
    ]
    for name, entry in TONE_LABELS.items():
        plain = tone_annotation(label=name, confidence=1.0, shift_direction="stable", elcor=False)["subtext"]
        bracketed = tone_annotation(label=name, confidence=1.0, shift_direction="stable", elcor=True)["subtext"]
        lines.append(f"| `{name}` | {entry.based_on} | {entry.affect} | {plain} | {bracketed} |")
    lines += ["", "| event type | label | meaning |", "|---|---|---|"]
    lines += [f"| `queue` | `{name}` | {meaning} |" for name, meaning in QUEUE_LABELS.items()]
    lines += [f"| `environ` | `{name}` | {meaning} |" for name, meaning in ENVIRON_LABELS.items()]
    return "\n".join(lines) + "\n"
