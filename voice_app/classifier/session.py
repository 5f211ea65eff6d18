"""One session's classifier: decides whether each window is speech, and turns it into a speaker
onset and a tone (through the speaker's baseline) or into silence events (through the silence
tracker). It owns the session's one lock.
"""

from __future__ import annotations

import threading

import numpy as np

from voice_app.annotation import tone_annotation
from voice_app.classifier.baseline import SpeakerBaseline
from voice_app.classifier.events import VoiceEvent, labelled_event
from voice_app.classifier.features import WindowFeatures, measure_window, spread
from voice_app.classifier.silence import SilenceTracker
from voice_app.classifier.tuning import (
    IN_PROCESS_SPEAKER_ID,
    MIN_SAMPLE_RATE,
    MODULATION_HISTORY_FRAMES,
    SPEECH_MIN_MODULATION_DB,
    SPEECH_MIN_VOICED_FRACTION,
    SPEECH_MIN_VOICED_FRAMES,
    ramp,
)


class SessionClassifier:
    """Per-session state: the speaker's running baseline and recent trend, the last second of
    frame levels, the silent stretch and the noise floor. classify() may be called from any thread."""

    def __init__(self, *, sample_rate: int, elcor: bool = False, confidence_threshold: float = 0.10) -> None:
        if sample_rate < MIN_SAMPLE_RATE:
            raise ValueError(f"sample_rate must be at least {MIN_SAMPLE_RATE} Hz, got {sample_rate}")
        if not 0.0 <= confidence_threshold <= 1.0:
            raise ValueError(f"confidence_threshold must be within 0..1, got {confidence_threshold}")
        self.sample_rate = sample_rate
        self.elcor = elcor
        self.confidence_threshold = confidence_threshold
        # The one lock on a session's classification. Two windows of a session may reach two
        # threads (the pipeline's pool, the sidecar server's request threads), and each window
        # reads and then updates all of the state below; holding this for the whole window
        # keeps them in order. So callers need no lock of their own, and the baseline and the
        # silence tracker, which only this class touches, have none.
        self._lock = threading.Lock()
        self._baseline = SpeakerBaseline()
        self._silence = SilenceTracker()
        # The levels and activity of the last MODULATION_HISTORY_FRAMES frames, oldest first.
        self._history_dbfs = np.empty(0)
        self._history_active = np.empty(0, dtype=bool)

    def classify(self, pcm: np.ndarray, *, start: float, end: float) -> list[VoiceEvent]:
        """Classify one window of int16 mono samples spanning `start`..`end` seconds of the stream."""
        if np.asarray(pcm).size == 0:
            return []
        start, end = float(start), float(end)
        with self._lock:
            features = measure_window(
                pcm=pcm, sample_rate=self.sample_rate, noise_floor_dbfs=self._silence.noise_floor_dbfs
            )
            modulation_db = self._recent_modulation_db(features)
            if (
                features.voiced_frames >= SPEECH_MIN_VOICED_FRAMES
                and features.voiced_fraction >= SPEECH_MIN_VOICED_FRACTION
                and modulation_db >= SPEECH_MIN_MODULATION_DB
            ):
                return self._speech_events(features=features, modulation_db=modulation_db, start=start, end=end)
            return self._silence.non_speech_events(features=features, modulation_db=modulation_db, start=start, end=end)

    def _recent_modulation_db(self, features: WindowFeatures) -> float:
        """Level spread of the active frames over this window, or over the last second when it is
        shorter; the window's frames then join the history."""
        levels = np.concatenate((self._history_dbfs, features.frame_dbfs))
        active = np.concatenate((self._history_active, features.frame_active))
        self._history_dbfs = levels[-MODULATION_HISTORY_FRAMES:]
        self._history_active = active[-MODULATION_HISTORY_FRAMES:]
        heard = max(features.frame_count, MODULATION_HISTORY_FRAMES)
        recent = levels[-heard:][active[-heard:]]
        if recent.size < 2:
            return 0.0
        return spread(recent)

    def _speech_events(
        self, *, features: WindowFeatures, modulation_db: float, start: float, end: float
    ) -> list[VoiceEvent]:
        events = []
        if self._silence.speech_heard(end=end):
            voicing = ramp(features.voiced_fraction, SPEECH_MIN_VOICED_FRACTION, 0.4)
            syllabic = ramp(modulation_db, SPEECH_MIN_MODULATION_DB, 2 * SPEECH_MIN_MODULATION_DB)
            onset = start + (features.speech_onset_s or 0.0)
            events.append(labelled_event("speaker", IN_PROCESS_SPEAKER_ID, 0.5 + 0.5 * voicing * syllabic, onset, end))
        tone = self._baseline.judge(features)
        if tone.confidence < self.confidence_threshold:
            return events
        data = {
            "label": tone.label,
            "confidence": round(tone.confidence, 3),
            "speaker_id": IN_PROCESS_SPEAKER_ID,
            "shift_magnitude": round(tone.shift_magnitude, 3),
            "shift_direction": tone.shift_direction,
            **tone_annotation(
                label=tone.label, confidence=tone.confidence, shift_direction=tone.shift_direction, elcor=self.elcor
            ),
            "prosody_flags": tone.prosody_flags,
            "start": round(start, 3),
            "end": round(end, 3),
        }
        events.append(VoiceEvent(type="tone", data=data))
        return events
