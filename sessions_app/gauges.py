"""Cluster-wide Prometheus gauges, read from the database at each scrape: sessions by state,
live subscribers, and every gauge another app registered (`plugins.gauge_register`)."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily

from sessions_app import plugins, selectors


class DatabaseCollector:
    """Gauges that must agree across processes, so they are read from the database at scrape."""

    def describe(self):
        # Registering must not query: the tables may not exist yet (migrate, check).
        return []

    def collect(self):
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
