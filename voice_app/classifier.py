"""In-process tone classifier: frame-level signal processing on PCM16 windows, read against a
running per-session baseline of the speaker's loudness, pitch and pace.

The vocabulary it maps onto lives in voice_app.annotation; docs/voice.md explains each feature.
"""

import math
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from voice_app.annotation import tone_annotation

__all__ = [
    "IN_PROCESS_SPEAKER_ID",
    "MAX_SESSIONS",
    "ClassifierCache",
    "SessionClassifier",
    "VoiceEvent",
    "WindowFeatures",
    "measure_window",
]

IN_PROCESS_SPEAKER_ID = "speaker_0"
MIN_SAMPLE_RATE = 8000
# Each classifier holds one session's running baseline (about 9 kB); the least recently used go first.
MAX_SESSIONS = 256

FRAME_S = 0.032
HOP_S = 0.010
PITCH_MIN_HZ = 60.0
PITCH_MAX_HZ = 450.0
# YIN: the first dip of the normalised difference below this is taken as the period, which
# avoids picking a multiple of the period (an octave too low).
YIN_DIP_THRESHOLD = 0.2
# A frame whose best dip stays above this is not periodic enough to be voiced.
YIN_VOICED_MAX = 0.3
# Voiced speech crosses zero rarely; hiss and fricatives cross it on a large share of samples.
VOICED_MAX_ZERO_CROSSING_RATE = 0.3
# Frames quieter than this are never speech, whatever the noise floor (dither, idle line).
ACTIVITY_GATE_DBFS = -60.0
ACTIVITY_MARGIN_DB = 10.0
# The noise floor is not tracked below this: digital zero and dither are the same silence.
FLOOR_MIN_DBFS = -80.0

# A window is speech when enough of it is voiced and the recent active frames rise and fall
# like syllables do; a steady periodic sound (mains hum, a held tone) is voiced but flat.
SPEECH_MIN_VOICED_FRAMES = 3
SPEECH_MIN_VOICED_FRACTION = 0.10
SPEECH_MIN_MODULATION_DB = 4.0
MODULATION_HISTORY_FRAMES = round(1.0 / HOP_S)

PAUSE_MIN_S = 0.15
SYLLABLE_PEAK_RADIUS_S = 0.05
SYLLABLE_DIP_RADIUS_S = 0.15
SYLLABLE_MIN_PROMINENCE_DB = 3.0
RATE_MIN_VOICED_S = 0.25
# Range and slope of fewer voiced frames than this describe one syllable, not a contour.
CONTOUR_MIN_VOICED_FRAMES = 15
# Voiced frames separated by at most this many unvoiced frames belong to one stretch of voicing.
VOICING_MAX_GAP_FRAMES = 3
PHRASE_MIN_FRAMES = 8
# A stretch of voicing is phrase-final when at least this much unvoiced audio follows it in the window.
PHRASE_FINAL_MIN_SILENCE_S = 0.08
TERMINAL_RISE_LOOKBACK_S = 0.3
SLOPE_MAX_POINTS = 120

# Baseline: the first BASELINE_SEED_S of voiced audio is averaged plainly so that no single
# window dominates; after that it follows the speaker with this time constant.
BASELINE_SEED_S = 2.0
BASELINE_TIME_CONSTANT_S = 30.0
Z_LIMIT = 4.0
# Intensity: one number for how strongly the speaker is delivering, in baseline z-scores.
INTENSITY_WEIGHT_LEVEL = 0.45
INTENSITY_WEIGHT_PITCH = 0.35
INTENSITY_WEIGHT_RATE = 0.20
# Shift: this window's intensity against the baseline, and against the last TREND_WINDOWS.
TREND_WINDOWS = 4
SHIFT_WEIGHT_BASELINE = 0.65
SHIFT_WEIGHT_TREND = 0.35
SHIFT_DIRECTION_MIN = 0.6
SHIFT_SCALE = 2.5
# Prosody alone never settles what someone feels, however clear the features are.
MAX_CONFIDENCE = 0.95

