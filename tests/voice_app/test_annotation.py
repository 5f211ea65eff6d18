"""Tone annotation: affect and subtext for vocabulary labels and for labels a sidecar invents."""

from pathlib import Path

import pytest

from voice_app.annotation import (
    GENERIC_AFFECT,
    HEDGE_BELOW_CONFIDENCE,
    TONE_LABELS,
    tone_annotation,
    vocabulary_markdown,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "voice.md"


def annotate(label: str, *, confidence: float = 0.9, shift: str = "stable", elcor: bool = False) -> dict:
    return tone_annotation(label=label, confidence=confidence, shift_direction=shift, elcor=elcor)


def test_vocabulary_holds_the_documented_labels_with_every_field_filled():
    assert set(TONE_LABELS) >= {"calm", "animated", "tense", "subdued", "hesitant", "questioning"}
    for entry in TONE_LABELS.values():
        assert entry.affect and entry.reading and entry.elcor and entry.based_on
        assert entry.affect != GENERIC_AFFECT
        assert entry.reading[0].islower()
        assert " — " in entry.elcor


def test_calm_in_elcor_mode_is_the_bracketed_tone_prefix():
    assert annotate("calm", elcor=True) == {"affect": "composed", "subtext": "[Calmly — steady, even delivery]"}


@pytest.mark.parametrize("label", list(TONE_LABELS))
def test_every_label_has_a_plain_reading_and_an_elcor_prefix(label):
    entry = TONE_LABELS[label]

    plain = annotate(label)
    bracketed = annotate(label, elcor=True)

    assert plain == {"affect": entry.affect, "subtext": f"Sounds {entry.reading}."}
    assert bracketed == {"affect": entry.affect, "subtext": f"[{entry.elcor}]"}


def test_low_confidence_is_worded_as_a_possibility():
    below = HEDGE_BELOW_CONFIDENCE - 0.01

    assert annotate("calm", confidence=below)["subtext"] == "Possibly calm, with a steady, even delivery."
    assert annotate("calm", confidence=below, elcor=True)["subtext"] == "[Perhaps calmly — steady, even delivery]"
    assert annotate("calm", confidence=HEDGE_BELOW_CONFIDENCE)["subtext"].startswith("Sounds ")


def test_shift_direction_is_carried_into_the_subtext():
    assert annotate("tense", shift="escalating")["subtext"].endswith("; getting more intense.")
    assert annotate("tense", shift="escalating", elcor=True)["subtext"].endswith(", intensifying]")
    assert annotate("subdued", shift="de-escalating")["subtext"].endswith("; settling down.")
    assert annotate("subdued", shift="de-escalating", elcor=True)["subtext"].endswith(", settling]")
    assert annotate("calm", shift="sideways") == annotate("calm", shift="stable")


def test_vocabulary_labels_match_whatever_their_case_or_padding():
    assert annotate(" Calm ") == annotate("calm")


def test_an_unknown_sidecar_label_gets_a_neutral_generic_reading():
    plain = annotate("very_Frustrated")
    bracketed = annotate("very_Frustrated", elcor=True)
    hedged = annotate("very_Frustrated", confidence=0.2, elcor=True)

    assert plain == {"affect": GENERIC_AFFECT, "subtext": "Sounds very frustrated."}
    assert bracketed == {"affect": GENERIC_AFFECT, "subtext": "[Sounding very frustrated]"}
    assert hedged["subtext"] == "[Perhaps sounding very frustrated]"


def test_an_unknown_label_cannot_smuggle_markup_or_length_into_the_subtext():
    reading = annotate("]<b>angry</b>\n[" + "x" * 200, elcor=True)["subtext"]

    assert reading.count("[") == 1 and reading.count("]") == 1
    assert "<" not in reading and "\n" not in reading
    assert len(reading) < 80


def test_an_empty_label_still_reads_as_a_sentence():
    assert annotate("") == {"affect": GENERIC_AFFECT, "subtext": "Sounds hard to read."}
    assert annotate("  __ ", elcor=True)["subtext"] == "[Sounding hard to read]"


def test_docs_embed_the_vocabulary_exactly_as_the_table_renders_it():
    text = DOC.read_text(encoding="utf-8")
    begin, end = "<!-- vocabulary:begin -->\n", "<!-- vocabulary:end -->"

    assert text[text.index(begin) + len(begin) : text.index(end)] == vocabulary_markdown()


def test_rendered_vocabulary_lists_every_label_with_both_subtexts():
    rendered = vocabulary_markdown()

    for label, entry in TONE_LABELS.items():
        assert (
            f"| `{label}` | {entry.based_on} | {entry.affect} | Sounds {entry.reading}. | [{entry.elcor}] |" in rendered
        )
    for label in ("silence", "dead_air", "noise_floor_change"):
        assert f"`{label}`" in rendered
