"""Keeping one SessionClassifier per session, so its baseline outlives a single stream: a bounded
LRU (the voice sidecar's, and this process's own for the audio pipeline)."""

from __future__ import annotations

import threading
from collections import OrderedDict

from voice_app.classifier.session import SessionClassifier

# Each classifier holds one session's running baseline (about 5 kB); the least recently used go first.
MAX_SESSIONS = 256
# The audio pipeline's cache: a stream that reattaches on the same process carries on with its
# session's baseline. At most ~5 MB; an active stream keeps its own even once evicted.
PROCESS_MAX_SESSIONS = 1024


class ClassifierCache:
    """A bounded LRU of per-session classifiers, keyed by session and elcor mode."""

    def __init__(self, *, sample_rate: int, confidence_threshold: float, max_sessions: int = MAX_SESSIONS) -> None:
        self.sample_rate = sample_rate
        self.confidence_threshold = confidence_threshold
        self.max_sessions = max_sessions
        self._classifiers: OrderedDict[tuple[str, bool], SessionClassifier] = OrderedDict()
        # Guards the LRU order only (look-up, insert, evict; the sidecar server looks up from a
        # thread per request) and is never held while classifying: each classifier keeps its
        # windows in order with its own lock.
        self._lock = threading.Lock()

    def get(self, *, session_id: str, elcor: bool) -> SessionClassifier:
        key = (session_id, elcor)
        with self._lock:
            classifier = self._classifiers.get(key)
            if classifier is None:
                classifier = self._classifiers[key] = SessionClassifier(
                    sample_rate=self.sample_rate, elcor=elcor, confidence_threshold=self.confidence_threshold
                )
                while len(self._classifiers) > self.max_sessions:
                    self._classifiers.popitem(last=False)
            else:
                self._classifiers.move_to_end(key)
            return classifier

    def __len__(self) -> int:
        return len(self._classifiers)


class _ProcessClassifiers:
    cache: ClassifierCache | None = None


def process_session_classifier(
    *, session_id: str, elcor: bool, sample_rate: int, confidence_threshold: float
) -> SessionClassifier:
    """This process's classifier of the session: a reconnecting stream keeps its baseline."""
    cache = _ProcessClassifiers.cache
    # A classifier keeps the sample rate and threshold it was made with; settings that differ
    # (a test overriding them) start a fresh cache.
    if cache is None or (cache.sample_rate, cache.confidence_threshold) != (sample_rate, confidence_threshold):
        cache = _ProcessClassifiers.cache = ClassifierCache(
            sample_rate=sample_rate, confidence_threshold=confidence_threshold, max_sessions=PROCESS_MAX_SESSIONS
        )
    return cache.get(session_id=session_id, elcor=elcor)