DEAD_AIR_AFTER_S = 5.0
# A gap this short after speech is a pause between words, not silence; it only matters for
# windows shorter than itself.
SPEECH_HANGOVER_S = 0.3
SPEAKER_ONSET_AFTER_SILENCE_S = 1.0
NOISE_FLOOR_CHANGE_DB = 6.0
NOISE_FLOOR_CONFIRM_S = 1.0
NOISE_FLOOR_TIME_CONSTANT_S = 5.0

_EPSILON_POWER = 1e-12
_SEMITONE_REFERENCE_HZ = 100.0


@dataclass(frozen=True)
class VoiceEvent:
    """One classifier result; `data` is exactly the event-envelope payload of its type (README, Events)."""

    type: str
    data: dict


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
    frame_dbfs = 10.0 * np.log10(power + _EPSILON_POWER)
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
    level_dbfs = float(10.0 * np.log10(np.mean(level_power) + _EPSILON_POWER))

    pitch_hz = pitch_range_st = slope = terminal_rise = None
    if voiced_frames:
        semitones = 12.0 * np.log2(f0_hz[voiced_index] / _SEMITONE_REFERENCE_HZ)
        pitch_hz = float(np.median(f0_hz[voiced_index]))
        if voiced_frames >= CONTOUR_MIN_VOICED_FRAMES:
            pitch_range_st = _spread(semitones)
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
    normalised[:, 1:] = difference[:, 1:] * np.arange(1, lag_max + 1) / np.maximum(running, _EPSILON_POWER)

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


def _spread(values: np.ndarray) -> float:
    """The 10th-to-90th percentile spread: a range that a few stray frames cannot stretch."""
    low, high = np.percentile(values, [10, 90])
    return float(high - low)


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


def _ramp(value: float, low: float, high: float) -> float:
    """0 at or below `low`, 1 at or above `high`, linear between: how far a feature is into a region."""
    return min(1.0, max(0.0, (value - low) / (high - low)))


@dataclass
class _RunningStat:
    """One baseline feature: its mean and typical deviation over the speaker's voiced audio."""

    min_spread: float
    mean: float = 0.0
    spread: float = 0.0
    weight_s: float = 0.0

    def zscore(self, value: float | None) -> float:
        if value is None or self.weight_s == 0.0:
            return 0.0
        # The spread is a mean absolute deviation, about 0.8 of a standard deviation.
        scale = max(1.25 * self.spread, self.min_spread)
        return max(-Z_LIMIT, min(Z_LIMIT, (value - self.mean) / scale))

    def update(self, value: float | None, weight_s: float) -> None:
        if value is None or weight_s <= 0.0:
            return
        if self.weight_s == 0.0:
            self.mean, self.weight_s = value, weight_s
            return
        if self.weight_s < BASELINE_SEED_S:
            step = weight_s / (self.weight_s + weight_s)
        else:
            step = 1.0 - math.exp(-weight_s / BASELINE_TIME_CONSTANT_S)
        self.spread += step * (abs(value - self.mean) - self.spread)
        self.mean += step * (value - self.mean)
        self.weight_s += weight_s


@dataclass(frozen=True)
class _Reading:
    """A speech window set against the baseline: shrunk z-scores, intensity, label scores."""

    z_level: float
    z_pitch: float
    z_rate: float
    z_range: float
    z_pause: float
    intensity: float
    scores: dict[str, float]


