"""The browser pages: the live voice client at `/` and a session reopened from its log.

Both are thin shells; the page's modules read and steer the session through the public
API and WebSockets, with the session's token (kept in sessionStorage or the URL fragment)
or the visitor's login.
"""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_safe
from django.views.generic.base import RedirectView

from sessions_app import selectors
from sessions_app.errors import LinnetError
from voice_app.annotation import TONE_LABELS

WINDOW_CHOICES_MS = (500, 1000, 1500, 2000, 3000)


def _client_config() -> dict:
    """What the page's modules need to know about this server, rendered with json_script."""
    return {
        "sampleRate": settings.VOICE_SAMPLE_RATE,
        "toneLabels": [{"name": name, "reading": tone.reading} for name, tone in TONE_LABELS.items()],
    }


@require_safe
@ensure_csrf_cookie
def live_client(request: HttpRequest) -> HttpResponse:
    windows = sorted({*WINDOW_CHOICES_MS, settings.VOICE_WINDOW_MS})
    return render(
        request,
        "linnet/live.html",
        {"config": _client_config(), "windows": windows, "default_window": settings.VOICE_WINDOW_MS},
    )


@require_safe
@ensure_csrf_cookie
def session_page(request: HttpRequest, session_id: str) -> HttpResponse:
    # Only existence is checked here: the token lives in the fragment or sessionStorage, which
    # the server never sees, so the page's own API calls are where access is decided.
    try:
        session = selectors.session_get(session_id=session_id)
    except LinnetError:
        raise Http404("No such session.") from None
    config = {
        **_client_config(),
        "loginAccess": selectors.session_may_access(session=session, token=None, user=request.user),
    }
    return render(request, "linnet/session.html", {"config": config, "session_id": str(session.id)})


class FaviconRedirect(RedirectView):
    """Browsers ask for /favicon.ico on pages that name no icon (the API's JSON, error pages)."""

    permanent = True

    def get_redirect_url(self, *args, **kwargs) -> str:
        # Resolved per request: the hashed name exists only once collectstatic has run.
        return static("linnet/favicon.svg")
