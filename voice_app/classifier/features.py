"""What one window of audio measures on its own, before any comparison with the speaker: voice
activity, loudness, YIN pitch and its contour, syllable rate and pauses.

Stateless: the only thing a window borrows from its session is the noise floor, passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from voice_app.classifier.tuning import (
    ACTIVITY_GATE_DBFS,
    ACTIVITY_MARGIN_DB,
    CONTOUR_MIN_VOICED_FRAMES,
    EPSILON_POWER,
    FRAME_S,
    HOP_S,
    PAUSE_MIN_S,
    PHRASE_FINAL_MIN_SILENCE_S,
    PHRASE_MIN_FRAMES,
    PITCH_MAX_HZ,
    PITCH_MIN_HZ,
    RATE_MIN_VOICED_S,
    SEMITONE_REFERENCE_HZ,
    SLOPE_MAX_POINTS,
    SYLLABLE_DIP_RADIUS_S,
    SYLLABLE_MIN_PROMINENCE_DB,
    SYLLABLE_PEAK_RADIUS_S,
    TERMINAL_RISE_LOOKBACK_S,
    VOICED_MAX_ZERO_CROSSING_RATE,
    VOICING_MAX_GAP_FRAMES,
    YIN_DIP_THRESHOLD,
    YIN_VOICED_MAX,
)


@dataclass(frozen=True)
class WindowFeatures:
    """What one window of audio measures, before any comparison with the session baseline."""

    duration_s: float
    frame_count: int
    level_dbfs: float
    floor_dbfs: float
    active_fraction: float
    voiced_fraction: float
    voiced_frames: int
    voiced_s: float
    pitch_hz: float | None
    pitch_range_st: float | None
    pitch_slope_st_per_s: float | None
    terminal_rise_st: float | None
    syllable_rate: float | None
    pause_ratio: float
    speech_onset_s: float | None
    frame_dbfs: np.ndarray = field(repr=False, compare=False)
    frame_active: np.ndarray = field(repr=False, compare=False)


def measure_window(*, pcm: np.ndarray, sample_rate: int, noise_floor_dbfs: float | None = None) -> WindowFeatures:
    """Measure loudness, voice activity, pitch, pace and pauses of one window of PCM16 audio.

    1. Cut 32 ms frames every 10 ms; per frame: RMS level (dBFS), zero-crossing rate, and the
       period from a YIN difference function computed for all frames at once by FFT.
    2. A frame is active when it stands ACTIVITY_MARGIN_DB above the noise floor (the session's,
       or the window's 10th-percentile level, whichever is lower) and above the absolute gate;
       it is voiced when it is also periodic and has a low zero-crossing rate.
    3. From the voiced frames: median pitch, range (p90 - p10 in semitones), slope (Theil-Sen,
       semitones/s), the rise at the end of a phrase-final stretch, and syllable-like peaks of
       the level envelope per voiced second.
    """
    samples = np.asarray(pcm)
    if samples.ndim != 1:
        raise ValueError("pcm must be a one-dimensional array of mono samples")
    if samples.dtype.kind != "i" or samples.dtype.itemsize != 2:
        raise TypeError(f"pcm must hold 16-bit signed samples, not {samples.dtype}")
    frame_length = round(FRAME_S * sample_rate)
    hop = round(HOP_S * sample_rate)
    duration_s = samples.size / sample_rate
    signal = samples.astype(np.float64) / 32768.0
    if signal.size < frame_length:
        signal = np.pad(signal, (0, frame_length - signal.size))
    frames = sliding_window_view(signal, frame_length)[::hop]
    # A DC offset from a cheap microphone would otherwise read as loudness.
    frames = frames - frames.mean(axis=1, keepdims=True)
    frame_count = frames.shape[0]

    power = np.mean(frames * frames, axis=1)
    frame_dbfs = 10.0 * np.log10(power + EPSILON_POWER)
    sign = np.signbit(frames)
    zero_crossing_rate = np.count_nonzero(sign[:, 1:] != sign[:, :-1], axis=1) / (frame_length - 1)

    quiet_dbfs, floor_dbfs = (float(value) for value in np.percentile(frame_dbfs, [10, 20]))
    reference_dbfs = quiet_dbfs
    if noise_floor_dbfs is not None:
        reference_dbfs = min(reference_dbfs, noise_floor_dbfs)
    active = frame_dbfs > max(reference_dbfs + ACTIVITY_MARGIN_DB, ACTIVITY_GATE_DBFS)
    # Pitch is only looked for where there is something to hear; silence costs no FFTs.
    candidates = np.flatnonzero(active & (zero_crossing_rate < VOICED_MAX_ZERO_CROSSING_RATE))
    f0_hz = np.zeros(frame_count)
    aperiodicity = np.ones(frame_count)
    if candidates.size:
        f0_hz[candidates], aperiodicity[candidates] = _yin_pitch(frames=frames[candidates], sample_rate=sample_rate)
    voiced = (aperiodicity < YIN_VOICED_MAX) & (f0_hz >= PITCH_MIN_HZ) & (f0_hz <= PITCH_MAX_HZ)
    voiced_index = np.flatnonzero(voiced)
    voiced_frames = int(voiced_index.size)
    voiced_s = voiced_frames * HOP_S

    # Loudness is read on the voiced frames (the vowels), so that how many consonants and
    # pauses a window happens to hold does not move it.
    if voiced_frames:
        level_power = power[voiced]
    elif active.any():
        level_power = power[active]
    else:
        level_power = power
    level_dbfs = float(10.0 * np.log10(np.mean(level_power) + EPSILON_POWER))

    pitch_hz = pitch_range_st = slope = terminal_rise = None
    if voiced_frames:
        semitones = 12.0 * np.log2(f0_hz[voiced_index] / SEMITONE_REFERENCE_HZ)
        pitch_hz = float(np.median(f0_hz[voiced_index]))
        if voiced_frames >= CONTOUR_MIN_VOICED_FRAMES:
            pitch_range_st = spread(semitones)
            slope = _theil_sen_slope(times=voiced_index * HOP_S, values=semitones)
        terminal_rise = _terminal_rise(voiced_index=voiced_index, semitones=semitones, frame_count=frame_count)

    syllable_rate = None
    if voiced_s >= RATE_MIN_VOICED_S:
        syllable_rate = _syllable_peak_count(frame_dbfs=frame_dbfs, voiced=voiced) / voiced_s

    active_index = np.flatnonzero(active)
    pause_ratio = 0.0
    speech_onset_s = None
    if active_index.size:
        inner = ~active[active_index[0] : active_index[-1] + 1]
        pause_ratio = _long_run_total(mask=inner, min_length=round(PAUSE_MIN_S / HOP_S)) / frame_count
        speech_onset_s = float(active_index[0] * HOP_S)

    return WindowFeatures(
        duration_s=duration_s,
        frame_count=frame_count,
        level_dbfs=level_dbfs,
        floor_dbfs=floor_dbfs,
        active_fraction=float(active.mean()),
        voiced_fraction=voiced_frames / frame_count,
        voiced_frames=voiced_frames,
        voiced_s=voiced_s,
        pitch_hz=pitch_hz,
        pitch_range_st=pitch_range_st,
        pitch_slope_st_per_s=slope,
        terminal_rise_st=terminal_rise,
        syllable_rate=syllable_rate,
        pause_ratio=pause_ratio,
        speech_onset_s=speech_onset_s,
        frame_dbfs=frame_dbfs,
        frame_active=active,
    )


def _yin_pitch(*, frames: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Return each frame's f0 estimate (Hz) and its aperiodicity (the YIN dip depth, 0 = periodic)."""
    frame_count, frame_length = frames.shape
    lag_min = int(sample_rate / PITCH_MAX_HZ)
    lag_max = math.ceil(sample_rate / PITCH_MIN_HZ)
    span = frame_length - lag_max
    # d(lag) = sum (x[j] - x[j + lag])^2 over j < span, expanded into two energies and a
    # cross-correlation so that every frame and lag comes out of one batch of FFTs. The
    # correlation is circular, but j + lag stays below frame_length, so it never wraps.
    fft_size = 1 << math.ceil(math.log2(frame_length))
    spectrum = np.conj(np.fft.rfft(frames[:, :span], fft_size)) * np.fft.rfft(frames, fft_size)
    cross = np.fft.irfft(spectrum, fft_size)[:, : lag_max + 1]
    energy = np.zeros((frame_count, frame_length + 1))
    np.cumsum(frames * frames, axis=1, out=energy[:, 1:])
    shifted_energy = energy[:, span : span + lag_max + 1] - energy[:, : lag_max + 1]
    difference = np.maximum(energy[:, span : span + 1] + shifted_energy - 2.0 * cross, 0.0)
    normalised = np.ones_like(difference)
    running = np.cumsum(difference[:, 1:], axis=1)
    normalised[:, 1:] = difference[:, 1:] * np.arange(1, lag_max + 1) / np.maximum(running, EPSILON_POWER)

    # The candidate lags with one neighbour either side, so local minima can be found.
    around = normalised[:, lag_min - 1 : lag_max + 1]
    lags = around[:, 1:-1]
    local_minimum = (lags < around[:, :-2]) & (lags <= around[:, 2:])
    dips = local_minimum & (lags < YIN_DIP_THRESHOLD)
    chosen = np.where(dips.any(axis=1), np.argmax(dips, axis=1), np.argmin(lags, axis=1))
    rows = np.arange(frame_count)
    before, depth, after = around[rows, chosen], lags[rows, chosen], around[rows, chosen + 2]
    curvature = before - 2.0 * depth + after
    offset = np.where(curvature > 0, 0.5 * (before - after) / np.where(curvature > 0, curvature, 1.0), 0.0)
    lag = chosen + lag_min + np.clip(offset, -0.5, 0.5)
    return sample_rate / lag, depth


def spread(values: np.ndarray) -> float:
    """The 10th-to-90th percentile spread: a range that a few stray frames cannot stretch."""
    low, high = np.percentile(values, [10, 90])
    return float(high - low)


def pitch_semitones(frequency_hz: float | None) -> float | None:
    """A pitch on the semitone scale the contour features use (relative to SEMITONE_REFERENCE_HZ)."""
    return None if frequency_hz is None else 12.0 * math.log2(frequency_hz / SEMITONE_REFERENCE_HZ)


def _theil_sen_slope(*, times: np.ndarray, values: np.ndarray) -> float:
    """Median of pairwise slopes: a line fit that octave errors and glitches cannot drag."""
    if times.size > SLOPE_MAX_POINTS:
        keep = np.linspace(0, times.size - 1, SLOPE_MAX_POINTS).round().astype(int)
        times, values = times[keep], values[keep]
    first, second = np.triu_indices(times.size, k=1)
    return float(np.median((values[second] - values[first]) / (times[second] - times[first])))


def _terminal_rise(*, voiced_index: np.ndarray, semitones: np.ndarray, frame_count: int) -> float | None:
    """Pitch rise (semitones) at the end of the window's last stretch of voicing, when it ends a phrase."""
    breaks = np.flatnonzero(np.diff(voiced_index) > VOICING_MAX_GAP_FRAMES + 1)
    start = int(breaks[-1]) + 1 if breaks.size else 0
    stretch = semitones[start:]
    trailing_frames = frame_count - 1 - int(voiced_index[-1])
    if stretch.size < PHRASE_MIN_FRAMES or trailing_frames * HOP_S < PHRASE_FINAL_MIN_SILENCE_S:
        return None
    # A 3-point median removes single-frame pitch glitches before the trough is looked for.
    padded = np.pad(stretch, 1, mode="edge")
    smooth = np.median(sliding_window_view(padded, 3), axis=1)
    recent = smooth[-round(TERMINAL_RISE_LOOKBACK_S / HOP_S) :]
    return float(np.mean(smooth[-3:]) - np.min(recent))


def _syllable_peak_count(*, frame_dbfs: np.ndarray, voiced: np.ndarray) -> int:
    """Count level peaks that stand out from the dips on both sides and fall on voiced frames."""
    envelope = np.convolve(np.pad(frame_dbfs, 1, mode="edge"), np.ones(3) / 3.0, mode="valid")
    radius = round(SYLLABLE_PEAK_RADIUS_S / HOP_S)
    reach = round(SYLLABLE_DIP_RADIUS_S / HOP_S)
    near = sliding_window_view(np.pad(envelope, radius, mode="edge"), 2 * radius + 1)
    is_peak = (envelope > near[:, :radius].max(axis=1)) & (envelope >= near[:, radius + 1 :].max(axis=1))
    around = sliding_window_view(np.pad(envelope, reach, mode="edge"), 2 * reach + 1)
    higher_dip = np.maximum(around[:, :reach].min(axis=1), around[:, reach + 1 :].min(axis=1))
    prominent = envelope - higher_dip >= SYLLABLE_MIN_PROMINENCE_DB
    return int(np.count_nonzero(is_peak & prominent & voiced))


def _long_run_total(*, mask: np.ndarray, min_length: int) -> int:
    """Total length of the runs of True in `mask` that are at least `min_length` long."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    lengths = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    return int(lengths[lengths >= min_length].sum())
