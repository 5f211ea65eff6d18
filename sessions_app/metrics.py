"""Prometheus metrics: the per-process counters (the cluster-wide gauges are in `gauges`)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

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
