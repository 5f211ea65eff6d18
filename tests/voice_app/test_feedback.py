import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from sessions_app.models import Event, Session
from sessions_app.services.events import events_append_one
from tests.http import bearer, create
from tests.voice_app.conftest import log_tone, tone_data
from voice_app import errors
from voice_app.annotation import TONE_LABELS
from voice_app.models import Feedback
from voice_app.services import TONE_FEEDBACK_EVENT

pytestmark = pytest.mark.django_db


def give(client: Client, session_id: str, body: dict | str, **headers):
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post(f"/api/sessions/{session_id}/feedback", data=data, content_type="application/json", **headers)


def feedback_events(session_id: str) -> list[Event]:
    return list(Event.objects.filter(session_id=session_id, type=TONE_FEEDBACK_EVENT).order_by("seq"))


def test_feedback_is_stored_with_the_tone_and_logged(client):
    session = create(client)
    seq = log_tone(session["id"], label="tense")

    response = give(
        client, session["id"], {"seq": seq, "verdict": "down", "label": "animated"}, **bearer(session["token"])
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["seq"], body["verdict"], body["label"]) == (seq, "down", "animated")
    assert body["created_at"] == body["updated_at"]
    row = Feedback.objects.get(session_id=session["id"], seq=seq)
    assert (row.verdict, row.label, row.user) == ("down", "animated", None)
    assert row.tone == tone_data(label="tense")
    [event] = feedback_events(session["id"])
    assert event.data == {"seq": seq, "verdict": "down", "label": "animated"}
    assert Session.objects.get(pk=session["id"]).last_seq == event.seq


def test_feedback_without_a_label_logs_a_null_label(client):
    session = create(client)
    seq = log_tone(session["id"])

    response = give(client, session["id"], {"seq": seq, "verdict": "up"}, **bearer(session["token"]))

    assert (response.status_code, response.json()["label"]) == (200, None)
    assert Feedback.objects.get(session_id=session["id"], seq=seq).label is None
    assert [e.data for e in feedback_events(session["id"])] == [{"seq": seq, "verdict": "up", "label": None}]


def test_a_later_verdict_on_the_same_tone_replaces_the_row_and_is_logged_again(client):
    session = create(client)
    seq = log_tone(session["id"])
    first = give(client, session["id"], {"seq": seq, "verdict": "up"}, **bearer(session["token"])).json()

    second = give(client, session["id"], {"seq": seq, "verdict": "down", "label": "calm"}, **bearer(session["token"]))

    assert second.status_code == 200
    assert second.json()["created_at"] == first["created_at"]
    assert second.json()["updated_at"] >= first["updated_at"]
    row = Feedback.objects.get(session_id=session["id"])
    assert (row.seq, row.verdict, row.label) == (seq, "down", "calm")
    assert [e.data for e in feedback_events(session["id"])] == [
        {"seq": seq, "verdict": "up", "label": None},
        {"seq": seq, "verdict": "down", "label": "calm"},
    ]


def test_feedback_on_each_tone_is_its_own_row(client):
    session = create(client)
    first, second = log_tone(session["id"], label="calm"), log_tone(session["id"], label="hesitant", start=3.0, end=4.0)

    for seq in (first, second):
        assert give(client, session["id"], {"seq": seq, "verdict": "up"}, **bearer(session["token"])).status_code == 200

    rows = Feedback.objects.filter(session_id=session["id"]).order_by("seq")
    assert [(row.seq, row.tone["label"]) for row in rows] == [(first, "calm"), (second, "hesitant")]


def test_a_seq_that_is_not_a_tone_of_this_session_is_404_event_not_found(client):
    session = create(client)
    silence = events_append_one(session_id=session["id"], type="queue", data={"label": "silence"}).seq
    log_tone(session["id"])
    last_seq = Session.objects.get(pk=session["id"]).last_seq

    for seq in (1, silence, last_seq + 1):
        response = give(client, session["id"], {"seq": seq, "verdict": "down"}, **bearer(session["token"]))
        assert response.status_code == 404
        assert response.json()["error"] == {
            "code": errors.EVENT_NOT_FOUND,
            "message": errors.MESSAGES[errors.EVENT_NOT_FOUND],
        }

    assert not Feedback.objects.exists()
    assert Session.objects.get(pk=session["id"]).last_seq == last_seq


