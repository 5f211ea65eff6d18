from django.urls import path

from sessions_app.consumers import EventsConsumer

websocket_urlpatterns = [
    path("ws/sessions/<str:session_id>/events", EventsConsumer.as_asgi()),
]
