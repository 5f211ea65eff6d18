from dataclasses import fields

import pytest
from django.core.exceptions import ImproperlyConfigured

from linnet_site import settings as site_settings
from linnet_site.config import LinnetConfig, load_config

AGENT_KNOBS = [field.name for field in fields(LinnetConfig) if field.name.startswith("agent_")]


def test_defaults_work_on_a_fresh_machine():
    config = load_config({})

    assert config.debug is True
    assert config.redis_url is None
    assert config.database["ENGINE"].endswith("sqlite3")
    assert (config.session_idle_ttl_s, config.session_reap_interval_s) == (90, 45)
    assert (config.session_gc_after_s, config.session_gc_interval_s, config.run_evict_grace_s) == (3600, 300, 180)
    assert (config.voice_sample_rate, config.voice_window_ms, config.voice_confidence_threshold) == (16000, 1000, 0.10)
    assert (config.audio_idle_timeout_s, config.audio_max_frame_bytes) == (30.0, 65536)
    assert config.linnet_agent == "notes"
    assert config.presence_lease_ttl_s == 30


def test_agent_knobs_have_their_documented_defaults():
    config = load_config({})

    assert {knob: getattr(config, knob) for knob in AGENT_KNOBS} == {
        "agent_drain_concurrency": 8,
        "agent_claim_interval_s": 1.0,
        "agent_run_lease_ttl_s": 20.0,
        "agent_run_poll_s": 0.25,
        "agent_delta_flush_max": 64,
        "agent_expire_interval_s": 5.0,
        "agent_compact_interval_s": 30.0,
        "agent_shutdown_grace_s": 5.0,
        "agent_context_max_events": 10_000,
        "agent_notes_pace_s": 0.12,
        "agent_openai_timeout_s": 60.0,
    }


def test_reap_interval_follows_ttl_with_a_floor():
    assert load_config({"SESSION_IDLE_TTL_S": "20"}).session_reap_interval_s == 15
    assert load_config({"SESSION_IDLE_TTL_S": "600"}).session_reap_interval_s == 300


def test_production_refuses_to_start_without_secret_key():
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY"):
        load_config({"DEBUG": "0"})
    assert load_config({"DEBUG": "0", "SECRET_KEY": "s" * 50, "ALLOWED_HOSTS": "example.com"}).debug is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SESSION_IDLE_TTL_S", "soon"),
        ("SESSION_IDLE_TTL_S", "0"),
        ("SESSION_GC_AFTER_S", "-5"),
        ("PRESENCE_LEASE_TTL_S", "1"),
        ("VOICE_WINDOW_MS", "150"),
        ("VOICE_WINDOW_MS", "5000"),
        ("VOICE_SAMPLE_RATE", "44"),
        ("VOICE_CONFIDENCE_THRESHOLD", "2"),
        ("AUDIO_MAX_FRAME_BYTES", "big"),
        ("LINNET_AGENT", "oracle"),
        ("REDIS_URL", "http://localhost:6379"),
        ("CF_VOICE_URL", "localhost:9000"),
        ("DATABASE_URL", "nosuchdb://x"),
        ("CSRF_TRUSTED_ORIGINS", "example.com"),
        ("AGENT_DRAIN_CONCURRENCY", "0"),
        ("AGENT_DRAIN_CONCURRENCY", "2.5"),
        ("AGENT_CLAIM_INTERVAL_S", "0"),
        ("AGENT_RUN_LEASE_TTL_S", "soon"),
        ("AGENT_RUN_POLL_S", "-1"),
        ("AGENT_DELTA_FLUSH_MAX", "0"),
        ("AGENT_EXPIRE_INTERVAL_S", "0"),
        ("AGENT_COMPACT_INTERVAL_S", "never"),
        ("AGENT_SHUTDOWN_GRACE_S", "-1"),
        ("AGENT_CONTEXT_MAX_EVENTS", "0"),
        ("AGENT_NOTES_PACE_S", "-0.1"),
        ("AGENT_OPENAI_TIMEOUT_S", "0"),
    ],
)
def test_bad_value_fails_fast_naming_the_variable(name, value):
    with pytest.raises(ImproperlyConfigured, match=name):
        load_config({name: value})


def test_service_urls_and_agent_settings_are_read():
    config = load_config(
        {
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "DATABASE_URL": "postgres://u@127.0.0.1:5432/linnet",
            "CF_VOICE_URL": "http://127.0.0.1:9000/",
            "OPENAI_BASE_URL": "http://127.0.0.1:8080/v1",
            "OPENAI_MODEL": "tiny",
        }
    )
    assert config.redis_url == "redis://127.0.0.1:6379/0"
    assert config.database["ENGINE"].endswith("postgresql")
    assert config.cf_voice_url == "http://127.0.0.1:9000"
    assert (config.openai_base_url, config.openai_model, config.openai_api_key) == (
        "http://127.0.0.1:8080/v1",
        "tiny",
        None,
    )


def test_agent_knobs_are_read_typed_and_may_be_zero_where_that_means_no_wait():
    config = load_config(
        {
            "AGENT_DRAIN_CONCURRENCY": "3",
            "AGENT_RUN_LEASE_TTL_S": "7.5",
            "AGENT_SHUTDOWN_GRACE_S": "0",
            "AGENT_NOTES_PACE_S": "0",
        }
    )

    assert config.agent_drain_concurrency == 3 and isinstance(config.agent_drain_concurrency, int)
    assert config.agent_run_lease_ttl_s == 7.5
    assert (config.agent_shutdown_grace_s, config.agent_notes_pace_s) == (0, 0)


def test_every_agent_knob_is_a_django_setting_of_the_same_name():
    for knob in AGENT_KNOBS:
        assert getattr(site_settings, knob.upper()) == getattr(site_settings.CONFIG, knob), knob
