"""What one window of audio measures on its own, before any comparison with the speaker: voice
activity, loudness, YIN pitch and its contour, syllable rate and pauses.

Stateless: the only thing a window borrows from its session is the noise floor, passed in (the
pitch tracker reuses its arrays from one window to the next, but never anything left in them).

Every stream classifies about a window a second, so the work is laid out for cost, and nothing
loops over frames in Python: the frame levels come from one set of block sums over the window,
the zero-crossing test runs on the 16-bit samples and only on active frames, and pitch is tracked
only where a frame could be voiced, on the audio decimated to about PITCH_SAMPLE_RATE.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

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
    PITCH_SAMPLE_RATE,
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

FULL_SCALE = 32768.0
_THREE_POINT_MEAN = np.ones(3) / 3.0
_FALSE = np.zeros(1, dtype=bool)
# Every pair of SLOPE_MAX_POINTS points, ordered by the later one, so that the pairs among the
# first n points are the first n(n-1)/2 entries: the Theil-Sen slope's pairs, built once.
_PAIR_LATER, _PAIR_EARLIER = np.tril_indices(SLOPE_MAX_POINTS, k=-1)


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


@dataclass(frozen=True)
class _Framing:
    """How windows at one sample rate are cut into frames, and the rate their pitch is tracked at."""

    frame_length: int
    hop: int
    # Frames start and end on whole blocks, so one set of block sums serves every frame.
    block: int
    # Pitch is tracked on the mean of every `decimation` consecutive samples.
    decimation: int


@functools.lru_cache(maxsize=8)
def _framing(sample_rate: int) -> _Framing:
    """How `sample_rate` is framed and decimated; worked out once per rate."""
    frame_length = round(FRAME_S * sample_rate)
    hop = round(HOP_S * sample_rate)
    # The largest factor that stays at or above PITCH_SAMPLE_RATE and cuts frames and hops into
    # whole decimated samples (2 at 16 kHz, 6 at 48 kHz; 1, no decimation, at 8 or 44.1 kHz).
    decimation = max(
        factor
        for factor in range(1, max(1, sample_rate // PITCH_SAMPLE_RATE) + 1)
        if frame_length % factor == 0 and hop % factor == 0
    )
    return _Framing(frame_length=frame_length, hop=hop, block=math.gcd(frame_length, hop), decimation=decimation)


def measure_window(*, pcm: np.ndarray, sample_rate: int, noise_floor_dbfs: float | None = None) -> WindowFeatures:
    """Measure loudness, voice activity, pitch, pace and pauses of one window of PCM16 audio.

    1. Cut 32 ms frames every 10 ms; per frame: RMS level (dBFS) once its DC offset is removed.
    2. A frame is active when it stands ACTIVITY_MARGIN_DB above the noise floor (the session's,
       or the window's 10th-percentile level, whichever is lower) and above the absolute gate;
       it is voiced when it also has a low zero-crossing rate and is periodic at a pitch in range,
       by a YIN difference function computed for all such frames at once by FFT, on the audio
       decimated to PITCH_SAMPLE_RATE.
    3. From the voiced frames: median pitch, range (p90 - p10 in semitones), slope (Theil-Sen,
       semitones/s), the rise at the end of a phrase-final stretch, and syllable-like peaks of
       the level envelope per voiced second.
    """
    samples = np.asarray(pcm)
    if samples.ndim != 1:
        raise ValueError("pcm must be a one-dimensional array of mono samples")
    if samples.dtype.kind != "i" or samples.dtype.itemsize != 2:
        raise TypeError(f"pcm must hold 16-bit signed samples, not {samples.dtype}")
    samples = np.ascontiguousarray(samples)
    framing = _framing(sample_rate)
    duration_s = samples.size / sample_rate
    if samples.size < framing.frame_length:
        samples = np.pad(samples, (0, framing.frame_length - samples.size))
    frame_count = 1 + (samples.size - framing.frame_length) // framing.hop
    # The samples that some frame covers: the last few milliseconds of a window may be in none.
    covered = samples[: (frame_count - 1) * framing.hop + framing.frame_length]
    frame_sums, power = _frame_sums_and_power(covered=covered, framing=framing)
    frame_dbfs = 10.0 * np.log10(power + EPSILON_POWER)

    ordered_dbfs = np.sort(frame_dbfs)
    quiet_dbfs, floor_dbfs = _percentile(ordered_dbfs, 10), _percentile(ordered_dbfs, 20)
    reference_dbfs = quiet_dbfs
    if noise_floor_dbfs is not None:
        reference_dbfs = min(reference_dbfs, noise_floor_dbfs)
    active = frame_dbfs > max(reference_dbfs + ACTIVITY_MARGIN_DB, ACTIVITY_GATE_DBFS)
    active_index = active.nonzero()[0]
    # Pitch is only looked for where there is something to hear; silence costs no FFTs.
    crossing_rate = _zero_crossing_rate(
        frames=_frames(covered, length=framing.frame_length, hop=framing.hop)[active_index],
        frame_sums=frame_sums[active_index],
    )
    candidates = active_index[crossing_rate < VOICED_MAX_ZERO_CROSSING_RATE]
    voiced_index, voiced_f0_hz = candidates, np.zeros(0)
    if candidates.size:
        f0_hz, aperiodicity = _yin_pitch(
            signal=_decimated(covered, factor=framing.decimation),
            frame_length=framing.frame_length // framing.decimation,
            hop=framing.hop // framing.decimation,
            rows=candidates,
            sample_rate=sample_rate / framing.decimation,
            full_scale=FULL_SCALE * framing.decimation,
            frame_count=frame_count,
        )
        periodic = (aperiodicity < YIN_VOICED_MAX) & (f0_hz >= PITCH_MIN_HZ) & (f0_hz <= PITCH_MAX_HZ)
        voiced_index, voiced_f0_hz = candidates[periodic], f0_hz[periodic]
    voiced = np.zeros(frame_count, dtype=bool)
    voiced[voiced_index] = True
    voiced_frames = int(voiced_index.size)
    voiced_s = voiced_frames * HOP_S

    # Loudness is read on the voiced frames (the vowels), so that how many consonants and
    # pauses a window happens to hold does not move it.
    if voiced_frames:
        level_power = power[voiced_index]
    elif active_index.size:
        level_power = power[active_index]
    else:
        level_power = power
    level_dbfs = 10.0 * math.log10(level_power.sum() / level_power.size + EPSILON_POWER)

    pitch_hz = pitch_range_st = slope = terminal_rise = None
    if voiced_frames:
        semitones = 12.0 * np.log2(voiced_f0_hz / SEMITONE_REFERENCE_HZ)
        pitch_hz = _median(voiced_f0_hz)
        if voiced_frames >= CONTOUR_MIN_VOICED_FRAMES:
            pitch_range_st = spread(semitones)
            slope = _theil_sen_slope(times=voiced_index * HOP_S, values=semitones)
        terminal_rise = _terminal_rise(voiced_index=voiced_index, semitones=semitones, frame_count=frame_count)

    syllable_rate = None
    if voiced_s >= RATE_MIN_VOICED_S:
        syllable_rate = _syllable_peak_count(frame_dbfs=frame_dbfs, voiced=voiced) / voiced_s

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
        active_fraction=active_index.size / frame_count,
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


def _frames(signal: np.ndarray, *, length: int, hop: int) -> np.ndarray:
    """Overlapping frames of `length` samples every `hop` samples, as a view into the contiguous
    `signal` that is only ever read (made by np.ndarray directly: as_strided's checks cost ten
    times as much)."""
    step = signal.itemsize
    count = 1 + (signal.size - length) // hop
    return np.ndarray(shape=(count, length), dtype=signal.dtype, buffer=signal, strides=(hop * step, step))


def _frame_sums_and_power(*, covered: np.ndarray, framing: _Framing) -> tuple[np.ndarray, np.ndarray]:
    """Each frame's sum of samples, and its power (full scale = 1) once its DC offset is removed.

    Frames overlap, so rather than summing each one, the window is summed block by block (frames
    start and end on block edges) and each frame adds up its blocks. The samples are integers and
    every sum stays far below 2**53, so the sums, and the power's numerator, n * sum(x^2) - sum(x)^2,
    are exact in float64.
    """
    blocks = covered.astype(np.float64).reshape(-1, framing.block)
    per_frame, per_hop = framing.frame_length // framing.block, framing.hop // framing.block
    # einsum, not a product with a vector of ones, which would wake BLAS's threads for a sum.
    sums = _frames(np.einsum("ij->i", blocks), length=per_frame, hop=per_hop).sum(axis=1)
    squares = _frames(np.einsum("ij,ij->i", blocks, blocks), length=per_frame, hop=per_hop).sum(axis=1)
    length = framing.frame_length
    return sums, (length * squares - sums * sums) / (length * length * FULL_SCALE * FULL_SCALE)


def _zero_crossing_rate(*, frames: np.ndarray, frame_sums: np.ndarray) -> np.ndarray:
    """The share of steps between samples in each frame that cross the frame's mean (zero, once
    the DC offset is removed). An integer sample lies below a mean exactly when it lies below the
    mean rounded up, so the test runs on the 16-bit samples themselves."""
    length = frames.shape[1]
    below = frames < np.ceil(frame_sums / length).astype(frames.dtype)[:, None]
    return (below[:, 1:] != below[:, :-1]).sum(axis=1, dtype=np.int32) / (length - 1)


def _decimated(covered: np.ndarray, *, factor: int) -> np.ndarray:
    """The window as the pitch tracker hears it: the sum of every `factor` consecutive samples
    (their mean, but for a scale the tracker does not see), in integers.

    Averaging neighbouring samples is the low-pass before the decimation: at 16 kHz it passes the
    pitch of a voice and its first harmonics (450 Hz loses under 1 %), and what folds back from
    above 4 kHz is faint in voiced speech, which is all the tracker has to find a period in.
    """
    signal = covered[0::factor].astype(np.int32)
    for phase in range(1, factor):
        signal += covered[phase::factor]
    return signal


class _PitchArrays:
    """A set of the pitch tracker's large arrays, reused from one window to the next.

    Allocated afresh for every window, their memory went back to the kernel when they were freed
    and was faulted in again, page by page, by the next window: about a quarter of the classifier's
    time. A set grows to every frame of the longest window it has served: about 1.2 MB for 1 s
    windows at 16 kHz.
    """

    def __init__(self) -> None:
        self.layout = (0, 0, 0)

    def ready(self, *, count: int, span: int, frame_length: int, fft_size: int) -> _PitchArrays:
        """Make room for `count` frames of `frame_length` samples, YIN over the first `span`."""
        if self.layout[0] < count or self.layout[1:] != (span, frame_length):
            self.layout = (count, span, frame_length)
            lags = frame_length - span
            # Zeros beyond a frame's samples are the FFTs' padding; nothing writes there later.
            self.frames = np.zeros((count, fft_size))
            self.heads = np.zeros((count, fft_size))
            self.head_spectra = np.empty((count, fft_size // 2 + 1), dtype=complex)
            self.spectra = np.empty((count, fft_size // 2 + 1), dtype=complex)
            self.correlation = np.empty((count, fft_size))
            self.energy = np.empty((count, lags + 1))
            self.running = np.empty((count, lags))
        return self


# The sets not in use, the most recently returned last. Windows are classified on several
# threads at once (deque's appends and pops are thread-safe); as many sets are kept as windows
# were ever tracked at once, up to this many, so a burst of threads leaves no lasting cost.
_SPARE_PITCH_ARRAYS: deque[_PitchArrays] = deque(maxlen=8)


@contextmanager
def _borrowed_pitch_arrays() -> Iterator[_PitchArrays]:
    """A set of pitch arrays for this window alone, given back afterwards: nothing read from it may
    be kept as a view."""
    try:
        arrays = _SPARE_PITCH_ARRAYS.pop()
    except IndexError:
        arrays = _PitchArrays()
    try:
        yield arrays
    finally:
        _SPARE_PITCH_ARRAYS.append(arrays)


def _yin_pitch(
    *,
    signal: np.ndarray,
    frame_length: int,
    hop: int,
    rows: np.ndarray,
    sample_rate: float,
    full_scale: float,
    frame_count: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the f0 estimate (Hz) and the aperiodicity (the YIN dip depth, 0 = periodic) of the
    frames `rows` of `signal` (integer samples, `frame_count` frames of `frame_length` every `hop`).

    1. The difference d(lag) = sum over j < span of (x[j] - x[j + lag])^2, for every frame and
       lag at once, is E(0) + E(lag) - 2 r(lag): E(i) is the energy of x[i:i + span], a
       difference of running totals of the window's squared samples (integers, so exact), and r
       the cross-correlation of x[:span] with x, which comes out of one batch of FFTs (circular,
       but j + lag stays below the frame's length, so it never wraps). d is the same whatever
       the frame's DC offset, so none is removed.
    2. YIN's cumulative mean normalisation: d(lag) over the mean of d at lags 1..lag.
    3. The first local minimum under YIN_DIP_THRESHOLD is the period (else the deepest one),
       refined by parabolic interpolation; its depth is the aperiodicity.
    """
    lag_min = int(sample_rate / PITCH_MAX_HZ)
    lag_max = math.ceil(sample_rate / PITCH_MIN_HZ)
    span = frame_length - lag_max
    fft_size = 1 << math.ceil(math.log2(frame_length))
    with _borrowed_pitch_arrays() as arrays:
        arrays.ready(count=frame_count, span=span, frame_length=frame_length, fft_size=fft_size)
        count = rows.size
        frames, heads, energy = arrays.frames[:count], arrays.heads[:count], arrays.energy[:count]

        totals = np.zeros(signal.size + 1, dtype=np.int64)
        np.square(signal, out=totals[1:], dtype=np.int64)
        np.cumsum(totals, out=totals)
        energy[:] = _frames(totals[span:] - totals[:-span], length=lag_max + 1, hop=hop)[rows]

        frames[:, :frame_length] = _frames(signal, length=frame_length, hop=hop)[rows]
        heads[:, :span] = frames[:, :span]
        spectra = np.fft.rfft(heads, out=arrays.head_spectra[:count])
        np.conjugate(spectra, out=spectra)
        spectra *= np.fft.rfft(frames, out=arrays.spectra[:count])
        # Column k of `difference` and `running` is lag k + 1.
        difference = np.fft.irfft(spectra, fft_size, out=arrays.correlation[:count])[:, 1 : lag_max + 1]
        difference *= -2.0
        difference += energy[:, 1:]
        difference += energy[:, :1]
        np.maximum(difference, 0.0, out=difference)
        running = np.cumsum(difference, axis=1, out=arrays.running[:count])

        # The normalised difference at the candidate lags, with one neighbour either side so that
        # local minima can be found, computed where the running sum was. Everything here is in the
        # signal's units, not full scale's: the normalisation does not care, but the floor that keeps
        # an all-zero frame from dividing by zero has to be in the same units.
        first = lag_min - 2
        around = running[:, first:]
        np.maximum(around, EPSILON_POWER * full_scale * full_scale, out=around)
        np.divide(difference[:, first:], around, out=around)
        around *= np.arange(lag_min - 1, lag_max + 1)
        lags = around[:, 1:-1]
        dips = (lags < around[:, :-2]) & (lags <= around[:, 2:]) & (lags < YIN_DIP_THRESHOLD)
        frame_index = np.arange(count)
        chosen = dips.argmax(axis=1)
        undipped = ~dips[frame_index, chosen]
        if undipped.any():
            chosen[undipped] = lags[undipped].argmin(axis=1)
        before, depth, after = around[frame_index, chosen], lags[frame_index, chosen], around[frame_index, chosen + 2]
        curvature = before - 2.0 * depth + after
        # No parabola through a point that is not a minimum: its offset is 0 (a division by infinity).
        offset = 0.5 * (before - after) / np.where(curvature > 0, curvature, np.inf)
        lag = chosen + lag_min + np.minimum(np.maximum(offset, -0.5), 0.5)
        return sample_rate / lag, depth


