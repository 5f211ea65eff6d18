"""Reads of runs and the conversation."""

from __future__ import annotations

from agents_app.models import Message
from sessions_app.models import Session


def messages_json(*, session: Session) -> list[dict]:
    return [message.as_json() for message in Message.objects.filter(session=session).order_by("created_at", "id")]
