"""Django settings for Linnet; every value comes from `linnet_site.config`."""

from linnet_site.config import BASE_DIR, load_config

CONFIG = load_config()

DEBUG = CONFIG.debug
SECRET_KEY = CONFIG.secret_key
ALLOWED_HOSTS = CONFIG.allowed_hosts
CSRF_TRUSTED_ORIGINS = CONFIG.csrf_trusted_origins

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "servestatic",
    "django.contrib.staticfiles",
    "channels",
    "sessions_app",
    "voice_app",
    "agents_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "servestatic.middleware.ServeStaticMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "linnet_site.urls"
ASGI_APPLICATION = "linnet_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Persistent connections: database_sync_to_async closes a connection after each call unless it
# may live on, so with the default every audio window and every delta opened a new one.
# Health checks replace a connection the server dropped before it is used again.
DATABASES = {"default": {**CONFIG.database, "CONN_MAX_AGE": None, "CONN_HEALTH_CHECKS": True}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if CONFIG.redis_url:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # A burst of tone and delta events must not overflow a subscriber's channel;
            # what a full channel still drops is healed from the log by seq gap reads.
            # redis-py caps a pool at 100 connections and fails past that instead of
            # waiting; a burst of subscribers joining or leaving at once needs more.
            "CONFIG": {
                "hosts": [{"address": CONFIG.redis_url, "max_connections": 1024}],
                "capacity": 1000,
                "expiry": 30,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# ServeStatic (WhiteNoise's ASGI-native successor) serves static files from the app itself,
# so the all-in-one server and every web process need nothing in front of them, and its
# middleware is async: SSE streams and async views never hop through a sync adapter.
# With DEBUG off, files come from `collectstatic` with hashed names (cached for a year) and
# gzip/Brotli copies made once; with DEBUG on, straight from the source folders.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "linnet_site.storage.StaticFilesStorage"
    },
}
# Decided here, from DEBUG as configured, not from DEBUG at the first request (the test
# runner turns it off): source files, looked up afresh so edits show; or the manifest.
SERVESTATIC_USE_FINDERS = DEBUG
SERVESTATIC_AUTOREFRESH = DEBUG
SERVESTATIC_USE_MANIFEST = not DEBUG

# Request bodies of the JSON API are small; anything larger is refused with 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    # Client errors are logged once, by the API's own handler; django.request keeps the 5xx.
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        "django.request": {"level": "ERROR"},
        # One line per sidecar request per audio window would drown everything else.
        "httpx": {"level": "WARNING"},
    },
}

SESSION_IDLE_TTL_S = CONFIG.session_idle_ttl_s
SESSION_REAP_INTERVAL_S = CONFIG.session_reap_interval_s
SESSION_GC_AFTER_S = CONFIG.session_gc_after_s
SESSION_GC_INTERVAL_S = CONFIG.session_gc_interval_s
RUN_EVICT_GRACE_S = CONFIG.run_evict_grace_s
VOICE_SAMPLE_RATE = CONFIG.voice_sample_rate
VOICE_WINDOW_MS = CONFIG.voice_window_ms
VOICE_CONFIDENCE_THRESHOLD = CONFIG.voice_confidence_threshold
AUDIO_IDLE_TIMEOUT_S = CONFIG.audio_idle_timeout_s
AUDIO_MAX_FRAME_BYTES = CONFIG.audio_max_frame_bytes
CF_VOICE_URL = CONFIG.cf_voice_url
CF_ORCH_URL = CONFIG.cf_orch_url
LINNET_AGENT = CONFIG.linnet_agent
OPENAI_BASE_URL = CONFIG.openai_base_url
OPENAI_API_KEY = CONFIG.openai_api_key
OPENAI_MODEL = CONFIG.openai_model

# Agent runs: how drains claim, write, poll and renew, and the built-in agents' pace and
# timeout. Read at use (settings.AGENT_...), so tests override them with `settings`.
AGENT_DRAIN_CONCURRENCY = CONFIG.agent_drain_concurrency
AGENT_CLAIM_INTERVAL_S = CONFIG.agent_claim_interval_s
AGENT_RUN_LEASE_TTL_S = CONFIG.agent_run_lease_ttl_s
AGENT_RUN_POLL_S = CONFIG.agent_run_poll_s
AGENT_DELTA_FLUSH_MAX = CONFIG.agent_delta_flush_max
AGENT_EXPIRE_INTERVAL_S = CONFIG.agent_expire_interval_s
AGENT_COMPACT_INTERVAL_S = CONFIG.agent_compact_interval_s
AGENT_SHUTDOWN_GRACE_S = CONFIG.agent_shutdown_grace_s
AGENT_CONTEXT_MAX_EVENTS = CONFIG.agent_context_max_events
AGENT_NOTES_PACE_S = CONFIG.agent_notes_pace_s
AGENT_OPENAI_TIMEOUT_S = CONFIG.agent_openai_timeout_s

# Presence: a lease not renewed for PRESENCE_LEASE_TTL_S is expired and its subscriptions
# stop counting; each process renews three times per TTL, and the sweep runs as often.
PRESENCE_LEASE_TTL_S = CONFIG.presence_lease_ttl_s
PRESENCE_LEASE_RENEW_S = PRESENCE_LEASE_TTL_S / 3
PRESENCE_SWEEP_INTERVAL_S = PRESENCE_LEASE_TTL_S / 3
# A subscriber with more undelivered events than this is closed with 4429.
EVENTS_SUBSCRIBER_MAX_PENDING = 2000
SSE_PING_INTERVAL_S = 15
