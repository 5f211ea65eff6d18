"""The staff console: the admin's Linnet branding, the live dashboard page and the socket that feeds it.

The page is a plain admin view; its numbers arrive over `/ws/admin/live`, a snapshot on
connect and then every SNAPSHOT_INTERVAL_S, read by `selectors_console.console_snapshot`.
"""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async
from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse

from sessions_app import errors, selectors_console
from sessions_app.sockets import (
    CLOSE_FORBIDDEN,
    CLOSE_INTERNAL_ERROR,
    CLOSE_MALFORMED,
    CLOSE_UNAUTHORIZED,
    LinnetSocketConsumer,
)

logger = logging.getLogger(__name__)

SITE_NAME = "Linnet console"
LIVE_SOCKET_PATH = "/ws/admin/live"
# The contract asks for a snapshot at least every 2 s; this leaves room for the read itself.
SNAPSHOT_INTERVAL_S = 1.5

_console_snapshot = database_sync_to_async(selectors_console.console_snapshot)


def admin_site_brand(*, site: admin.AdminSite) -> None:
    site.site_header = SITE_NAME
    site.site_title = SITE_NAME
    site.index_title = "Sessions, runs and processes"
    site.site_url = "/"


def live_dashboard(request: HttpRequest) -> TemplateResponse:
    """The live dashboard page; wrap it in `admin.site.admin_view` for the admin's login and staff check."""
    context = {
        **admin.site.each_context(request),
        "title": "Live dashboard",
        "socket_path": LIVE_SOCKET_PATH,
        "snapshot_interval_s": SNAPSHOT_INTERVAL_S,
    }
    return TemplateResponse(request, "admin/linnet_live.html", context)


class LiveConsoleConsumer(LinnetSocketConsumer):
    """`/ws/admin/live`: staff only (anonymous 4401, others 4403); pushes snapshots until closed."""

    endpoint = "console"

    async def connect(self) -> None:
        self.pushing: asyncio.Task | None = None
        if not await self.accept_from_allowed_origin():
            return
        user = self.browser_user()
        if user is None or not user.is_authenticated:
            await self.close_with_error(CLOSE_UNAUTHORIZED, errors.UNAUTHORIZED, errors.STAFF_LOGIN_REQUIRED)
            return
        # The admin's own test (AdminSite.has_permission), so whoever may open the page may watch it.
        if not (user.is_active and user.is_staff):
            await self.close_with_error(CLOSE_FORBIDDEN, errors.FORBIDDEN)
            return
        self.pushing = asyncio.get_running_loop().create_task(self.push_snapshots())

    async def push_snapshots(self) -> None:
        try:
            while not self.closing:
                interval_s = SNAPSHOT_INTERVAL_S
                snapshot = await _console_snapshot(
                    sampler=selectors_console.CONSOLE_SAMPLER, reuse_within_s=interval_s / 2
                )
                await self.send_json(snapshot)
                await asyncio.sleep(interval_s)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The dashboard reconnects with backoff; better than a socket that silently goes stale.
            logger.exception("live console snapshot failed")
            await self.close_with_error(CLOSE_INTERNAL_ERROR, errors.INTERNAL_ERROR)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.close_with_error(
            CLOSE_MALFORMED, errors.MALFORMED_MESSAGE, "The live console sends snapshots and takes no messages."
        )

    async def disconnect(self, code: int) -> None:
        if self.pushing is not None and not self.pushing.done():
            self.pushing.cancel()