def _percentile(ordered: np.ndarray, q: float) -> float:
    """np.percentile's default (linear) estimate, from values sorted already: one sort serves
    several percentiles, without np.percentile's overhead, most of its cost on a window's frames."""
    position = (ordered.size - 1) * (q / 100)
    below = math.floor(position)
    if below >= ordered.size - 1:
        return float(ordered[-1])
    low, high = float(ordered[below]), float(ordered[below + 1])
    fraction = position - below
    # Interpolated from the nearer end, as numpy does, so the result is the same to the last bit.
    if fraction >= 0.5:
        return high - (high - low) * (1 - fraction)
    return low + (high - low) * fraction


def _median(values: np.ndarray) -> float:
    """np.median by partition alone: the middle value, or the mean of the middle two."""
    half = values.size // 2
    if values.size % 2:
        return float(np.partition(values, half)[half])
    low, high = np.partition(values, (half - 1, half))[half - 1 : half + 1]
    return (float(low) + float(high)) / 2


def spread(values: np.ndarray) -> float:
    """The 10th-to-90th percentile spread: a range that a few stray frames cannot stretch."""
    ordered = np.sort(values)
    return _percentile(ordered, 90) - _percentile(ordered, 10)


def pitch_semitones(frequency_hz: float | None) -> float | None:
    """A pitch on the semitone scale the contour features use (relative to SEMITONE_REFERENCE_HZ)."""
    return None if frequency_hz is None else 12.0 * math.log2(frequency_hz / SEMITONE_REFERENCE_HZ)


