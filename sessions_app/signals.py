"""Hooks other apps attach to; each is sent inside the transaction that caused it."""

from django.dispatch import Signal

# session_ended(sender=Session, session=...): stop runs, release a sidecar allocation.
session_ended = Signal()
# session_input_received(sender=Session, session=..., input=...): wake the waiting run.
session_input_received = Signal()
