"""Audio streams: which process holds the one producer a voice session may have."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from sessions_app.models import Session, Worker


class AudioStream(models.Model):
    """One audio producer attached to a voice session, owned by one process's lease.

    At most one stream per session is open at a time, cluster-wide (the partial unique
    constraint). A process killed without closing its sockets leaves an open row whose
    lease expires; the next producer closes it before claiming (`audio_stream_open`).
    """

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="audio_streams")
    # SET_NULL keeps the stream's history when the sweep forgets a long-dead process;
    # an open row without a worker counts as abandoned.
    worker = models.ForeignKey(Worker, null=True, blank=True, on_delete=models.SET_NULL, related_name="audio_streams")
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    close_code = models.PositiveIntegerField(null=True, blank=True)
    frames = models.PositiveBigIntegerField(default=0)
    bytes = models.PositiveBigIntegerField(default=0)
    windows = models.PositiveBigIntegerField(default=0)
    # A cf-orch allocation serving this stream; released exactly once, by whoever sets
    # allocation_released_at first (the stream closing or the session ending).
    allocation_id = models.CharField(max_length=255, blank=True, default="")
    allocation_released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["session"], condition=Q(closed_at__isnull=True), name="audio_stream_one_open_per_session"
            )
        ]

    def __str__(self) -> str:
        return f"audio stream {self.pk} of {self.session_id}"