def _theil_sen_slope(*, times: np.ndarray, values: np.ndarray) -> float:
    """Median of pairwise slopes: a line fit that octave errors and glitches cannot drag."""
    if times.size > SLOPE_MAX_POINTS:
        keep = np.linspace(0, times.size - 1, SLOPE_MAX_POINTS).round().astype(int)
        times, values = times[keep], values[keep]
    pair_count = times.size * (times.size - 1) // 2
    later, earlier = _PAIR_LATER[:pair_count], _PAIR_EARLIER[:pair_count]
    return _median((values[later] - values[earlier]) / (times[later] - times[earlier]))


def _edge_padded(values: np.ndarray, width: int) -> np.ndarray:
    """`values` with its first and last value repeated `width` times (np.pad's "edge" mode)."""
    return np.concatenate((values[:1].repeat(width), values, values[-1:].repeat(width)))


def _terminal_rise(*, voiced_index: np.ndarray, semitones: np.ndarray, frame_count: int) -> float | None:
    """Pitch rise (semitones) at the end of the window's last stretch of voicing, when it ends a phrase."""
    breaks = ((voiced_index[1:] - voiced_index[:-1]) > VOICING_MAX_GAP_FRAMES + 1).nonzero()[0]
    start = int(breaks[-1]) + 1 if breaks.size else 0
    stretch = semitones[start:]
    trailing_frames = frame_count - 1 - int(voiced_index[-1])
    if stretch.size < PHRASE_MIN_FRAMES or trailing_frames * HOP_S < PHRASE_FINAL_MIN_SILENCE_S:
        return None
    # A 3-point median (the larger of the neighbours' smaller one and the middle one capped by
    # the neighbours' larger one) removes single-frame pitch glitches before the trough is looked for.
    padded = _edge_padded(stretch, 1)
    before, after = padded[:-2], padded[2:]
    smooth = np.maximum(np.minimum(before, after), np.minimum(np.maximum(before, after), stretch))
    recent = smooth[-round(TERMINAL_RISE_LOOKBACK_S / HOP_S) :]
    return float(smooth[-3:].sum() / 3 - recent.min())


