"""The session API through Django's test client: open a session, authorise as its holder."""

from __future__ import annotations

import json

from django.test import Client


def bearer(token: str) -> dict:
    """Test-client headers that carry a session's token."""
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def create(client: Client, **body) -> dict:
    """POST /api/sessions with `body`; the 201 response's JSON (token and urls included)."""
    response = client.post("/api/sessions", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()
