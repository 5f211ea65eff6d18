"""Prometheus metrics: per-process counters here, cluster-wide gauges read from the database."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily

from sessions_app import plugins

# `*_created` series only add noise for counters that live as long as the process.
disable_created_metrics()

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS_PUBLISHED = Counter(
    "linnet_events_published_total", "Events committed and fanned out, by type.", ["type"], registry=REGISTRY
)
SESSIONS_OPENED = Counter("linnet_sessions_opened_total", "Sessions created.", ["kind"], registry=REGISTRY)
SESSIONS_ENDED = Counter(
    "linnet_sessions_ended_total", "Sessions ended, by final state and reason.", ["state", "code"], registry=REGISTRY
)
SOCKETS_OPEN = Gauge(
    "linnet_sockets_open", "Open sockets in this process, by endpoint.", ["endpoint"], registry=REGISTRY
)
SOCKETS_CLOSED = Counter(
    "linnet_sockets_closed_total",
    "Sockets closed, by endpoint and close code.",
    ["endpoint", "code"],
    registry=REGISTRY,
)
LOOP_PASS_SECONDS = Histogram(
    "linnet_loop_pass_seconds", "Time one worker-loop pass took.", ["loop"], registry=REGISTRY
)


def events_published(envelopes: Iterable[dict]) -> None:
    for envelope in envelopes:
        EVENTS_PUBLISHED.labels(envelope["type"]).inc()


class DatabaseCollector:
    """Gauges that must agree across processes, so they are read from the database at scrape."""

    def describe(self):
        # Registering must not query: the tables may not exist yet (migrate, check).
        return []

    def collect(self):
        from sessions_app import selectors

        by_state = GaugeMetricFamily("linnet_sessions", "Sessions by state.", labels=["state"])
        for state, count in selectors.session_counts_by_state().items():
            by_state.add_metric([state], count)
        yield by_state
        yield GaugeMetricFamily(
            "linnet_subscribers_live", "Live event-stream subscriptions.", value=selectors.live_subscription_count()
        )
        values = selectors.gauges_read()
        for gauge in plugins.gauges():
            value = values[gauge.key]
            if gauge.label is None:
                yield GaugeMetricFamily(gauge.metric, gauge.help, value=value)
                continue
            family = GaugeMetricFamily(gauge.metric, gauge.help, labels=[gauge.label])
            for label, count in value.items():
                family.add_metric([label], count)
            yield family
