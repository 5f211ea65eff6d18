"""Talking to a cf-voice sidecar and to the cf-orch allocator, through one pooled HTTP client.

    client      the pooled client (lazily on the running loop), SidecarError
    cf_voice    /health, /classify, and a sidecar's answer as Linnet log items
    allocation  the cf-orch allocation lifecycle: allocate, record on the stream, release once

The server side of the protocol (`manage.py voice_sidecar`) is voice_app.sidecar_server.
"""

from voice_app.sidecar.allocation import Allocation, allocation_acquire, allocation_release_soon
from voice_app.sidecar.cf_voice import SidecarShiftTracker, sidecar_classify, sidecar_events_map, sidecar_health
from voice_app.sidecar.client import SidecarError, sidecar_client_close

__all__ = [
    "Allocation",
    "SidecarError",
    "SidecarShiftTracker",
    "allocation_acquire",
    "allocation_release_soon",
    "sidecar_classify",
    "sidecar_client_close",
    "sidecar_events_map",
    "sidecar_health",
]
