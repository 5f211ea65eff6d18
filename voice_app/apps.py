from django.apps import AppConfig


class VoiceAppConfig(AppConfig):
    name = "voice_app"
    verbose_name = "Voice"

    def ready(self) -> None:
        from voice_app import receivers  # noqa: F401 - connects the signal receivers
