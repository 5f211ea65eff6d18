import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from sessions_app.models import Event, Session
from sessions_app.services.events import events_append_one
from sessions_app.services.sessions import session_transition
from sessions_app.tokens import token_hash
from tests.http import bearer, create

pytestmark = pytest.mark.django_db


def test_create_returns_token_once_and_stores_only_its_hash(client):
    body = create(client, elcor=True, window_ms=500, num_speakers=2, share_feedback=True)

    session = Session.objects.get(pk=body["id"])
    assert session.token_hash == token_hash(body["token"])
    assert body["token"] not in json.dumps(list(Session.objects.values()), default=str)
    assert body["state"] == "pending"
    assert body["options"] == {
        "elcor": True,
        "window_ms": 500,
        "language": "en",
        "num_speakers": 2,
        "share_feedback": True,
    }
    assert session.share_feedback is True
    assert body["urls"]["events_ws"].startswith(f"ws://testserver/ws/sessions/{body['id']}/events?token=")
    assert body["urls"]["audio_ws"].startswith(f"ws://testserver/ws/sessions/{body['id']}/audio?token=")
    assert body["urls"]["stream"].startswith(f"http://testserver/api/sessions/{body['id']}/stream?token=")
    read = client.get(f"/api/sessions/{body['id']}", **bearer(body["token"])).json()
    assert "token" not in read


def test_create_with_no_body_uses_defaults(client, settings):
    response = client.post("/api/sessions", content_type="application/json")
    assert response.status_code == 201
    assert response.json()["options"]["window_ms"] == settings.VOICE_WINDOW_MS
    assert response.json()["kind"] == "voice"
    assert response.json()["options"]["share_feedback"] is False


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "video"},
        {"window_ms": 150},
        {"window_ms": 50},
        {"window_ms": 3100},
        {"elcor": "yes"},
        {"share_feedback": "yes"},
        {"share_feedback": 1},
        {"num_speakers": 0},
        {"language": "x"},
        {"surprise": 1},
    ],
)
def test_invalid_create_body_is_422_with_envelope(client, body):
    response = client.post("/api/sessions", data=json.dumps(body), content_type="application/json")

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert Session.objects.count() == 0


def test_malformed_json_body_is_a_client_error_with_envelope(client):
    response = client.post("/api/sessions", data="{nope", content_type="application/json")

    assert response.status_code in (400, 422)
    assert set(response.json()["error"]) >= {"code", "message"}


def test_oversized_body_is_413(client):
    big = json.dumps({"language": "en", "pad": "x" * 400_000})
    response = client.post("/api/sessions", data=big, content_type="application/json")

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_unknown_session_is_404_and_missing_token_is_401(client):
    body = create(client)
    unknown = client.get("/api/sessions/3b1e1f5e-8c1d-4d6e-9a53-0d1f7c4a1b11", **bearer(body["token"]))
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "session_not_found")
    assert client.get("/api/sessions/not-a-uuid").status_code == 404
    for kwargs in ({}, bearer("wrong")):
        response = client.get(f"/api/sessions/{body['id']}", **kwargs)
        assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthorized")


def test_token_in_query_string_is_accepted(client):
    body = create(client)
    assert client.get(f"/api/sessions/{body['id']}?token={body['token']}").status_code == 200


def test_staff_needs_no_token_and_owner_needs_none_but_others_do():
    User = get_user_model()
    staff = User.objects.create_user("staff", password="pw-123456", is_staff=True)
    owner = User.objects.create_user("owner", password="pw-123456")
    other = User.objects.create_user("other", password="pw-123456")
    owner_client = Client()
    owner_client.force_login(owner)
    body = create(owner_client)

    for user, expected in ((staff, 200), (owner, 200), (other, 401)):
        client = Client()
        client.force_login(user)
        assert client.get(f"/api/sessions/{body['id']}").status_code == expected


def test_cookie_authenticated_write_requires_csrf():
    User = get_user_model()
    staff = User.objects.create_user("staff", password="pw-123456", is_staff=True)
    session = Session.objects.get(pk=create(Client())["id"])
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)

    response = client.delete(f"/api/sessions/{session.id}")

    assert response.status_code == 403
    session.refresh_from_db()
    assert session.state == "pending"


