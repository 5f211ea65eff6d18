from django.apps import AppConfig


class VoiceAppConfig(AppConfig):
    name = "voice_app"
    verbose_name = "Voice"
