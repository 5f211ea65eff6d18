"""Audio streams (which process holds the one producer a voice session may have), and the
feedback people give on the tones they were shown."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from sessions_app.models import ProcessLease, Session


class AudioStream(models.Model):
    """One audio producer attached to a voice session, owned by one process's lease.

    At most one stream per session is open at a time, cluster-wide (the partial unique
    constraint). A process killed without closing its sockets leaves an open row whose
    lease expires; the next producer closes it before claiming (`audio_stream_open`).
    """

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="audio_streams")
    # SET_NULL keeps the stream's history when the sweep forgets a long-dead process;
    # an open row without a lease counts as abandoned.
    lease = models.ForeignKey(
        ProcessLease, null=True, blank=True, on_delete=models.SET_NULL, related_name="audio_streams"
    )
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


class FeedbackVerdict(models.TextChoices):
    UP = "up"
    DOWN = "down"


class Feedback(models.Model):
    """A person's verdict on one tone event of a session, and the right label when they gave one.

    One row per tone: a later verdict replaces the earlier one. The tone's data is copied
    from the log when the verdict is given, so a row is a training example on its own (the
    log is append-only, so the copy cannot go stale).
    """

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="tone_feedback")
    seq = models.BigIntegerField(help_text="The seq of the tone event in the session's log.")
    tone = models.JSONField(help_text="The tone event's data as it was logged.")
    verdict = models.CharField(max_length=8, choices=FeedbackVerdict.choices)
    label = models.CharField(
        "corrected label", max_length=32, null=True, blank=True, help_text="The right label, when the person gave one."
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="tone_feedback"
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["session", "seq"], name="feedback_one_per_tone")]
        verbose_name_plural = "feedback"

    def __str__(self) -> str:
        return f"{self.verdict} on tone #{self.seq} of {self.session_id}"
