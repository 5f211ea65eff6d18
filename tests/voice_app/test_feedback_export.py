import json
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import call_command

from tests.voice_app.conftest import log_tone, tone_data
from voice_app.services import feedback_give

pytestmark = pytest.mark.django_db

GIVEN_AT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def export(*args: str) -> tuple[list[dict], str]:
    out, err = StringIO(), StringIO()
    call_command("linnet_feedback_export", *args, stdout=out, stderr=err)
    return [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


@pytest.fixture
def shared_and_private(make_session):
    """A shared session with two verdicts and a private one with one."""
    shared, _ = make_session(share_feedback=True)
    private, _ = make_session()
    calm = log_tone(shared.id, label="calm", start=0.0, end=1.0)
    tense = log_tone(shared.id, label="tense", start=1.0, end=2.0)
    hidden = log_tone(private.id, label="subdued")
    feedback_give(session=shared, seq=calm, verdict="up", now=GIVEN_AT)
    feedback_give(session=shared, seq=tense, verdict="down", label="animated", now=GIVEN_AT)
    feedback_give(session=private, seq=hidden, verdict="down", label="calm", now=GIVEN_AT)
    return shared, private, calm, tense


def test_export_writes_one_line_per_shared_feedback_with_the_tones_data(shared_and_private):
    shared, _, calm, tense = shared_and_private

    lines, summary = export()

    assert lines == [
        {
            "session_id": str(shared.id),
            "seq": calm,
            "tone": tone_data(label="calm", start=0.0, end=1.0),
            "verdict": "up",
            "label": None,
            "created_at": GIVEN_AT.isoformat(),
            "updated_at": GIVEN_AT.isoformat(),
        },
        {
            "session_id": str(shared.id),
            "seq": tense,
            "tone": tone_data(label="tense", start=1.0, end=2.0),
            "verdict": "down",
            "label": "animated",
            "created_at": GIVEN_AT.isoformat(),
            "updated_at": GIVEN_AT.isoformat(),
        },
    ]
    assert "2 feedback line(s)" in summary


def test_other_sessions_feedback_never_leaves_the_database(shared_and_private):
    _, private, _, _ = shared_and_private

    lines, _ = export()

    assert str(private.id) not in {line["session_id"] for line in lines}
    assert all(line["tone"]["label"] != "subdued" for line in lines)


def test_export_to_a_file_leaves_stdout_empty(shared_and_private, tmp_path):
    target = tmp_path / "feedback.jsonl"

    lines, _ = export("--output", str(target))

    assert lines == []
    written = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [(line["verdict"], line["label"]) for line in written] == [("up", None), ("down", "animated")]


def test_a_replaced_verdict_is_exported_once_as_it_stands_now(shared_and_private):
    shared, _, calm, _ = shared_and_private
    later = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    feedback_give(session=shared, seq=calm, verdict="down", label="hesitant", now=later)

    lines, _ = export()

    [line] = [line for line in lines if line["seq"] == calm]
    assert (line["verdict"], line["label"]) == ("down", "hesitant")
    assert (line["created_at"], line["updated_at"]) == (GIVEN_AT.isoformat(), later.isoformat())


def test_nothing_shared_exports_nothing(make_session):
    private, _ = make_session()
    feedback_give(session=private, seq=log_tone(private.id), verdict="up")

    lines, summary = export()

    assert lines == []
    assert "0 feedback line(s)" in summary
