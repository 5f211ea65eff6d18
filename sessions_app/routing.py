from django.urls import path

from sessions_app.console import LiveConsoleConsumer
from sessions_app.consumers import EventsConsumer

websocket_urlpatterns = [
    path("ws/sessions/<str:session_id>/events", EventsConsumer.as_asgi()),
    path("ws/admin/live", LiveConsoleConsumer.as_asgi()),
]
