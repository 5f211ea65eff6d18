from django.apps import AppConfig


class VoiceAppConfig(AppConfig):
    name = "voice_app"
    verbose_name = "Voice"

    def ready(self) -> None:
        from voice_app.plugins import plug_in

        plug_in()
