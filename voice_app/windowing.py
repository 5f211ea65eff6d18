"""Cutting a PCM16 byte stream into classification windows, and the audio rate limit."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

BYTES_PER_SAMPLE = 2


@dataclass(frozen=True)
class AudioWindow:
    """`pcm` is PCM16 LE mono; `start`/`end` are seconds into the session's audio by samples received."""

    pcm: bytes
    start: float
    end: float


class AudioWindower:
    """Cuts frames of any size into exact `window_ms` windows; a window may span frames.

    The clock starts at `start_s` (where the session's earlier streams left off) and counts
    samples from there, so window times stay exact however the audio was chunked or delayed.
    """

    def __init__(self, *, sample_rate: int, window_ms: int, start_s: float = 0.0) -> None:
        self.sample_rate = sample_rate
        self.window_bytes = sample_rate * window_ms // 1000 * BYTES_PER_SAMPLE
        self.buffer = bytearray()
        self.clock_samples = round(start_s * sample_rate)

    def feed(self, pcm: bytes) -> list[AudioWindow]:
        """Add audio and return every window it completed, oldest first."""
        self.buffer += pcm
        windows = []
        while len(self.buffer) >= self.window_bytes:
            windows.append(self._cut(self.window_bytes))
        return windows

    def flush(self) -> AudioWindow | None:
        """The partial window buffered so far (finalize / close), or None when there is none."""
        if not self.buffer:
            return None
        return self._cut(len(self.buffer))

    def _cut(self, size: int) -> AudioWindow:
        pcm = bytes(self.buffer[:size])
        del self.buffer[:size]
        samples = size // BYTES_PER_SAMPLE
        start = self.clock_samples / self.sample_rate
        self.clock_samples += samples
        return AudioWindow(pcm=pcm, start=start, end=self.clock_samples / self.sample_rate)


class AudioRateLimiter:
    """A token bucket in bytes: refills at `factor` × real time and holds up to `burst_s` of
    audio, starting with `start_s`.

    A client streaming in real time gains allowance faster than it spends it, so the bucket
    fills up to `burst_s`: after a network stall the client may flush that much held-back
    audio at once. Straight after connecting it may flush `start_s` (what it buffered while
    reconnecting). Sending faster than `factor` × real time drains the bucket and is refused
    once it is empty. The bucket always admits one maximum frame. Time is read from `clock`
    (monotonic seconds).
    """

    def __init__(
        self,
        *,
        sample_rate: int,
        factor: float,
        burst_s: float,
        start_s: float,
        max_frame_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        bytes_per_second = sample_rate * BYTES_PER_SAMPLE
        self.clock = clock
        self.rate = factor * bytes_per_second
        self.capacity = max(burst_s * bytes_per_second, float(max_frame_bytes))
        self.tokens = max(min(start_s, burst_s) * bytes_per_second, float(max_frame_bytes))
        self.updated_at = clock()

    def admit(self, size: int) -> bool:
        """Take `size` bytes from the bucket; False when the client is sending too fast."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated_at) * self.rate)
        self.updated_at = now
        if size > self.tokens:
            return False
        self.tokens -= size
        return True
