"""Sessions, their durable event log, and the presence rows that count live subscribers."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import NamedTuple

from django.conf import settings
from django.db import models
from django.db.models import Q

from sessions_app import options


class SessionKind(models.TextChoices):
    VOICE = "voice"
    AGENT = "agent"


class SessionState(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    INPUT_REQUIRED = "input_required"
    DONE = "done"
    FAILED = "failed"
    ABORTED = "aborted"


class NextAction(models.TextChoices):
    NONE = "none"
    AWAITING_INPUT = "awaiting_input"


TERMINAL_STATES = frozenset({SessionState.DONE, SessionState.FAILED, SessionState.ABORTED})

# The state machine: every legal edge, and the phase / next_action a transition sets.
# Code (session_transition) and docs/protocol.md (rendered by transitions_markdown) both read this table.
TRANSITIONS: dict[str, frozenset[str]] = {
    SessionState.PENDING: frozenset({SessionState.RUNNING, SessionState.FAILED, SessionState.ABORTED}),
    SessionState.RUNNING: frozenset(
        {SessionState.INPUT_REQUIRED, SessionState.DONE, SessionState.FAILED, SessionState.ABORTED}
    ),
    SessionState.INPUT_REQUIRED: frozenset(
        {SessionState.RUNNING, SessionState.DONE, SessionState.FAILED, SessionState.ABORTED}
    ),
    SessionState.DONE: frozenset(),
    SessionState.FAILED: frozenset(),
    SessionState.ABORTED: frozenset(),
}
STATE_EFFECTS: dict[str, tuple[str, str]] = {
    SessionState.PENDING: ("created", NextAction.NONE),
    SessionState.RUNNING: ("active", NextAction.NONE),
    SessionState.INPUT_REQUIRED: ("waiting_for_input", NextAction.AWAITING_INPUT),
    SessionState.DONE: ("ended", NextAction.NONE),
    SessionState.FAILED: ("ended", NextAction.NONE),
    SessionState.ABORTED: ("ended", NextAction.NONE),
}


class Session(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=SessionKind.choices, default=SessionKind.VOICE)
    state = models.CharField(max_length=16, choices=SessionState.choices, default=SessionState.PENDING)
    phase = models.CharField(max_length=32, default=STATE_EFFECTS[SessionState.PENDING][0])
    next_action = models.CharField(max_length=16, choices=NextAction.choices, default=NextAction.NONE)

    elcor = models.BooleanField(default=False)
    window_ms = models.PositiveIntegerField(validators=options.WINDOW_MS_VALIDATORS)
    language = models.CharField(
        max_length=options.LANGUAGE_MAX_LENGTH, default="en", validators=options.LANGUAGE_VALIDATORS
    )
    num_speakers = models.PositiveSmallIntegerField(null=True, blank=True, validators=options.NUM_SPEAKERS_VALIDATORS)
    # The client's consent to export this session's tone feedback for training.
    share_feedback = models.BooleanField(default=False)

    token_hash = models.CharField(max_length=64, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="linnet_sessions"
    )

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    state_changed_at = models.DateTimeField(auto_now_add=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    last_subscriber_left_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    last_seq = models.BigIntegerField(default=0)
    pending_input = models.JSONField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} session {self.id} ({self.state})"

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def can_transition_to(self, to: str) -> bool:
        return to in TRANSITIONS[self.state]

    @property
    def group_name(self) -> str:
        return session_group_name(self.id)


def session_group_name(session_id: uuid.UUID | str) -> str:
    return f"session.{session_id}"


class Event(models.Model):
    """One entry of a session's durable log; `seq` is strictly increasing per session."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="events")
    seq = models.BigIntegerField()
    type = models.CharField(max_length=32)
    ts = models.FloatField()
    data = models.JSONField(default=dict)

    class Meta:
        ordering = ["session", "seq"]
        constraints = [models.UniqueConstraint(fields=["session", "seq"], name="event_session_seq_unique")]
        indexes = [models.Index(fields=["session", "type", "seq"])]

    def __str__(self) -> str:
        return f"#{self.seq} {self.type}"

    def envelope(self) -> dict:
        return event_envelope(self.seq, self.type, self.ts, self.data)


# What a logged event looks like on the wire (WebSocket, SSE, history, export, agents' context):
# read a row's ENVELOPE_FIELDS with values_list and pass them to event_envelope.
ENVELOPE_FIELDS = ("seq", "type", "ts", "data")


def event_envelope(seq: int, type: str, ts: float, data: dict) -> dict:
    return {"seq": seq, "type": type, "ts": ts, "data": data}


class EncodedEvent(NamedTuple):
    """An envelope as the wire carries it: `text` is its JSON, `seq` and `type` ride beside it."""

    seq: int
    type: str
    text: str


def event_encode(seq: int, type: str, ts: float, data_json: str) -> EncodedEvent:
    """The envelope's JSON around `data` already in JSON, as the log stores it.

    A replay sends every row once: reading `data` as text and splicing it in skips a decode
    and an encode per event, most of a replay's own cost.
    """
    return EncodedEvent(seq, type, f'{{"seq":{seq},"type":{json.dumps(type)},"ts":{ts!r},"data":{data_json}}}')


def envelope_encode(envelope: dict) -> EncodedEvent:
    text = json.dumps(envelope, separators=(",", ":"))
    return EncodedEvent(envelope["seq"], envelope["type"], text)


def lease_alive_q(*, now: datetime, via: str = "") -> Q:
    """Rows whose process lease (reached through `via`, e.g. "lease__") is alive at `now`.

    The one statement of the rule: renewed past `now` and not stopped. Whatever a process
    owns (subscriptions, audio streams) counts only while this holds.
    """
    return Q(**{f"{via}lease_expires_at__gte": now, f"{via}stopped_at__isnull": True})


class ProcessLease(models.Model):
    """A server process (web, worker or all-in-one): its presence lease and its loops' last passes."""

    id = models.CharField(primary_key=True, max_length=64)
    role = models.CharField(max_length=16)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    lease_expires_at = models.DateTimeField(db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    # {"reap": {"at": iso, "count": n, "ms": t}, ...}: the last pass of each loop.
    passes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.role} {self.hostname}:{self.pid}"

    def is_alive(self, now: datetime) -> bool:
        """The row form of lease_alive_q."""
        return self.stopped_at is None and self.lease_expires_at >= now


class Subscription(models.Model):
    """A live event-stream connection (WebSocket or SSE), owned by one process's lease."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="subscriptions")
    lease = models.ForeignKey(ProcessLease, on_delete=models.CASCADE, related_name="subscriptions")
    transport = models.CharField(max_length=8)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["session", "lease"])]

    def __str__(self) -> str:
        return f"{self.transport} subscriber of {self.session_id}"


def transitions_markdown() -> str:
    """Render the state machine (TRANSITIONS, STATE_EFFECTS) as the Markdown table docs/protocol.md embeds."""
    lines = ["| state | phase | next_action | may go to |", "|---|---|---|---|"]
    for state, targets in TRANSITIONS.items():
        phase, next_action = STATE_EFFECTS[state]
        edges = ", ".join(f"`{to}`" for to in SessionState.values if to in targets) or "— (terminal)"
        lines.append(f"| `{state}` | `{phase}` | `{next_action}` | {edges} |")
    return "\n".join(lines) + "\n"
