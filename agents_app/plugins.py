"""What agent runs plug into the core (imported from `AgentsAppConfig.ready()`): their worker
loops, the hold a run in flight keeps on its session, the run gauges, the conversation in
the export, and what runs do on the session signals."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Q

from agents_app import receivers
from agents_app.models import IN_FLIGHT_RUN_STATUSES, Run
from agents_app.selectors import messages_json
from agents_app.worker import agent_loops
from sessions_app import plugins
from sessions_app.models import Session
from sessions_app.signals import session_ended, session_input_received


def run_counts_by_status(now: datetime) -> dict[str, int]:
    return dict(Run.objects.values_list("status").annotate(n=Count("id")).order_by())


def runs_in_flight(now: datetime) -> int:
    return Run.objects.filter(status__in=IN_FLIGHT_RUN_STATUSES).count()


def plug_in() -> None:
    plugins.worker_loops_register(agent_loops)
    plugins.keep_alive_register(
        plugins.KeepAlive(
            name="run in flight",
            rows=Run.objects.all,
            busy=lambda now: Q(status__in=IN_FLIGHT_RUN_STATUSES),
            ended_field="ended_at",
        )
    )
    plugins.gauge_register(
        plugins.Gauge("runs_by_status", "linnet_runs", "Agent runs by status.", run_counts_by_status, label="status")
    )
    plugins.gauge_register(
        plugins.Gauge("runs_in_flight", "linnet_runs_in_flight", "Runs queued, running or waiting.", runs_in_flight)
    )
    plugins.export_section_register("messages", lambda session: messages_json(session=session))
    session_ended.connect(
        receivers.stop_runs_of_ended_session, sender=Session, dispatch_uid="agents_app.stop_runs_of_ended_session"
    )
    session_input_received.connect(
        receivers.deliver_input_to_run, sender=Session, dispatch_uid="agents_app.deliver_input_to_run"
    )
