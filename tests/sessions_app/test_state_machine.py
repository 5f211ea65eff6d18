import itertools

import pytest

from sessions_app.errors import IllegalTransition
from sessions_app.models import STATE_EFFECTS, TRANSITIONS, Event, Session, SessionState
from sessions_app.services.sessions import session_transition

ALL_STATES = [state.value for state in SessionState]
LEGAL = sorted((src, dst) for src, targets in TRANSITIONS.items() for dst in targets)
ILLEGAL = sorted((src, dst) for src, dst in itertools.product(ALL_STATES, ALL_STATES) if dst not in TRANSITIONS[src])


def _session_in(make_session, state: str) -> Session:
    session, _ = make_session()
    Session.objects.filter(pk=session.pk).update(state=state)
    session.refresh_from_db()
    return session


@pytest.mark.django_db
@pytest.mark.parametrize(("src", "dst"), LEGAL)
def test_legal_edge_moves_state_and_logs_it(make_session, src, dst):
    session = _session_in(make_session, src)
    before = session.last_seq

    after = session_transition(session=session, to=dst, pending_input={"run_id": None, "fields": [], "reason": "x"})

    assert after.state == dst
    assert (after.phase, after.next_action) == STATE_EFFECTS[dst]
    logged = list(Event.objects.filter(session=session, seq__gt=before).order_by("seq"))
    assert logged[0].type == "session.state"
    assert logged[0].data == {"state": dst, "phase": STATE_EFFECTS[dst][0], "next_action": STATE_EFFECTS[dst][1]}
    if dst in (SessionState.DONE, SessionState.FAILED, SessionState.ABORTED):
        assert [e.type for e in logged] == ["session.state", "session.ended"]
        assert after.ended_at is not None
    else:
        assert len(logged) == 1
    assert after.pending_input == ({"run_id": None, "fields": [], "reason": "x"} if dst == "input_required" else None)


@pytest.mark.django_db
@pytest.mark.parametrize(("src", "dst"), ILLEGAL)
def test_illegal_edge_raises_and_changes_nothing(make_session, src, dst):
    session = _session_in(make_session, src)
    before_seq = session.last_seq

    with pytest.raises(IllegalTransition):
        session_transition(session=session, to=dst)

    session.refresh_from_db()
    assert session.state == src
    assert session.last_seq == before_seq
    assert Event.objects.filter(session=session).count() == 1


# The contract's state machine, written out by hand so that a change to the table is seen.
CONTRACT_EDGES = {
    ("pending", "running"),
    ("pending", "failed"),
    ("pending", "aborted"),
    ("running", "input_required"),
    ("running", "done"),
    ("running", "failed"),
    ("running", "aborted"),
    ("input_required", "running"),
    ("input_required", "done"),
    ("input_required", "failed"),
    ("input_required", "aborted"),
}


def test_the_table_is_the_contracts_state_machine():
    assert set(LEGAL) == CONTRACT_EDGES
    assert TRANSITIONS["done"] == TRANSITIONS["failed"] == TRANSITIONS["aborted"] == frozenset()
