import json
from unittest import mock

import pytest
from django.db import transaction

from sessions_app.models import Event
from sessions_app.services import events as events_service
from sessions_app.services.events import events_append, events_append_one


@pytest.mark.django_db(transaction=True)
def test_seq_is_strictly_increasing_per_session(make_session):
    first, _ = make_session()
    second, _ = make_session()
    for i in range(5):
        events_append_one(session_id=first.id, type="tone", data={"i": i})
    events_append(session_id=second.id, items=[("tone", {"i": 0}), ("tone", {"i": 1})])

    assert list(Event.objects.filter(session=first).values_list("seq", flat=True)) == [1, 2, 3, 4, 5, 6]
    assert list(Event.objects.filter(session=second).values_list("seq", flat=True)) == [1, 2, 3]
    first.refresh_from_db()
    assert first.last_seq == 6


@pytest.mark.django_db(transaction=True)
def test_events_are_published_only_after_commit(make_session):
    session, _ = make_session()
    with mock.patch.object(events_service, "events_publish") as publish:
        with transaction.atomic():
            events_append_one(session_id=session.id, type="tone", data={})
            assert publish.call_count == 0
        assert publish.call_count == 1
        assert publish.call_args.kwargs["envelopes"][0]["seq"] == 2


@pytest.mark.django_db(transaction=True)
def test_rolled_back_events_are_never_published(make_session):
    session, _ = make_session()
    with mock.patch.object(events_service, "events_publish") as publish:
        with pytest.raises(RuntimeError), transaction.atomic():
            events_append_one(session_id=session.id, type="tone", data={})
            raise RuntimeError("boom")
    assert publish.call_count == 0
    assert Event.objects.filter(session=session).count() == 1
    session.refresh_from_db()
    assert session.last_seq == 1


@pytest.mark.django_db
def test_encoded_replay_rows_parse_to_the_same_envelopes(make_session):
    from sessions_app.selectors import events_after, events_after_encoded

    session, _ = make_session()
    events_append(
        session_id=session.id,
        items=[("tone", {"label": "calm", "subtext": 'Sounds "calm" — é', "flags": [1, 2.5, None]}), ("queue", {})],
    )

    encoded = events_after_encoded(session_id=session.id)
    assert [json.loads(event.text) for event in encoded] == events_after(session_id=session.id)
    assert [(event.seq, event.type) for event in encoded] == [(1, "session.state"), (2, "tone"), (3, "queue")]
