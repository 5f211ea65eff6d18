"""Windowing and the audio rate limit, driven with a clock the test controls."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from tests.voice_app.conftest import FRAME_BYTES, SAMPLE_RATE, FakeClock
from voice_app.pipeline import RATE_LIMIT_BURST_S, RATE_LIMIT_FACTOR, RATE_LIMIT_START_S
from voice_app.windowing import AudioRateLimiter, AudioWindower

WINDOW_BYTES = SAMPLE_RATE * 2 // 10  # 100 ms


def pcm_ramp(samples: int) -> bytes:
    return (np.arange(samples) % 30000).astype("<i2").tobytes()


def test_windows_are_exact_and_may_span_frames():
    windower = AudioWindower(sample_rate=SAMPLE_RATE, window_ms=100)
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
    windower = AudioWindower(sample_rate=SAMPLE_RATE, window_ms=100)
    assert windower.feed(pcm_ramp(1200)) == []  # 75 ms of a 100 ms window
    assert windower.feed(b"") == []

    partial = windower.flush()
    assert windower.flush() is None
    following = windower.feed(pcm_ramp(1600))

    assert (partial.start, partial.end, len(partial.pcm)) == (0.0, 0.075, 2400)
    assert [(w.start, w.end) for w in following] == [(0.075, 0.175)]


def test_the_clock_may_start_where_earlier_audio_ended():
    windower = AudioWindower(sample_rate=SAMPLE_RATE, window_ms=100, start_s=2.5)
    windows = windower.feed(pcm_ramp(2400))
    windows.append(windower.flush())

    assert [(w.start, w.end) for w in windows] == [(2.5, 2.6), (2.6, 2.65)]


def test_first_windows_complete_in_one_large_frame():
    windower = AudioWindower(sample_rate=SAMPLE_RATE, window_ms=1000)
    windows = windower.feed(pcm_ramp(SAMPLE_RATE * 2 + 100))
    assert [(w.start, w.end) for w in windows] == [(0.0, 1.0), (1.0, 2.0)]
    assert len(windower.flush().pcm) == 200


def limiter(*, max_frame_bytes: int = FRAME_BYTES) -> tuple[FakeClock, AudioRateLimiter]:
    """The server's rate limit on a clock the test moves; both start at 0 s."""
    clock = FakeClock()
    bucket = AudioRateLimiter(
        sample_rate=SAMPLE_RATE,
        factor=RATE_LIMIT_FACTOR,
        burst_s=RATE_LIMIT_BURST_S,
        start_s=RATE_LIMIT_START_S,
        max_frame_bytes=max_frame_bytes,
        clock=clock,
    )
    return clock, bucket


def first_refused(clock: FakeClock, bucket: AudioRateLimiter, times: Iterable[float], size: int = FRAME_BYTES):
    """Offer one frame at each of `times`; the index of the first the bucket refuses, or None."""
    for index, now in enumerate(times):
        clock.now = now
        if not bucket.admit(size):
            return index
    return None


def test_real_time_audio_is_always_admitted():
    clock, bucket = limiter()
    assert first_refused(clock, bucket, (i * 0.1 for i in range(600))) is None  # a minute of 100 ms frames


def test_twice_real_time_is_sustainable():
    clock, bucket = limiter()
    assert first_refused(clock, bucket, (i * 0.05 for i in range(1200))) is None


def test_three_times_real_time_from_the_start_is_refused_within_fifteen_seconds_of_audio():
    clock, bucket = limiter()
    refused_at = first_refused(clock, bucket, (i / 30 for i in range(1200)))
    # Net drain at 3x against a 2x refill is 1 s of audio per second; the bucket starts with 5 s.
    assert 4.8 <= refused_at / 30 <= 5.2
    assert refused_at * 0.1 <= 15.5  # seconds of audio admitted


def test_three_times_real_time_after_a_while_in_real_time_is_refused_within_the_backlog_bound():
    clock, bucket = limiter()
    assert first_refused(clock, bucket, (i * 0.1 for i in range(300))) is None  # 30 s in real time: full
    refused_at = first_refused(clock, bucket, (30 + i / 30 for i in range(1200)))
    assert 9.8 <= refused_at / 30 <= 10.2


def test_a_real_time_client_may_flush_what_a_stall_of_eight_seconds_held_back():
    clock, bucket = limiter()
    assert first_refused(clock, bucket, (i * 0.1 for i in range(100))) is None  # 10 s in real time
    # Nothing arrives from 10 s to 18 s; then the 80 frames recorded meanwhile arrive at once.
    assert first_refused(clock, bucket, [18.0] * 80) is None
    assert first_refused(clock, bucket, (18.0 + i * 0.1 for i in range(1, 600))) is None


def test_a_reconnecting_client_may_flush_its_start_allowance_at_once_and_no_more():
    clock, bucket = limiter()
    assert bucket.admit(5 * 32000)
    assert not bucket.admit(FRAME_BYTES)
    clock.advance(0.1)
    assert not bucket.admit(6400 + 100)
    assert bucket.admit(6400)


def test_the_bucket_never_holds_more_than_the_burst():
    clock, bucket = limiter()
    clock.advance(3600.0)  # an hour of keepalives
    assert bucket.admit(FRAME_BYTES)
    assert bucket.admit(int(RATE_LIMIT_BURST_S * 32000) - FRAME_BYTES)
    assert not bucket.admit(FRAME_BYTES)


def test_one_maximal_frame_is_always_admissible():
    _, bucket = limiter(max_frame_bytes=400_000)
    assert bucket.admit(400_000)
