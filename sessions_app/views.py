"""Operational endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sessions_app.gauges import DatabaseCollector
from sessions_app.metrics import REGISTRY

logger = logging.getLogger(__name__)

REGISTRY.register(DatabaseCollector())


def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


def _database_ok() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def readyz(request: HttpRequest) -> HttpResponse:
    """Ready when the database answers and a message makes a round trip through the layer."""
    checks: dict[str, str] = {}
    try:
        await database_sync_to_async(_database_ok)()
        checks["database"] = "ok"
    except Exception as exc:
        logger.warning("readiness: database check failed: %s", exc)
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "readyz.ping"})
        await asyncio.wait_for(layer.receive(channel), timeout=2)
        checks["channel_layer"] = "ok"
    except Exception as exc:
        logger.warning("readiness: channel layer check failed: %s", exc)
        checks["channel_layer"] = f"error: {exc.__class__.__name__}"
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ready" if ready else "not_ready", "checks": checks}, status=200 if ready else 503)


async def metrics_view(request: HttpRequest) -> HttpResponse:
    body = await database_sync_to_async(generate_latest)(REGISTRY)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
