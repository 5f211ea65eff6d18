"""Whether PostgreSQL and Redis are there; no Django import, so `tests.scaleout` can use it."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

REQUIRE_SERVICES = os.environ.get("LINNET_REQUIRE_SERVICES") == "1"


def service_reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, url: str | None, default_port: int) -> str:
    """Skip a test whose service is missing, or fail when LINNET_REQUIRE_SERVICES=1."""
    if url and service_reachable(url, default_port):
        return url
    reason = f"{name} not reachable at {url or '(unset)'}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason}, and LINNET_REQUIRE_SERVICES=1")
    pytest.skip(reason)
