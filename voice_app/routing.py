from django.urls import path

from voice_app.consumers import AudioConsumer

websocket_urlpatterns = [
    path("ws/sessions/<str:session_id>/audio", AudioConsumer.as_asgi()),
]