class SessionClassifier:
    """Per-session state: running baseline of the speaker's loudness/pitch/rate, recent trend,
    silence run, noise floor. One instance per session; classify() may be called from any thread."""

    def __init__(self, *, sample_rate: int, elcor: bool = False, confidence_threshold: float = 0.10) -> None:
        if sample_rate < MIN_SAMPLE_RATE:
            raise ValueError(f"sample_rate must be at least {MIN_SAMPLE_RATE} Hz, got {sample_rate}")
        if not 0.0 <= confidence_threshold <= 1.0:
            raise ValueError(f"confidence_threshold must be within 0..1, got {confidence_threshold}")
        self.sample_rate = sample_rate
        self.elcor = elcor
        self.confidence_threshold = confidence_threshold
        # classify() runs in a worker thread; two windows of one session handed to two threads
        # must still update its state one after the other.
        self._lock = threading.Lock()
        # The floors on each spread are the window-to-window variation of calm, steady speech:
        # a baseline learned from a few windows must not make ordinary variation look unusual.
        self._level = _RunningStat(min_spread=4.0)
        self._pitch = _RunningStat(min_spread=2.0)
        self._rate = _RunningStat(min_spread=2.0)
        self._range = _RunningStat(min_spread=1.5)
        self._pause = _RunningStat(min_spread=0.15)
        self._recent_intensity: deque[float] = deque(maxlen=TREND_WINDOWS)
        self._history_dbfs: deque[float] = deque(maxlen=MODULATION_HISTORY_FRAMES)
        self._history_active: deque[bool] = deque(maxlen=MODULATION_HISTORY_FRAMES)
        self._noise_floor_dbfs: float | None = None
        # Consecutive non-speech windows away from the floor: (start, duration, floor level).
        self._floor_candidate: list[tuple[float, float, float]] = []
        self._last_speech_end: float | None = None
        self._silence_start: float | None = None
        self._silence_s = 0.0
        self._silence_confidence_s = 0.0
        self._dead_air_reported = False

    def classify(self, pcm: np.ndarray, *, start: float, end: float) -> list[VoiceEvent]:
        """Classify one window of int16 mono samples spanning `start`..`end` seconds of the stream."""
        if np.asarray(pcm).size == 0:
            return []
        start, end = float(start), float(end)
        with self._lock:
            features = measure_window(pcm=pcm, sample_rate=self.sample_rate, noise_floor_dbfs=self._noise_floor_dbfs)
            modulation_db = self._recent_modulation_db(features)
            self._history_dbfs.extend(features.frame_dbfs.tolist())
            self._history_active.extend(features.frame_active.tolist())
            if (
                features.voiced_frames >= SPEECH_MIN_VOICED_FRAMES
                and features.voiced_fraction >= SPEECH_MIN_VOICED_FRACTION
                and modulation_db >= SPEECH_MIN_MODULATION_DB
            ):
                return self._speech_events(features=features, modulation_db=modulation_db, start=start, end=end)
            return self._non_speech_events(features=features, modulation_db=modulation_db, start=start, end=end)

    def _recent_modulation_db(self, features: WindowFeatures) -> float:
        """Level spread of the active frames over this window, or over the last second when it is shorter."""
        earlier = min(len(self._history_dbfs), max(0, MODULATION_HISTORY_FRAMES - features.frame_count))
        first = len(self._history_dbfs) - earlier
        levels = np.concatenate((np.array(self._history_dbfs)[first:], features.frame_dbfs))
        active = np.concatenate((np.array(self._history_active, dtype=bool)[first:], features.frame_active))
        if np.count_nonzero(active) < 2:
            return 0.0
        return _spread(levels[active])

    def _speech_events(
        self, *, features: WindowFeatures, modulation_db: float, start: float, end: float
    ) -> list[VoiceEvent]:
        events = []
        if self._last_speech_end is None or self._silence_s >= SPEAKER_ONSET_AFTER_SILENCE_S:
            voicing = _ramp(features.voiced_fraction, SPEECH_MIN_VOICED_FRACTION, 0.4)
            syllabic = _ramp(modulation_db, SPEECH_MIN_MODULATION_DB, 2 * SPEECH_MIN_MODULATION_DB)
            onset = start + (features.speech_onset_s or 0.0)
            events.append(_labelled_event("speaker", IN_PROCESS_SPEAKER_ID, 0.5 + 0.5 * voicing * syllabic, onset, end))
        self._last_speech_end = end
        self._end_silence()
        # A noise floor move only counts when it holds across uninterrupted non-speech audio.
        self._floor_candidate.clear()

        reading = self._read_against_baseline(features)
        (label, best), (_, runner_up) = sorted(reading.scores.items(), key=lambda item: item[1], reverse=True)[:2]
        confidence = self._confidence(features=features, best=best, runner_up=runner_up)
        shift_magnitude, shift_direction = self._shift(reading.intensity)
        flags = _prosody_flags(features=features, reading=reading)
        self._update_baseline(features)
        if confidence < self.confidence_threshold:
            return events
        data = {
            "label": label,
            "confidence": round(confidence, 3),
            "speaker_id": IN_PROCESS_SPEAKER_ID,
            "shift_magnitude": round(shift_magnitude, 3),
            "shift_direction": shift_direction,
            **tone_annotation(label=label, confidence=confidence, shift_direction=shift_direction, elcor=self.elcor),
            "prosody_flags": flags,
            "start": round(start, 3),
            "end": round(end, 3),
        }
        events.append(VoiceEvent(type="tone", data=data))
        return events

    def _read_against_baseline(self, features: WindowFeatures) -> _Reading:
        # A baseline seeded from a second of speech knows little about how this speaker varies,
        # so its z-scores are shrunk towards "as usual" until it has heard BASELINE_SEED_S.
        maturity = min(1.0, self._level.weight_s / BASELINE_SEED_S)
        z_level = maturity * self._level.zscore(features.level_dbfs)
        z_pitch = maturity * self._pitch.zscore(_semitones(features.pitch_hz))
        z_rate = maturity * self._rate.zscore(features.syllable_rate)
        z_range = maturity * self._range.zscore(features.pitch_range_st)
        z_pause = maturity * self._pause.zscore(features.pause_ratio)
        intensity = INTENSITY_WEIGHT_LEVEL * z_level + INTENSITY_WEIGHT_PITCH * z_pitch + INTENSITY_WEIGHT_RATE * z_rate
        pausing = _ramp(z_pause, 1.0, 2.0) * _ramp(features.pause_ratio, 0.2, 0.4)
        questioning = _ramp(features.terminal_rise_st or 0.0, 2.0, 3.5)
        lively = max(
            _ramp(z_range, 0.3, 1.5), _ramp(z_rate, 0.3, 1.5), _ramp(features.pitch_range_st or 0.0, 6.0, 10.0)
        )
        wider = _ramp(z_range, 0.5, 2.0)
        scores = {
            "calm": (1.0 - _ramp(abs(intensity), 0.6, 1.8)) * (1.0 - pausing) * (1.0 - questioning),
            "animated": _ramp(intensity, 0.4, 1.5) * lively,
            "tense": min(_ramp(z_level, 0.8, 2.0), _ramp(z_pitch, 0.6, 1.8)) * (1.0 - 0.6 * wider),
            "subdued": _ramp(-intensity, 0.5, 1.5) * (1.0 - 0.6 * wider),
            "hesitant": pausing * (0.4 + 0.6 * max(_ramp(-z_rate, 0.3, 1.3), _ramp(-z_level, 0.3, 1.3))),
            "questioning": questioning,
        }
        return _Reading(
            z_level=z_level,
            z_pitch=z_pitch,
            z_rate=z_rate,
            z_range=z_range,
            z_pause=z_pause,
            intensity=intensity,
            scores=scores,
        )

    def _confidence(self, *, features: WindowFeatures, best: float, runner_up: float) -> float:
        """How far to trust the label, from 0 to MAX_CONFIDENCE.

        1. Region: how deep the features sit in the winning label's region, discounted when the
           runner-up label fits nearly as well.
        2. Evidence: the share of voiced frames, and the window's length (a 100 ms window hears
           about one syllable).
        3. Baseline: until the speaker's baseline holds BASELINE_SEED_S of voiced audio, every
           relative judgement is provisional.
        """
        region = best * (0.4 + 0.6 * _ramp(best - runner_up, 0.0, 0.5))
        voicing = 0.35 + 0.65 * _ramp(features.voiced_fraction, SPEECH_MIN_VOICED_FRACTION, 0.45)
        length = math.sqrt(min(1.0, features.duration_s))
        baseline = 0.5 + 0.5 * min(1.0, self._level.weight_s / BASELINE_SEED_S)
        return MAX_CONFIDENCE * region * voicing * length * baseline

    def _shift(self, intensity: float) -> tuple[float, str]:
        """Shift magnitude (0..1) and direction from the distance to the baseline and the recent trend."""
        trend = intensity - sum(self._recent_intensity) / len(self._recent_intensity) if self._recent_intensity else 0.0
        self._recent_intensity.append(intensity)
        shift = SHIFT_WEIGHT_BASELINE * intensity + SHIFT_WEIGHT_TREND * trend
        if shift >= SHIFT_DIRECTION_MIN:
            direction = "escalating"
        elif shift <= -SHIFT_DIRECTION_MIN:
            direction = "de-escalating"
        else:
            direction = "stable"
        return math.tanh(abs(shift) / SHIFT_SCALE), direction

    def _update_baseline(self, features: WindowFeatures) -> None:
        weight = features.voiced_s
        self._level.update(features.level_dbfs, weight)
        self._pitch.update(_semitones(features.pitch_hz), weight)
        self._rate.update(features.syllable_rate, weight)
        self._range.update(features.pitch_range_st, weight)
        self._pause.update(features.pause_ratio, weight)

    def _non_speech_events(
        self, *, features: WindowFeatures, modulation_db: float, start: float, end: float
    ) -> list[VoiceEvent]:
        events = []
        floor_change = self._track_noise_floor(features=features, start=start, end=end)
        if floor_change is not None:
            events.append(floor_change)

        # Voicing, or activity that rises and falls like syllables, too little to count as
        # speech still makes the silence less certain: a whisper is active but never voiced.
        syllabic = _ramp(modulation_db, SPEECH_MIN_MODULATION_DB / 2, SPEECH_MIN_MODULATION_DB)
        doubt = syllabic * max(
            _ramp(features.voiced_fraction, 0.0, SPEECH_MIN_VOICED_FRACTION), 0.5 * features.active_fraction
        )
        silence_confidence = 1.0 - 0.6 * doubt
        if self._silence_start is None:
            self._silence_start = start
        self._silence_s += features.duration_s
        self._silence_confidence_s += silence_confidence * features.duration_s
        if self._last_speech_end is None or end - self._last_speech_end > SPEECH_HANGOVER_S:
            events.append(_labelled_event("queue", "silence", silence_confidence, start, end))
        if self._silence_s >= DEAD_AIR_AFTER_S and not self._dead_air_reported:
            self._dead_air_reported = True
            mean_confidence = self._silence_confidence_s / self._silence_s
            events.append(_labelled_event("queue", "dead_air", mean_confidence, self._silence_start, end))
        return events

    def _end_silence(self) -> None:
        self._silence_start = None
        self._silence_s = 0.0
        self._silence_confidence_s = 0.0
        self._dead_air_reported = False

    def _track_noise_floor(self, *, features: WindowFeatures, start: float, end: float) -> VoiceEvent | None:
        """Follow the background level; report a move once it has held for NOISE_FLOOR_CONFIRM_S."""
        level = max(features.floor_dbfs, FLOOR_MIN_DBFS)
        if self._noise_floor_dbfs is None:
            self._noise_floor_dbfs = level
            return None
        deviation = level - self._noise_floor_dbfs
        if abs(deviation) <= NOISE_FLOOR_CHANGE_DB:
            self._floor_candidate.clear()
            self._noise_floor_dbfs += (1.0 - math.exp(-features.duration_s / NOISE_FLOOR_TIME_CONSTANT_S)) * deviation
            return None
        if self._floor_candidate and (self._floor_candidate[0][2] - self._noise_floor_dbfs) * deviation < 0:
            self._floor_candidate.clear()
        self._floor_candidate.append((start, features.duration_s, level))
        held_s = sum(duration for _, duration, _ in self._floor_candidate)
        if held_s < NOISE_FLOOR_CONFIRM_S:
            return None
        new_floor = sum(duration * value for _, duration, value in self._floor_candidate) / held_s
        moved_db = abs(new_floor - self._noise_floor_dbfs)
        changed_at = self._floor_candidate[0][0]
        self._noise_floor_dbfs = new_floor
        self._floor_candidate.clear()
        confidence = 0.5 + 0.5 * _ramp(moved_db, NOISE_FLOOR_CHANGE_DB, 3 * NOISE_FLOOR_CHANGE_DB)
        return _labelled_event("environ", "noise_floor_change", confidence, changed_at, end)


