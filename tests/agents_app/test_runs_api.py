"""The run endpoints: create, read, stop, and their typed errors."""

from __future__ import annotations

import json
import uuid

import pytest
from django.test import Client

from agents_app import errors
from agents_app.models import Run, RunStatus
from agents_app.services import run_claim, run_finish
from sessions_app.models import Event
from sessions_app.services.presence import current_lease_id

pytestmark = pytest.mark.django_db(transaction=True)


class SessionClient:
    def __init__(self, session, token: str) -> None:
        self.client = Client()
        self.base = f"/api/sessions/{session.id}"
        self.headers = {"Authorization": f"Bearer {token}"}

    def post(self, path: str, body=None, *, raw: str | None = None):
        data = raw if raw is not None else json.dumps(body or {})
        return self.client.post(self.base + path, data=data, content_type="application/json", headers=self.headers)

    def get(self, path: str):
        return self.client.get(self.base + path, headers=self.headers)

    def delete(self):
        return self.client.delete(self.base, headers=self.headers)


@pytest.fixture
def http(make_session) -> SessionClient:
    session, token = make_session(kind="agent")
    return SessionClient(session, token)


def test_posting_a_run_queues_it_and_answers_202(http, settings):
    settings.LINNET_AGENT = "notes"

    response = http.post("/runs", {"input": "notes please"})

    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued" and body["agent"] == "notes" and body["input"] == "notes please"
    assert body["started_at"] is None and body["ended_at"] is None and body["error"] is None
    assert Run.objects.get(pk=body["id"]).status == RunStatus.QUEUED
    assert http.get(f"/runs/{body['id']}").json() == body


def test_an_ended_session_takes_no_run(http):
    http.delete()

    response = http.post("/runs", {"input": "too late"})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "session_not_active"
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "validation_error"),
        ({"input": 5}, "validation_error"),
        ({"input": ["a"]}, "validation_error"),
        ({"input": "x", "surprise": True}, "validation_error"),
        ({"input": "x" * 20_001}, "validation_error"),
        ({"input": "x", "agent": 3}, "validation_error"),
        ({"input": "x", "agent": "nope"}, "unknown_agent"),
    ],
)
def test_a_bad_body_or_unknown_agent_is_422(http, body, code):
    response = http.post("/runs", body)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == code
    assert not Run.objects.exists()


def test_an_unknown_agent_is_named_in_the_error(http):
    message = http.post("/runs", {"input": "x", "agent": "nope"}).json()["error"]["message"]

    assert "'nope'" in message and "notes" in message and "openai" in message


def test_unknown_runs_are_404_run_not_found(http, make_session):
    other_session, other_token = make_session(kind="agent")
    others = SessionClient(other_session, other_token).post("/runs", {"input": "mine"}).json()

    for path in (f"/runs/{uuid.uuid4()}", "/runs/not-a-uuid", f"/runs/{others['id']}"):
        for response in (http.get(path), http.post(path + "/stop")):
            assert response.status_code == 404, path
            assert response.json()["error"] == {"code": "run_not_found", "message": errors.MESSAGES["run_not_found"]}
    assert Run.objects.get(pk=others["id"]).status == RunStatus.QUEUED


def test_stopping_a_finished_run_is_false(http):
    created = http.post("/runs", {"input": "x"}).json()
    worker_id = current_lease_id()
    run_claim(worker_id=worker_id)
    run_finish(run_id=created["id"], worker_id=worker_id, status=RunStatus.DONE)
    done_events = Event.objects.filter(type="run.done").count()

    response = http.post(f"/runs/{created['id']}/stop")

    assert response.status_code == 200 and response.json() == {"stopped": False}
    assert Run.objects.get(pk=created["id"]).stop_requested is False
    assert Event.objects.filter(type="run.done").count() == done_events


def test_run_endpoints_need_the_sessions_token(http):
    created = http.post("/runs", {"input": "x"}).json()
    stranger = Client()

    for response in (
        stranger.post(http.base + "/runs", data=json.dumps({"input": "x"}), content_type="application/json"),
        stranger.get(http.base + f"/runs/{created['id']}"),
        stranger.post(http.base + f"/runs/{created['id']}/stop"),
    ):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
    assert Run.objects.get(pk=created["id"]).stop_requested is False


def test_the_run_endpoints_are_in_the_openapi_document():
    paths = Client().get("/api/openapi.json").json()["paths"]

    assert "202" in paths["/api/sessions/{session_id}/runs"]["post"]["responses"]
    assert "/api/sessions/{session_id}/runs/{run_id}" in paths
    assert "/api/sessions/{session_id}/runs/{run_id}/stop" in paths
