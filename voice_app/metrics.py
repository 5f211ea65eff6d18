"""Voice metrics, on the registry /metrics serves."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from sessions_app.metrics import REGISTRY

AUDIO_WINDOWS = Counter(
    "linnet_audio_windows_total", "Audio windows classified, by classifier.", ["classifier"], registry=REGISTRY
)
AUDIO_WINDOWS_SKIPPED = Counter(
    "linnet_audio_windows_skipped_total",
    "Audio windows skipped because classification fell behind.",
    registry=REGISTRY,
)
CLASSIFY_SECONDS = Histogram(
    "linnet_audio_classify_seconds",
    "Time to classify one window, by classifier.",
    ["classifier"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
SIDECAR_FALLBACKS = Counter(
    "linnet_audio_sidecar_fallbacks_total",
    "Windows the in-process classifier took because the sidecar failed or was not ready.",
    registry=REGISTRY,
)
