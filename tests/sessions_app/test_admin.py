import json

import pytest
from django.contrib.auth import get_user_model

from sessions_app.models import Event, Session
from sessions_app.services.presence import subscription_open

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456")
    client.force_login(user)
    return client


def test_session_changelist_shows_state_subscribers_and_ages(staff_client, make_session):
    session, _ = make_session()
    subscription_open(session=session, transport="ws")

    page = staff_client.get("/admin/sessions_app/session/")

    assert page.status_code == 200
    html = page.content.decode()
    assert str(session.id)[:8] in html
    for column in ("subscribers", "idle for", "heartbeat age"):
        assert column in html.lower()
    assert page.context["cl"].result_list[0].live_subscribers == 1


@pytest.mark.parametrize(
    ("action", "state", "code"), [("end_sessions", "done", None), ("abort_sessions", "aborted", "aborted_by_staff")]
)
def test_admin_actions_end_and_abort_sessions(staff_client, make_session, action, state, code):
    first, _ = make_session()
    second, _ = make_session()

    response = staff_client.post(
        "/admin/sessions_app/session/", {"action": action, "_selected_action": [str(first.id), str(second.id)]}
    )

    assert response.status_code == 302
    for session in (first, second):
        session.refresh_from_db()
        assert session.state == state
        assert (session.error or {}).get("code") == code
        assert Event.objects.filter(session=session, type="session.ended").count() == 1


def test_filters_and_event_and_process_lease_lists_render(staff_client, make_session):
    make_session()
    assert staff_client.get("/admin/sessions_app/session/?live=live").status_code == 200
    assert staff_client.get("/admin/sessions_app/event/?type=session.state").status_code == 200
    assert staff_client.get("/admin/sessions_app/processlease/").status_code == 200
    assert Session.objects.count() == 1


def change_form(session: Session, **overrides) -> dict:
    """The Session change form as the admin page posts it, with `overrides` typed in."""
    data = {"window_ms": session.window_ms, "language": session.language, "num_speakers": "", "_save": "Save"}
    if session.elcor:
        data["elcor"] = "on"
    return {**data, **overrides}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("window_ms", 0),
        ("window_ms", 50),
        ("window_ms", 150),
        ("window_ms", 3100),
        ("language", "x"),
        ("language", "en_US"),
        ("num_speakers", 0),
        ("num_speakers", 17),
    ],
)
def test_change_form_refuses_the_options_the_api_refuses(staff_client, make_session, field, value):
    session, _ = make_session(window_ms=500)

    response = staff_client.post(
        f"/admin/sessions_app/session/{session.id}/change/", change_form(session, **{field: value})
    )

    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == [field]
    session.refresh_from_db()
    assert (session.window_ms, session.language, session.num_speakers) == (500, "en", None)
    api = staff_client.post("/api/sessions", data=json.dumps({field: value}), content_type="application/json")
    assert (api.status_code, api.json()["error"]["code"]) == (422, "validation_error")


def test_change_form_saves_a_valid_change(staff_client, make_session):
    session, _ = make_session(window_ms=500)

    response = staff_client.post(
        f"/admin/sessions_app/session/{session.id}/change/",
        change_form(session, elcor="on", window_ms=1200, language="pt-BR", num_speakers=3),
    )

    assert response.status_code == 302
    session.refresh_from_db()
    assert (session.elcor, session.window_ms, session.language, session.num_speakers) == (True, 1200, "pt-BR", 3)


def test_share_feedback_is_listed_filtered_and_read_only(staff_client, make_session):
    shared, _ = make_session(share_feedback=True)
    private, _ = make_session()

    listed = staff_client.get("/admin/sessions_app/session/?share_feedback__exact=1")
    staff_client.post(f"/admin/sessions_app/session/{private.id}/change/", change_form(private, share_feedback="on"))

    assert listed.status_code == 200
    assert "share feedback" in listed.content.decode().lower()
    assert [session.id for session in listed.context["cl"].result_list] == [shared.id]
    private.refresh_from_db()
    assert private.share_feedback is False