def test_a_tone_seq_of_another_session_is_404(client):
    session = create(client)
    other = create(client)
    log_tone(session["id"])
    others_tones = [log_tone(other["id"]) for _ in range(3)]
    only_the_others = others_tones[-1]
    assert not Event.objects.filter(session_id=session["id"], seq=only_the_others).exists()

    response = give(client, session["id"], {"seq": only_the_others, "verdict": "up"}, **bearer(session["token"]))

    assert (response.status_code, response.json()["error"]["code"]) == (404, errors.EVENT_NOT_FOUND)
    crossed = give(client, other["id"], {"seq": only_the_others, "verdict": "up"}, **bearer(session["token"]))
    assert (crossed.status_code, crossed.json()["error"]["code"]) == (401, "unauthorized")
    assert not Feedback.objects.exists()
    assert feedback_events(other["id"]) == []


@pytest.mark.parametrize("headers", [{}, bearer("not-the-token")])
def test_feedback_needs_the_session_token(client, headers):
    session = create(client)
    seq = log_tone(session["id"])

    response = give(client, session["id"], {"seq": seq, "verdict": "up"}, **headers)

    assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthorized")
    assert not Feedback.objects.exists()
    assert feedback_events(session["id"]) == []


def test_unknown_session_is_404(client):
    response = give(client, "3b1e1f5e-8c1d-4d6e-9a53-0d1f7c4a1b11", {"seq": 2, "verdict": "up"})
    assert (response.status_code, response.json()["error"]["code"]) == (404, "session_not_found")


@pytest.mark.parametrize(
    "body",
    [
        {"verdict": "down", "label": "furious"},
        {"verdict": "down", "label": ""},
        {"verdict": "down", "label": "Calm"},
        {"verdict": "sideways"},
        {"verdict": None},
        {"verdict": "up", "extra": 1},
        {"verdict": "up", "seq": "2"},
        {"verdict": "up", "seq": 0},
        {"verdict": "up", "seq": True},
        {"seq": None},
    ],
)
def test_invalid_feedback_is_422_and_changes_nothing(client, body):
    session = create(client)
    seq = log_tone(session["id"])

    response = give(client, session["id"], {"seq": seq, **body}, **bearer(session["token"]))

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert not Feedback.objects.exists()
    assert feedback_events(session["id"]) == []


def test_malformed_json_is_a_client_error(client):
    session = create(client)
    response = give(client, session["id"], "{nope", **bearer(session["token"]))
    assert response.status_code in (400, 422)
    assert set(response.json()["error"]) >= {"code", "message"}


def test_every_vocabulary_label_is_a_valid_correction(client):
    session = create(client)
    for label in TONE_LABELS:
        seq = log_tone(session["id"])
        response = give(
            client, session["id"], {"seq": seq, "verdict": "down", "label": label}, **bearer(session["token"])
        )
        assert (response.status_code, response.json()["label"]) == (200, label)
    assert Feedback.objects.filter(session_id=session["id"]).count() == len(TONE_LABELS)


def test_ended_session_still_takes_feedback(client):
    session = create(client)
    seq = log_tone(session["id"])
    assert client.delete(f"/api/sessions/{session['id']}", **bearer(session["token"])).json()["state"] == "done"

    response = give(client, session["id"], {"seq": seq, "verdict": "down", "label": "calm"}, **bearer(session["token"]))

    assert response.status_code == 200
    assert Feedback.objects.filter(session_id=session["id"], seq=seq).exists()
    types = list(Event.objects.filter(session_id=session["id"]).order_by("seq").values_list("type", flat=True))
    assert types[-2:] == ["session.ended", TONE_FEEDBACK_EVENT]


def test_staff_cookie_write_without_csrf_token_is_refused():
    staff = get_user_model().objects.create_user("staff", password="pw-123456", is_staff=True)
    session = create(Client())
    seq = log_tone(session["id"])
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)

    response = give(client, session["id"], {"seq": seq, "verdict": "up"})

    assert response.status_code == 403
    assert not Feedback.objects.exists()
    assert feedback_events(session["id"]) == []


def test_logged_in_owner_is_recorded_as_the_giver():
    owner = get_user_model().objects.create_user("owner", password="pw-123456")
    client = Client()
    client.force_login(owner)
    session = create(client)
    seq = log_tone(session["id"])

    response = give(client, session["id"], {"seq": seq, "verdict": "up"})

    assert response.status_code == 200
    assert Feedback.objects.get(session_id=session["id"]).user == owner


def test_openapi_document_lists_the_feedback_endpoint_and_vocabulary(client):
    spec = client.get("/api/openapi.json").json()

    operation = spec["paths"]["/api/sessions/{session_id}/feedback"]["post"]
    assert "200" in operation["responses"]
    schemas = spec["components"]["schemas"]
    assert set(schemas["FeedbackOut"]["properties"]) == {"seq", "verdict", "label", "created_at", "updated_at"}
    assert set(schemas["ToneLabelName"]["enum"]) == set(TONE_LABELS)
