"""What the voice app does when the rest of Linnet tells it something happened."""

from __future__ import annotations

from sessions_app.models import Session
from voice_app.services import audio_allocations_release_for_session


def release_allocations_on_session_end(sender, *, session: Session, **kwargs) -> None:
    # Sent inside the ending transaction: the release is claimed here and sent after commit,
    # whichever process holds the audio stream (or none, if it was killed).
    audio_allocations_release_for_session(session_id=session.pk)
