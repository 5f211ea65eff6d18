"""The bench's own world: a temporary SQLite database, the environment every process gets, the machine.

Every process of a run (this one and the servers it starts) shares one temporary SQLite
file with `DEBUG=0`, so Django keeps no query log that would inflate memory and time.
"""

from __future__ import annotations

import os
import platform
import secrets
import shutil
import socket
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
# Database 14 of the local Redis is the bench's; the tests use 15.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
# channels-redis names every key it writes with this prefix (its default).
LAYER_KEY_PREFIX = "asgi"


@dataclass
class BenchContext:
    """What every benchmark module gets: size flags, the shared environment and a note pad."""

    quick: bool
    workdir: Path
    env: dict[str, str]
    redis_url: str | None
    notes: list[str] = field(default_factory=list)

    def server_env(self, *, redis_url: str | None = None) -> dict[str, str]:
        """The environment of a bench server: this run's database, and Redis only when asked."""
        return {**self.env, "REDIS_URL": redis_url or ""}

    def note(self, text: str) -> None:
        print(f"  note: {text}", flush=True)
        self.notes.append(text)


def redis_reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=1):
            return True
    except OSError:
        return False


def prepare(*, quick: bool, with_redis: bool) -> BenchContext:
    """Make the temporary database, point Django at it, migrate, and return the context.

    Must run before anything imports Django models: the settings are read once, here.
    """
    workdir = Path(tempfile.mkdtemp(prefix="linnet-bench-"))
    env = {
        "DJANGO_SETTINGS_MODULE": "linnet_site.settings",
        "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
        "REDIS_URL": "",
        "DEBUG": "0",
        # A throwaway key for this run's processes only; nothing it signs outlives the run.
        "SECRET_KEY": secrets.token_urlsafe(32),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update(env)
    redis_url = os.environ.get("LINNET_BENCH_REDIS_URL", DEFAULT_REDIS_URL)

    import django
    from django.core.management import call_command

    try:
        django.setup()
        call_command("migrate", verbosity=0, interactive=False)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return BenchContext(
        quick=quick,
        workdir=workdir,
        env=env,
        redis_url=redis_url if with_redis and redis_reachable(redis_url) else None,
    )


def redis_clear(url: str) -> None:
    """Drop what the channel layer left in the bench's Redis database (groups live for a day)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(f"{LAYER_KEY_PREFIX}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def redis_version(url: str) -> str:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return str(client.info("server").get("redis_version", "?"))
    finally:
        client.close()


def machine(ctx: BenchContext) -> dict[str, str]:
    """What the numbers were measured on; the load average says how noisy the machine was."""
    from django.db import connection

    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "nproc": str(cpus),
        "cpu": _cpu_model(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(terse=True),
        "database": _database(connection),
        "postgres": "not used (the bench runs on a temporary SQLite database)",
        "redis": f"{redis_version(ctx.redis_url)} at {ctx.redis_url}" if ctx.redis_url else "not reachable; skipped",
        "load average": load,
    }


def _database(connection) -> str:
    if connection.vendor != "sqlite":
        return connection.vendor
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        journal = cursor.fetchone()[0]
    return f"SQLite {sqlite3.sqlite_version}, temporary file, journal_mode={journal}"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
