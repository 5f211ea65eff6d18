"""Detached agent runs and the conversation they read and write."""

from __future__ import annotations

import uuid

from django.db import models

from sessions_app.models import ProcessLease, Session


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    INPUT_REQUIRED = "input_required"
    DONE = "done"
    STOPPED = "stopped"
    ERROR = "error"
    INTERRUPTED = "interrupted"


IN_FLIGHT_RUN_STATUSES = frozenset({RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.INPUT_REQUIRED})
# Claimed by a worker: these hold a lease, and a session has at most one of them at a time.
DRAINING_RUN_STATUSES = frozenset({RunStatus.RUNNING, RunStatus.INPUT_REQUIRED})
FINISHED_RUN_STATUSES = frozenset({RunStatus.DONE, RunStatus.STOPPED, RunStatus.ERROR, RunStatus.INTERRUPTED})

# The run state machine: every legal edge. Every status write goes through run_transition,
# which checks it. A queued run is only ever claimed or stopped (no worker has it yet).
RUN_TRANSITIONS: dict[str, frozenset[str]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.STOPPED}),
    RunStatus.RUNNING: frozenset(
        {RunStatus.INPUT_REQUIRED, RunStatus.DONE, RunStatus.STOPPED, RunStatus.ERROR, RunStatus.INTERRUPTED}
    ),
    RunStatus.INPUT_REQUIRED: frozenset(
        {RunStatus.RUNNING, RunStatus.DONE, RunStatus.STOPPED, RunStatus.ERROR, RunStatus.INTERRUPTED}
    ),
    RunStatus.DONE: frozenset(),
    RunStatus.STOPPED: frozenset(),
    RunStatus.ERROR: frozenset(),
    RunStatus.INTERRUPTED: frozenset(),
}


class Run(models.Model):
    """One agent generation in a session: `queued → running ⇄ input_required → finished`.

    `worker` and `lease_expires_at` are the drain's lease: a run whose lease lapsed is
    ended `interrupted` by whichever worker notices. `output` is everything the run has
    published so far, written in the same transaction as its `run.delta` events, so the
    partial survives the drain's process being killed.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="runs")
    agent = models.CharField(max_length=32)
    input = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    phase = models.CharField(max_length=32, blank=True)
    stop_requested = models.BooleanField(default=False)
    output = models.TextField(blank=True)
    # While input_required: {"fields": [...], "reason": ...}.
    input_request = models.JSONField(null=True, blank=True)
    # An answer delivered to the run that its drain has not picked up yet.
    input_answer = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True, db_index=True)
    error = models.JSONField(null=True, blank=True)
    worker = models.ForeignKey(ProcessLease, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    compacted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "created_at"], name="run_status_created"),
            models.Index(fields=["session", "status"], name="run_session_status"),
        ]

    def __str__(self) -> str:
        return f"{self.agent} run {self.id} ({self.status})"

    @property
    def is_draining(self) -> bool:
        return self.status in DRAINING_RUN_STATUSES

    def can_transition_to(self, to: str) -> bool:
        return to in RUN_TRANSITIONS[self.status]


class MessageRole(models.TextChoices):
    USER = "user"
    ASSISTANT = "assistant"


class Message(models.Model):
    """A turn of the session's conversation: a run's input, or its (possibly partial) output."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="messages")
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages")
    role = models.CharField(max_length=16, choices=MessageRole.choices)
    content = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"

    def as_json(self) -> dict:
        return {
            "id": str(self.id),
            "role": self.role,
            "content": self.content,
            "run_id": str(self.run_id) if self.run_id else None,
            "created_at": self.created_at.isoformat(),
        }
