"""Every Linnet setting, read once from the environment (and `.env`), typed and checked.

Each setting is documented here and in docs/configuration.md; a bad value stops start-up with
an ImproperlyConfigured error that names the variable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

DEV_SECRET_KEY = "linnet-dev-only-not-secret"  # noqa: S105 - used only when DEBUG is on


@dataclass(frozen=True)
class LinnetConfig:
    debug: bool
    secret_key: str
    allowed_hosts: list[str]
    csrf_trusted_origins: list[str]
    database: dict[str, Any]
    redis_url: str | None
    session_idle_ttl_s: int
    session_reap_interval_s: int
    session_gc_after_s: int
    session_gc_interval_s: int
    run_evict_grace_s: int
    presence_lease_ttl_s: int
    voice_sample_rate: int
    voice_window_ms: int
    voice_confidence_threshold: float
    audio_idle_timeout_s: float
    audio_max_frame_bytes: int
    cf_voice_url: str | None
    cf_orch_url: str | None
    linnet_agent: str
    openai_base_url: str | None
    openai_api_key: str | None
    openai_model: str | None
    # Agent runs: tuning an operator rarely needs to touch.
    # How many runs one worker process drains at once.
    agent_drain_concurrency: int
    # How often a worker looks for queued runs; a queued-run layer message wakes it sooner.
    agent_claim_interval_s: float
    # A draining run whose lease is not renewed for this long is ended `interrupted`.
    agent_run_lease_ttl_s: float
    # How often a drain reads its run row for a stop or an input answer it was not told about.
    agent_run_poll_s: float
    # The most items one drain write carries; an agent this far ahead of the writer waits.
    agent_delta_flush_max: int
    # How often the worker ends runs whose lease lapsed, and compacts finished runs.
    agent_expire_interval_s: float
    agent_compact_interval_s: float
    # On SIGTERM, how long drains get to save their partial before they are cut off.
    agent_shutdown_grace_s: float
    # The most session-log events a run reads at its start (the latest, of the types its agent reads).
    agent_context_max_events: int
    # The `notes` agent's pause between lines, so its notes read as they are written.
    agent_notes_pace_s: float
    # The `openai` agent's limit for connecting and for each wait on the upstream stream.
    agent_openai_timeout_s: float


def _read(env: environ.Env, name: str, cast: Any, default: Any) -> Any:
    try:
        return cast(name, default=default)
    except (ValueError, TypeError, ImproperlyConfigured) as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from exc


def _check(name: str, value: Any, ok: bool, expected: str) -> Any:
    if not ok:
        raise ImproperlyConfigured(f"{name}={value!r} is invalid: expected {expected}")
    return value


def _url_or_none(env: environ.Env, name: str) -> str | None:
    value = _read(env, name, env.str, "").strip()
    if not value:
        return None
    _check(name, value, value.startswith(("http://", "https://")), "an http(s):// URL")
    return value.rstrip("/")


def _count(env: environ.Env, name: str, default: int) -> int:
    value = _read(env, name, env.int, default)
    return _check(name, value, value >= 1, "a whole number >= 1")


def _seconds(env: environ.Env, name: str, default: float, *, zero_ok: bool = False) -> float:
    value = _read(env, name, env.float, default)
    return _check(name, value, value >= 0 if zero_ok else value > 0, "seconds >= 0" if zero_ok else "seconds > 0")


def load_config(environ_map: dict[str, str] | None = None, *, read_env_file: bool = True) -> LinnetConfig:
    """Read and validate every setting; `environ_map` replaces os.environ in tests."""
    if environ_map is None:
        if read_env_file and (BASE_DIR / ".env").is_file():
            environ.Env.read_env(BASE_DIR / ".env")
        env = environ.Env()
    else:
        env = environ.Env()
        env.ENVIRON = dict(environ_map)

    debug = _read(env, "DEBUG", env.bool, True)
    secret_key = _read(env, "SECRET_KEY", env.str, "")
    if not secret_key:
        if not debug:
            raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG=0")
        secret_key = DEV_SECRET_KEY

    default_hosts = ["localhost", "127.0.0.1", "[::1]", "testserver"] if debug else []
    allowed_hosts = _read(env, "ALLOWED_HOSTS", env.list, default_hosts)
    csrf_trusted_origins = _read(env, "CSRF_TRUSTED_ORIGINS", env.list, [])
    for origin in csrf_trusted_origins:
        _check("CSRF_TRUSTED_ORIGINS", origin, "://" in origin, "origins like https://example.com")

    database_url = _read(env, "DATABASE_URL", env.str, f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
    scheme = database_url.split("://", 1)[0]
    _check("DATABASE_URL", database_url, scheme in environ.Env.DB_SCHEMES, "a database URL such as postgres://...")
    database = environ.Env.db_url_config(database_url)
    if database["ENGINE"].endswith("sqlite3"):
        # IMMEDIATE makes concurrent writers queue on the lock instead of failing with
        # "database is locked" when a read transaction tries to upgrade.
        # WAL with synchronous=NORMAL: a commit is an append, not a sync of the whole file,
        # and readers (replays) no longer wait for writers (audio windows, deltas).
        database.setdefault("OPTIONS", {}).update(
            {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            }
        )
    redis_url = _read(env, "REDIS_URL", env.str, "").strip() or None
    if redis_url:
        _check("REDIS_URL", redis_url, redis_url.startswith(("redis://", "rediss://", "unix://")), "a redis:// URL")

    ttl = _read(env, "SESSION_IDLE_TTL_S", env.int, 90)
    _check("SESSION_IDLE_TTL_S", ttl, ttl >= 1, "a whole number of seconds >= 1")
    reap_interval = _read(env, "SESSION_REAP_INTERVAL_S", env.int, max(15, ttl // 2))
    _check("SESSION_REAP_INTERVAL_S", reap_interval, reap_interval >= 1, "seconds >= 1")
    gc_after = _read(env, "SESSION_GC_AFTER_S", env.int, 3600)
    _check("SESSION_GC_AFTER_S", gc_after, gc_after >= 1, "seconds >= 1")
    gc_interval = _read(env, "SESSION_GC_INTERVAL_S", env.int, 300)
    _check("SESSION_GC_INTERVAL_S", gc_interval, gc_interval >= 1, "seconds >= 1")
    evict_grace = _read(env, "RUN_EVICT_GRACE_S", env.int, 180)
    _check("RUN_EVICT_GRACE_S", evict_grace, evict_grace >= 0, "seconds >= 0")

    lease_ttl = _read(env, "PRESENCE_LEASE_TTL_S", env.int, 30)
    _check("PRESENCE_LEASE_TTL_S", lease_ttl, 3 <= lease_ttl <= 300, "3..300 seconds")

    sample_rate = _read(env, "VOICE_SAMPLE_RATE", env.int, 16000)
    _check("VOICE_SAMPLE_RATE", sample_rate, 8000 <= sample_rate <= 48000, "8000..48000 Hz")
    window_ms = _read(env, "VOICE_WINDOW_MS", env.int, 1000)
    _check(
        "VOICE_WINDOW_MS", window_ms, 100 <= window_ms <= 3000 and window_ms % 100 == 0, "100..3000, a multiple of 100"
    )
    threshold = _read(env, "VOICE_CONFIDENCE_THRESHOLD", env.float, 0.10)
    _check("VOICE_CONFIDENCE_THRESHOLD", threshold, 0.0 <= threshold <= 1.0, "0..1")
    audio_idle = _read(env, "AUDIO_IDLE_TIMEOUT_S", env.float, 30.0)
    _check("AUDIO_IDLE_TIMEOUT_S", audio_idle, audio_idle > 0, "seconds > 0")
    max_frame = _read(env, "AUDIO_MAX_FRAME_BYTES", env.int, 65536)
    _check("AUDIO_MAX_FRAME_BYTES", max_frame, max_frame >= 2, "bytes >= 2")

    agent = _read(env, "LINNET_AGENT", env.str, "notes")
    _check("LINNET_AGENT", agent, agent in ("notes", "openai"), "'notes' or 'openai'")

    return LinnetConfig(
        debug=debug,
        secret_key=secret_key,
        allowed_hosts=allowed_hosts,
        csrf_trusted_origins=csrf_trusted_origins,
        database=database,
        redis_url=redis_url,
        session_idle_ttl_s=ttl,
        session_reap_interval_s=reap_interval,
        session_gc_after_s=gc_after,
        session_gc_interval_s=gc_interval,
        run_evict_grace_s=evict_grace,
        presence_lease_ttl_s=lease_ttl,
        voice_sample_rate=sample_rate,
        voice_window_ms=window_ms,
        voice_confidence_threshold=threshold,
        audio_idle_timeout_s=audio_idle,
        audio_max_frame_bytes=max_frame,
        cf_voice_url=_url_or_none(env, "CF_VOICE_URL"),
        cf_orch_url=_url_or_none(env, "CF_ORCH_URL"),
        linnet_agent=agent,
        openai_base_url=_url_or_none(env, "OPENAI_BASE_URL"),
        openai_api_key=_read(env, "OPENAI_API_KEY", env.str, "") or None,
        openai_model=_read(env, "OPENAI_MODEL", env.str, "") or None,
        agent_drain_concurrency=_count(env, "AGENT_DRAIN_CONCURRENCY", 8),
        agent_claim_interval_s=_seconds(env, "AGENT_CLAIM_INTERVAL_S", 1.0),
        agent_run_lease_ttl_s=_seconds(env, "AGENT_RUN_LEASE_TTL_S", 20.0),
        agent_run_poll_s=_seconds(env, "AGENT_RUN_POLL_S", 0.25),
        agent_delta_flush_max=_count(env, "AGENT_DELTA_FLUSH_MAX", 64),
        agent_expire_interval_s=_seconds(env, "AGENT_EXPIRE_INTERVAL_S", 5.0),
        agent_compact_interval_s=_seconds(env, "AGENT_COMPACT_INTERVAL_S", 30.0),
        agent_shutdown_grace_s=_seconds(env, "AGENT_SHUTDOWN_GRACE_S", 5.0, zero_ok=True),
        agent_context_max_events=_count(env, "AGENT_CONTEXT_MAX_EVENTS", 10_000),
        agent_notes_pace_s=_seconds(env, "AGENT_NOTES_PACE_S", 0.12, zero_ok=True),
        agent_openai_timeout_s=_seconds(env, "AGENT_OPENAI_TIMEOUT_S", 60.0),
    )
