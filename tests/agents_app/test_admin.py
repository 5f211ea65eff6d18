"""The admin: runs and messages are listed, filtered, searched, and "Stop run" stops through the service."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from agents_app.models import Message, MessageRole, Run, RunStatus
from agents_app.services import run_start
from sessions_app.models import Event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff() -> Client:
    user = get_user_model().objects.create_user("ops", password="pw", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client


def test_stop_run_action_stops_the_selected_runs(staff, make_session):
    session, _ = make_session(kind="agent")
    queued = run_start(session=session, input="x", agent="notes")

    response = staff.post(
        "/admin/agents_app/run/", {"action": "stop_runs", "_selected_action": [str(queued.id)]}, follow=True
    )

    assert response.status_code == 200
    assert Run.objects.get(pk=queued.id).status == RunStatus.STOPPED
    assert Event.objects.filter(session=session, type="run.done", data__status="stopped").count() == 1
    assert "Stopping 1 run(s); 0 had already ended." in response.content.decode()


def test_run_and_message_lists_filter_and_search(staff, make_session):
    session, _ = make_session(kind="agent")
    run = run_start(session=session, input="x", agent="notes")
    Message.objects.create(session=session, run=run, role=MessageRole.USER, content="hello there")

    by_status = staff.get("/admin/agents_app/run/", {"status__exact": "queued", "agent__exact": "notes"})
    by_session = staff.get("/admin/agents_app/run/", {"q": str(session.id)})
    not_a_uuid = staff.get("/admin/agents_app/run/", {"q": "hello"})
    messages = staff.get("/admin/agents_app/message/", {"role__exact": "user"})

    assert str(run.id) in by_status.content.decode()
    assert str(run.id) in by_session.content.decode()
    assert not_a_uuid.status_code == 200 and str(run.id) not in not_a_uuid.content.decode()
    assert "hello there" in messages.content.decode()
    assert staff.get(f"/admin/agents_app/run/{run.id}/change/").status_code == 200