def test_delete_ends_session_as_done_and_is_idempotent(client):
    body = create(client)
    url = f"/api/sessions/{body['id']}"

    first = client.delete(url, **bearer(body["token"]))
    second = client.delete(url, **bearer(body["token"]))

    assert first.status_code == second.status_code == 200
    assert first.json()["state"] == second.json()["state"] == "done"
    types = list(Event.objects.filter(session_id=body["id"]).values_list("type", flat=True))
    assert types == ["session.state", "session.state", "session.state", "session.ended"]
    assert client.get(url, **bearer(body["token"])).json()["state"] == "done"


def test_heartbeat_is_204_and_recorded(client):
    body = create(client)
    response = client.post(f"/api/sessions/{body['id']}/heartbeat", **bearer(body["token"]))
    assert response.status_code == 204
    assert Session.objects.get(pk=body["id"]).last_heartbeat_at is not None


def test_input_when_not_awaiting_is_409(client):
    body = create(client)
    response = client.post(
        f"/api/sessions/{body['id']}/input",
        data=json.dumps({"input": {"a": 1}}),
        content_type="application/json",
        **bearer(body["token"]),
    )
    assert (response.status_code, response.json()["error"]["code"]) == (409, "not_awaiting_input")


def test_input_when_awaiting_resumes_the_session(client):
    body = create(client)
    session = Session.objects.get(pk=body["id"])
    session_transition(session=session, to="running")
    session_transition(
        session=session, to="input_required", pending_input={"run_id": None, "fields": [], "reason": "?"}
    )

    response = client.post(
        f"/api/sessions/{body['id']}/input",
        data=json.dumps({"input": {"focus": "speaker_1"}}),
        content_type="application/json",
        **bearer(body["token"]),
    )

    assert response.status_code == 200
    assert (response.json()["state"], response.json()["next_action"]) == ("running", "none")
    assert response.json()["pending_input"] is None


def test_input_body_must_be_an_object(client):
    body = create(client)
    response = client.post(
        f"/api/sessions/{body['id']}/input",
        data=json.dumps({"input": "yes"}),
        content_type="application/json",
        **bearer(body["token"]),
    )
    assert response.status_code == 422


def test_events_history_filters_by_after_type_and_limit(client):
    body = create(client)
    for i in range(5):
        events_append_one(session_id=body["id"], type="tone" if i % 2 else "queue", data={"i": i})
    url = f"/api/sessions/{body['id']}/events"

    everything = client.get(url, **bearer(body["token"])).json()
    tones = client.get(url, {"type": "tone"}, **bearer(body["token"])).json()
    page = client.get(url, {"after": 2, "limit": 2}, **bearer(body["token"])).json()

    assert [e["seq"] for e in everything["events"]] == [1, 2, 3, 4, 5, 6]
    assert everything["last_seq"] == 6
    assert [e["data"]["i"] for e in tones["events"]] == [1, 3]
    assert [e["seq"] for e in page["events"]] == [3, 4]


@pytest.mark.parametrize("query", [{"after": "x"}, {"after": -1}, {"limit": 0}, {"limit": 5000}])
def test_bad_events_query_is_422(client, query):
    body = create(client)
    response = client.get(f"/api/sessions/{body['id']}/events", query, **bearer(body["token"]))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


def test_export_is_an_attachment_with_session_messages_and_all_events(client):
    body = create(client)
    events_append_one(session_id=body["id"], type="tone", data={"label": "calm"})
    response = client.get(f"/api/sessions/{body['id']}/export", **bearer(body["token"]))

    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    exported = response.json()
    assert exported["session"]["id"] == body["id"]
    assert exported["messages"] == []
    assert [e["type"] for e in exported["events"]] == ["session.state", "tone"]


def test_unknown_api_path_is_404_envelope(client):
    response = client.get("/api/nothing/here")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")


def test_openapi_document_lists_the_session_api(client):
    spec = client.get("/api/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    for path in ("/api/sessions", "/api/sessions/{session_id}", "/api/sessions/{session_id}/stream"):
        assert path in spec["paths"]


@pytest.mark.django_db(transaction=True)
def test_healthz_readyz_and_metrics(client):
    create(client)
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "channel_layer": "ok"}
    metrics = client.get("/metrics")
    assert metrics["Content-Type"].startswith("text/plain")
    text = metrics.content.decode()
    assert 'linnet_sessions{state="pending"} 1.0' in text
    assert "linnet_sessions_opened_total" in text
    assert "linnet_audio_streams_open 0.0" in text
