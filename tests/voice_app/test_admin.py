import pytest
from django.contrib.admin.templatetags.admin_list import result_headers
from django.contrib.auth import get_user_model

from tests.voice_app.conftest import log_tone
from voice_app.models import Feedback
from voice_app.services import feedback_give

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/voice_app/feedback/"


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456")
    client.force_login(user)
    return client


@pytest.fixture
def verdicts(make_session):
    """A shared session's `down` (tense → calm) and a private session's `up` (hesitant)."""
    shared, _ = make_session(share_feedback=True)
    private, _ = make_session()
    down = feedback_give(session=shared, seq=log_tone(shared.id, label="tense"), verdict="down", label="calm")
    up = feedback_give(session=private, seq=log_tone(private.id, label="hesitant"), verdict="up")
    return down, up


def listed(page) -> list[int]:
    return sorted(feedback.pk for feedback in page.context["cl"].result_list)


def test_feedback_changelist_shows_the_tone_the_verdict_and_consent(staff_client, verdicts):
    down, up = verdicts

    page = staff_client.get(CHANGELIST)

    assert page.status_code == 200
    headers = [str(header["text"]).lower() for header in result_headers(page.context["cl"])]
    assert headers[1:] == ["session", "seq", "tone label", "verdict", "corrected label", "shared", "created at"]
    html = page.content.decode()
    assert str(down.session_id)[:8] in html and str(up.session_id)[:8] in html
    assert "tense" in html and "hesitant" in html
    assert listed(page) == sorted([down.pk, up.pk])


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("verdict=down", "down"),
        ("shared=yes", "down"),
        ("shared=no", "up"),
        ("tone_label=hesitant", "up"),
        ("label=calm", "down"),
    ],
)
def test_feedback_filters(staff_client, verdicts, query, expected):
    down, up = verdicts

    page = staff_client.get(f"{CHANGELIST}?{query}")

    assert page.status_code == 200
    assert listed(page) == [{"down": down, "up": up}[expected].pk]


def test_feedback_cannot_be_added_or_edited_in_the_admin(staff_client, verdicts):
    down, _ = verdicts

    add = staff_client.get(f"{CHANGELIST}add/")
    edit = staff_client.post(f"{CHANGELIST}{down.pk}/change/", {"verdict": "up", "label": "tense"})

    assert add.status_code == 403
    assert edit.status_code == 403
    down.refresh_from_db()
    assert (down.verdict, down.label) == ("down", "calm")
    assert staff_client.get(f"{CHANGELIST}{down.pk}/change/").status_code == 200
    assert Feedback.objects.count() == 2
