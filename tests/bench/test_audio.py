"""The audio ladder's arithmetic: what a rung is judged by, and which rung is the answer."""

from __future__ import annotations

from bench.audio import CLIENT_BOUND, FAILED, SUSTAINED, cores_between, ladder_sustained, rung_verdict
from bench.audio_load import frame_at, load_summary, window_ends


def stream(*, windows_sent=3, acks=3, closed_windows=3, ack_latencies_s=(0.01, 0.02, 0.03), errors=()):
    return {
        "windows_sent": windows_sent,
        "acks": acks,
        "closed_windows": closed_windows,
        "ack_latencies_s": list(ack_latencies_s),
        "event_latencies_s": list(ack_latencies_s),
        "events_received": acks,
        "errors": list(errors),
    }


def measurements(*streams, slip_p99_s=0.002):
    client = {"connect_s": 1.0, "cpu_s": 0.5, "wall_s": 5.0, "slip_p99_s": slip_p99_s, "slip_max_s": slip_p99_s}
    return {"streams": len(streams), "client": client, "per_stream": list(streams)}


def test_window_completes_when_its_last_frame_left():
    sent_at = [0.1 * (i + 1) for i in range(25)]

    assert window_ends(sent_at, 10) == [sent_at[9], sent_at[19]]


def test_frames_wrap_around_the_fixture():
    pcm = bytes(range(10))

    assert frame_at(pcm, offset=6, index=0, frame_bytes=4) == bytes([6, 7, 8, 9])
    assert frame_at(pcm, offset=6, index=1, frame_bytes=4) == bytes([0, 1, 2, 3])
    assert frame_at(pcm, offset=8, index=0, frame_bytes=4) == bytes([8, 9, 0, 1])


def test_a_window_missing_from_the_acks_or_the_closed_summary_is_dropped():
    summary = load_summary(
        measurements(stream(), stream(acks=2, ack_latencies_s=(0.01, 0.02)), stream(closed_windows=1))
    )

    assert summary["windows_sent"] == 9
    assert summary["windows_dropped"] == 3
    assert rung_verdict(summary) == FAILED


def test_a_stream_without_its_closed_summary_is_an_error_not_a_drop():
    summary = load_summary(measurements(stream(closed_windows=None, errors=["no `closed` summary within 30 s"])))

    assert (summary["windows_dropped"], summary["errors"]) == (0, 1)
    assert rung_verdict(summary) == FAILED


def test_p99_over_every_window_decides_a_clean_rung():
    fast = load_summary(measurements(stream(), stream()))
    slow = load_summary(measurements(stream(), stream(ack_latencies_s=(0.01, 0.02, 0.4))))

    assert fast["ack_p99_ms"] < 150 and rung_verdict(fast) == SUSTAINED
    assert slow["ack_p99_ms"] > 150 and rung_verdict(slow) == FAILED


def test_a_late_client_makes_the_rung_client_bound_not_sustained():
    summary = load_summary(measurements(stream(), slip_p99_s=0.2))

    assert rung_verdict(summary) == CLIENT_BOUND


def test_an_error_frame_fails_the_rung_even_from_a_late_client():
    summary = load_summary(measurements(stream(errors=["audio 4429: too fast"]), slip_p99_s=0.2))

    assert summary["errors"] == 1
    assert rung_verdict(summary) == FAILED


def test_sustained_is_the_highest_rung_before_the_first_that_was_not():
    rungs = [
        {"streams": 50, "result": SUSTAINED},
        {"streams": 100, "result": SUSTAINED},
        {"streams": 150, "result": CLIENT_BOUND},
        {"streams": 200, "result": SUSTAINED},
    ]

    assert ladder_sustained(rungs) == 100
    assert ladder_sustained([{"streams": 50, "result": FAILED}]) == 0


def test_server_cores_come_from_the_samples_inside_the_streaming_phase():
    samples = [(0.0, 0.0), (1.0, 5.0), (2.0, 6.5), (3.0, 8.0), (4.0, 20.0)]

    assert cores_between(samples, 1.0, 3.0) == 1.5
    assert cores_between(samples, 1.5, 1.9) is None
