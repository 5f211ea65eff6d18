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


def test_filters_and_event_and_worker_lists_render(staff_client, make_session):
    make_session()
    assert staff_client.get("/admin/sessions_app/session/?live=live").status_code == 200
    assert staff_client.get("/admin/sessions_app/event/?type=session.state").status_code == 200
    assert staff_client.get("/admin/sessions_app/worker/").status_code == 200
    assert Session.objects.count() == 1
