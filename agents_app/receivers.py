"""What runs do when their session ends or gets the input a run asked for."""

from __future__ import annotations

from agents_app import services
from sessions_app.models import Session


def stop_runs_of_ended_session(sender: type[Session], *, session: Session, **kwargs) -> None:
    # Sent before `session.ended` is logged: the runs' `run.done` must come first.
    services.runs_stop_for_session(session=session)


def deliver_input_to_run(sender: type[Session], *, session: Session, request: dict, input: dict, **kwargs) -> None:
    services.run_input_deliver(session=session, request=request, input=input)