def _syllable_peak_count(*, frame_dbfs: np.ndarray, voiced: np.ndarray) -> int:
    """Count level peaks that stand out from the dips on both sides and fall on voiced frames."""
    envelope = np.convolve(_edge_padded(frame_dbfs, 1), _THREE_POINT_MEAN, mode="valid")
    count = envelope.size
    radius = round(SYLLABLE_PEAK_RADIUS_S / HOP_S)
    reach = round(SYLLABLE_DIP_RADIUS_S / HOP_S)
    # With `reach` frames of edge on each side, frame i of the envelope is padded[i + reach]; the
    # `width` frames just before it start at padded[i + reach - width], those just after at
    # padded[i + reach + 1].
    padded = _edge_padded(envelope, reach)
    peak = _running_extreme(padded, width=radius, extreme=np.maximum)
    dip = _running_extreme(padded, width=reach, extreme=np.minimum)
    is_peak = (envelope > peak[reach - radius : reach - radius + count]) & (
        envelope >= peak[reach + 1 : reach + 1 + count]
    )
    higher_dip = np.maximum(dip[:count], dip[reach + 1 : reach + 1 + count])
    return int(np.count_nonzero(is_peak & (envelope - higher_dip >= SYLLABLE_MIN_PROMINENCE_DB) & voiced))


def _running_extreme(values: np.ndarray, *, width: int, extreme: np.ufunc) -> np.ndarray:
    """`extreme` (np.maximum or np.minimum) of every `width` consecutive values: item i covers
    values[i : i + width]. Each step combines two overlapping runs into one up to twice as long,
    so a run of 15 takes four whole-array steps rather than a reduction per frame."""
    result, covered = values, 1
    while covered < width:
        step = min(covered, width - covered)
        result = extreme(result[:-step], result[step:])
        covered += step
    return result


def _long_run_total(*, mask: np.ndarray, min_length: int) -> int:
    """Total length of the runs of True in `mask` that are at least `min_length` long."""
    bounded = np.concatenate((_FALSE, mask, _FALSE))
    # Where the value changes: the starts and the ends of the runs of True, alternately.
    edges = (bounded[1:] != bounded[:-1]).nonzero()[0]
    lengths = edges[1::2] - edges[::2]
    return int(lengths[lengths >= min_length].sum())
