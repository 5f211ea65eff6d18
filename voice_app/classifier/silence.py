"""The non-speech side of a session: how long nobody has spoken (`silence`, `dead_air`), when
the last speech ended, and the background level (`noise_floor_change`).

It holds no lock: its one owner, SessionClassifier, calls it under the session's lock.
"""

from __future__ import annotations

import math

from voice_app.classifier.events import VoiceEvent, labelled_event
from voice_app.classifier.features import WindowFeatures
from voice_app.classifier.tuning import (
    DEAD_AIR_AFTER_S,
    FLOOR_MIN_DBFS,
    NOISE_FLOOR_CHANGE_DB,
    NOISE_FLOOR_CONFIRM_S,
    NOISE_FLOOR_TIME_CONSTANT_S,
    SPEAKER_ONSET_AFTER_SILENCE_S,
    SPEECH_HANGOVER_S,
    SPEECH_MIN_MODULATION_DB,
    SPEECH_MIN_VOICED_FRACTION,
    ramp,
)


class SilenceTracker:
    """The current silent stretch, the end of the last speech, and the running noise floor."""

    def __init__(self) -> None:
        self.noise_floor_dbfs: float | None = None
        # Consecutive non-speech windows away from the floor: (start, duration, floor level).
        self._floor_candidate: list[tuple[float, float, float]] = []
        self._last_speech_end: float | None = None
        self._silence_start: float | None = None
        self._silence_s = 0.0
        self._silence_confidence_s = 0.0
        self._dead_air_reported = False

    def speech_heard(self, *, end: float) -> bool:
        """End the silent stretch at a speech window; True when that speech is a speaker onset
        (the stream's first speech, or the first after SPEAKER_ONSET_AFTER_SILENCE_S of silence)."""
        onset = self._last_speech_end is None or self._silence_s >= SPEAKER_ONSET_AFTER_SILENCE_S
        self._last_speech_end = end
        self._silence_start = None
        self._silence_s = 0.0
        self._silence_confidence_s = 0.0
        self._dead_air_reported = False
        # A noise floor move only counts when it holds across uninterrupted non-speech audio.
        self._floor_candidate.clear()
        return onset

    def non_speech_events(
        self, *, features: WindowFeatures, modulation_db: float, start: float, end: float
    ) -> list[VoiceEvent]:
        """The events of a window without speech: a floor change, its `silence`, and `dead_air`
        once the stretch reaches DEAD_AIR_AFTER_S."""
        events = []
        floor_change = self._track_noise_floor(features=features, start=start, end=end)
        if floor_change is not None:
            events.append(floor_change)

        # Voicing, or activity that rises and falls like syllables, too little to count as
        # speech still makes the silence less certain: a whisper is active but never voiced.
        syllabic = ramp(modulation_db, SPEECH_MIN_MODULATION_DB / 2, SPEECH_MIN_MODULATION_DB)
        doubt = syllabic * max(
            ramp(features.voiced_fraction, 0.0, SPEECH_MIN_VOICED_FRACTION), 0.5 * features.active_fraction
        )
        silence_confidence = 1.0 - 0.6 * doubt
        if self._silence_start is None:
            self._silence_start = start
        self._silence_s += features.duration_s
        self._silence_confidence_s += silence_confidence * features.duration_s
        if self._last_speech_end is None or end - self._last_speech_end > SPEECH_HANGOVER_S:
            events.append(labelled_event("queue", "silence", silence_confidence, start, end))
        if self._silence_s >= DEAD_AIR_AFTER_S and not self._dead_air_reported:
            self._dead_air_reported = True
            mean_confidence = self._silence_confidence_s / self._silence_s
            events.append(labelled_event("queue", "dead_air", mean_confidence, self._silence_start, end))
        return events

    def _track_noise_floor(self, *, features: WindowFeatures, start: float, end: float) -> VoiceEvent | None:
        """Follow the background level; report a move once it has held for NOISE_FLOOR_CONFIRM_S."""
        level = max(features.floor_dbfs, FLOOR_MIN_DBFS)
        if self.noise_floor_dbfs is None:
            self.noise_floor_dbfs = level
            return None
        deviation = level - self.noise_floor_dbfs
        if abs(deviation) <= NOISE_FLOOR_CHANGE_DB:
            self._floor_candidate.clear()
            self.noise_floor_dbfs += (1.0 - math.exp(-features.duration_s / NOISE_FLOOR_TIME_CONSTANT_S)) * deviation
            return None
        if self._floor_candidate and (self._floor_candidate[0][2] - self.noise_floor_dbfs) * deviation < 0:
            self._floor_candidate.clear()
        self._floor_candidate.append((start, features.duration_s, level))
        held_s = sum(duration for _, duration, _ in self._floor_candidate)
        if held_s < NOISE_FLOOR_CONFIRM_S:
            return None
        new_floor = sum(duration * value for _, duration, value in self._floor_candidate) / held_s
        moved_db = abs(new_floor - self.noise_floor_dbfs)
        changed_at = self._floor_candidate[0][0]
        self.noise_floor_dbfs = new_floor
        self._floor_candidate.clear()
        confidence = 0.5 + 0.5 * ramp(moved_db, NOISE_FLOOR_CHANGE_DB, 3 * NOISE_FLOOR_CHANGE_DB)
        return labelled_event("environ", "noise_floor_change", confidence, changed_at, end)
