"""The core's plug-in points, filled by the other apps from their `AppConfig.ready()`.

sessions_app names no app above it. An app that needs the core to do something for it
registers it here, the way Django's admin collects ModelAdmins:

- worker loops (`linnet_worker` and `serve` run every registered loop);
- keep-alives: what holds a session with no subscriber alive (a run in flight, an
  attached audio stream), which the reaper and the admin's "idle for" both read;
- gauges: cluster-wide figures for `/metrics` and the live console;
- export sections: what `GET /api/sessions/{id}/export` carries besides the session and
  its events.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db.models import Q, QuerySet

if TYPE_CHECKING:
    from sessions_app.models import Session


@dataclass(frozen=True)
class Loop:
    """A worker loop: a pass run every `interval_s()` seconds until the worker stops."""

    name: str
    interval_s: Callable[[], float]
    run_once: Callable[[], Awaitable[int]]
    # Called once when the worker stops, after the loop's last pass (e.g. interrupt the runs it drains).
    on_shutdown: Callable[[], Awaitable[None]] | None = None
    # Called at once when the worker is asked to stop, before other loops finish their pass.
    on_stop_requested: Callable[[], None] | None = None


@dataclass(frozen=True)
class KeepAlive:
    """Rows of another app that keep their session from going idle.

    While a row of `rows()` with `session_id` = the session matches `busy(now)`, the session
    is not idle; once none does, its idle clock starts no earlier than the latest
    `ended_field` of those rows (a run's end, a stream's close).
    """

    name: str
    rows: Callable[[], QuerySet]
    busy: Callable[[datetime], Q]
    ended_field: str


@dataclass(frozen=True)
class Gauge:
    """A cluster-wide figure read from the database: `/metrics` and the live console show it.

    `read(now)` returns a number, or a mapping of `label` values to numbers.
    """

    key: str
    metric: str
    help: str
    read: Callable[[datetime], int | dict[str, int]]
    label: str | None = None


_worker_loops: list[Callable[[], list[Loop]]] = []
_keep_alives: dict[str, KeepAlive] = {}
_gauges: dict[str, Gauge] = {}
_export_sections: dict[str, Callable[[Session], Any]] = {}


def worker_loops_register(factory: Callable[[], list[Loop]]) -> None:
    """`factory()` makes the app's loops, once per worker that starts."""
    if factory not in _worker_loops:
        _worker_loops.append(factory)


def keep_alive_register(keep_alive: KeepAlive) -> None:
    _keep_alives[keep_alive.name] = keep_alive


def gauge_register(gauge: Gauge) -> None:
    _gauges[gauge.key] = gauge


def export_section_register(name: str, build: Callable[[Session], Any]) -> None:
    _export_sections[name] = build


def worker_loop_factories() -> list[Callable[[], list[Loop]]]:
    return list(_worker_loops)


def keep_alives() -> list[KeepAlive]:
    return list(_keep_alives.values())


def gauges() -> list[Gauge]:
    return list(_gauges.values())


def export_sections() -> dict[str, Callable[[Session], Any]]:
    return dict(_export_sections)
