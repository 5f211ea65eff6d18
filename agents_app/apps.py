from django.apps import AppConfig


class AgentsAppConfig(AppConfig):
    name = "agents_app"
    verbose_name = "Agent runs"

    def ready(self) -> None:
        from agents_app.plugins import plug_in

        plug_in()
