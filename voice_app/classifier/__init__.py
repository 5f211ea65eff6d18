"""In-process tone classifier: frame-level signal processing on PCM16 windows, read against a
running per-session baseline of the speaker's loudness, pitch and pace.

    tuning      every threshold, weight and time constant, and `ramp`
    features    what one window measures on its own (activity, loudness, YIN pitch, pace, pauses)
    baseline    the speaker's running baseline, and a speech window scored into the tone vocabulary
    silence     silent stretches, dead air and the noise floor
    events      VoiceEvent, what the classifier emits
    session     SessionClassifier: one session's state behind its one lock
    cache       the LRU of per-session classifiers (the sidecar's, and this process's own)

The vocabulary it maps onto lives in voice_app.annotation; docs/voice.md explains each feature.
"""

from voice_app.classifier.cache import (
    MAX_SESSIONS,
    ClassifierCache,
    process_session_classifier,
)
from voice_app.classifier.events import VoiceEvent
from voice_app.classifier.features import WindowFeatures, measure_window
from voice_app.classifier.session import SessionClassifier
from voice_app.classifier.tuning import IN_PROCESS_SPEAKER_ID

__all__ = [
    "IN_PROCESS_SPEAKER_ID",
    "MAX_SESSIONS",
    "ClassifierCache",
    "SessionClassifier",
    "VoiceEvent",
    "WindowFeatures",
    "measure_window",
    "process_session_classifier",
]