class ClassifierCache:
    """A bounded LRU of per-session classifiers, each with a lock that keeps its windows in order."""

    def __init__(self, *, sample_rate: int, confidence_threshold: float, max_sessions: int = MAX_SESSIONS) -> None:
        self.sample_rate = sample_rate
        self.confidence_threshold = confidence_threshold
        self.max_sessions = max_sessions
        self.entries: OrderedDict[tuple[str, bool], tuple[SessionClassifier, threading.Lock]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, *, session_id: str, elcor: bool) -> tuple[SessionClassifier, threading.Lock]:
        key = (session_id, elcor)
        with self.lock:
            entry = self.entries.get(key)
            if entry is None:
                classifier = SessionClassifier(
                    sample_rate=self.sample_rate, elcor=elcor, confidence_threshold=self.confidence_threshold
                )
                entry = self.entries[key] = (classifier, threading.Lock())
                while len(self.entries) > self.max_sessions:
                    self.entries.popitem(last=False)
            else:
                self.entries.move_to_end(key)
            return entry

    def __len__(self) -> int:
        return len(self.entries)


def _prosody_flags(*, features: WindowFeatures, reading: _Reading) -> list[str]:
    """Name what stands out in the delivery: relative to the baseline for level, pitch, pace and
    pauses; absolute for the contour."""
    flags = []
    if reading.z_level >= 1.0:
        flags.append("loud")
    elif reading.z_level <= -1.0:
        flags.append("soft")
    if reading.z_pitch >= 1.0:
        flags.append("high_pitch")
    elif reading.z_pitch <= -1.0:
        flags.append("low_pitch")
    slope = features.pitch_slope_st_per_s or 0.0
    if slope >= 6.0 or (features.terminal_rise_st or 0.0) >= 2.0:
        flags.append("rising_pitch")
    elif slope <= -6.0:
        flags.append("falling_pitch")
    if features.pitch_range_st is not None:
        if features.pitch_range_st >= 7.0 or reading.z_range >= 1.5:
            flags.append("wide_range")
        elif features.pitch_range_st <= 1.5:
            flags.append("monotone")
    # Syllable counts in one window are small numbers, so pace needs a clearer departure.
    if reading.z_rate >= 1.25:
        flags.append("fast")
    elif reading.z_rate <= -1.25:
        flags.append("slow")
    if reading.z_pause >= 1.0 and features.pause_ratio >= 0.15:
        flags.append("pauses")
    return flags


def _semitones(frequency_hz: float | None) -> float | None:
    return None if frequency_hz is None else 12.0 * math.log2(frequency_hz / _SEMITONE_REFERENCE_HZ)


def _labelled_event(kind: str, label: str, confidence: float, start: float, end: float) -> VoiceEvent:
    """A speaker, queue or environ event: the envelope gives them the same four fields."""
    return VoiceEvent(
        type=kind,
        data={"label": label, "confidence": round(confidence, 3), "start": round(start, 3), "end": round(end, 3)},
    )
