"""ASGI entry point: Django for HTTP (API, SSE, pages, admin), Channels for WebSockets."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "linnet_site.settings")

from django.core.asgi import get_asgi_application

# Static files are served by ServeStaticMiddleware inside Django, so daphne needs nothing
# in front of it.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from sessions_app.routing import websocket_urlpatterns as session_sockets  # noqa: E402
from voice_app.routing import websocket_urlpatterns as voice_sockets  # noqa: E402

# Origins are checked inside each consumer, after accept, so a refused client sees 4403.
application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AuthMiddlewareStack(URLRouter([*session_sockets, *voice_sockets])),
    }
)
