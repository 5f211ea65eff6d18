"""What runs do when their session ends or gets the input a run asked for."""

from __future__ import annotations

from agents_app import services
from sessions_app.models import Session


def stop_runs_of_ended_session(sender: type[Session], *, session: Session, **kwargs) -> None:
    # The drain saves the partial and ends the run `stopped`; a queued run ends right here.
    services.runs_stop_for_session(session=session)


def deliver_input_to_run(sender: type[Session], *, session: Session, request: dict, input: dict, **kwargs) -> None:
    services.run_input_deliver(session=session, request=request, input=input)
