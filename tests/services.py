"""Whether PostgreSQL and Redis are there; no Django import, so `tests.scaleout` can use it."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

REQUIRE_SERVICES = os.environ.get("LINNET_REQUIRE_SERVICES") == "1"


def service_reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False
