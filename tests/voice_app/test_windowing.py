"""Windowing and the audio rate limit, driven with a clock the test controls."""

from __future__ import annotations

import numpy as np

from voice_app.windowing import AudioRateLimiter, AudioWindower

RATE = 16000
WINDOW_BYTES = RATE * 2 // 10  # 100 ms


def pcm_ramp(samples: int) -> bytes:
    return (np.arange(samples) % 30000).astype("<i2").tobytes()


def test_windows_are_exact_and_may_span_frames():
    windower = AudioWindower(sample_rate=RATE, window_ms=100)
    audio = pcm_ramp(8000)  # 0.5 s
    sizes = [1000, 5000, 2, 3198, 6800]  # frames of any even size, crossing window edges
    windows, offset = [], 0
    for size in sizes:
        windows += windower.feed(audio[offset : offset + size])
        offset += size

    assert sum(sizes) == 16000 == len(audio)
    assert [len(w.pcm) for w in windows] == [WINDOW_BYTES] * 5
    assert b"".join(w.pcm for w in windows) == audio
    assert [(w.start, w.end) for w in windows] == [(0.0, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5)]
    assert windower.flush() is None


def test_flush_cuts_the_partial_window_and_the_clock_continues_from_it():
    windower = AudioWindower(sample_rate=RATE, window_ms=100)
    assert windower.feed(pcm_ramp(1200)) == []  # 75 ms of a 100 ms window
    assert windower.feed(b"") == []

    partial = windower.flush()
    assert windower.flush() is None
    following = windower.feed(pcm_ramp(1600))

    assert (partial.start, partial.end, len(partial.pcm)) == (0.0, 0.075, 2400)
    assert [(w.start, w.end) for w in following] == [(0.075, 0.175)]


def test_first_windows_complete_in_one_large_frame():
    windower = AudioWindower(sample_rate=RATE, window_ms=1000)
    windows = windower.feed(pcm_ramp(RATE * 2 + 100))
    assert [(w.start, w.end) for w in windows] == [(0.0, 1.0), (1.0, 2.0)]
    assert len(windower.flush().pcm) == 200


def limiter(now: float = 0.0, max_frame_bytes: int = 3200) -> AudioRateLimiter:
    return AudioRateLimiter(sample_rate=RATE, factor=2.0, burst_s=2.0, max_frame_bytes=max_frame_bytes, now=now)


def test_real_time_audio_is_always_admitted():
    bucket = limiter()
    for i in range(600):  # a minute of 100 ms frames at real time
        assert bucket.admit(3200, now=i * 0.1)


def test_twice_real_time_is_sustainable_but_three_times_is_refused_after_the_burst():
    double = limiter()
    assert all(double.admit(3200, now=i * 0.05) for i in range(1200))

    triple = limiter()
    refused_at = next(i for i in range(1200) if not triple.admit(3200, now=i / 30))
    # Net drain at 3x against a 2x refill is 1 s of audio per second; the bucket holds 2 s.
    assert 1.8 <= refused_at / 30 <= 2.2


def test_burst_of_two_seconds_is_admitted_then_refills_at_twice_real_time():
    bucket = limiter()
    assert bucket.admit(64000, now=0.0)
    assert not bucket.admit(3200, now=0.0)
    assert not bucket.admit(6400 + 100, now=0.1)
    assert bucket.admit(6400, now=0.1)


def test_one_maximal_frame_is_always_admissible():
    bucket = limiter(max_frame_bytes=100_000)
    assert bucket.admit(100_000, now=0.0)
