from django.apps import AppConfig


class AgentsAppConfig(AppConfig):
    name = "agents_app"
    verbose_name = "Agent runs"

    def ready(self) -> None:
        from agents_app import receivers
        from sessions_app.models import Session
        from sessions_app.signals import session_ended, session_input_received

        session_ended.connect(
            receivers.stop_runs_of_ended_session, sender=Session, dispatch_uid="agents_app.stop_runs_of_ended_session"
        )
        session_input_received.connect(
            receivers.deliver_input_to_run, sender=Session, dispatch_uid="agents_app.deliver_input_to_run"
        )
