"""The speaker's running baseline, and how a speech window is read against it: z-scores of
loudness, pitch, pace, range and pauses; scores over the tone vocabulary; confidence; the shift
and its direction; the prosody flags.

Every judgement is relative to the speaker, so this is where a window becomes a tone. It holds
no lock: its one owner, SessionClassifier, calls it under the session's lock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from voice_app.classifier.features import WindowFeatures, pitch_semitones
from voice_app.classifier.tuning import (
    BASELINE_SEED_S,
    BASELINE_TIME_CONSTANT_S,
    INTENSITY_WEIGHT_LEVEL,
    INTENSITY_WEIGHT_PITCH,
    INTENSITY_WEIGHT_RATE,
    MAX_CONFIDENCE,
    SHIFT_DIRECTION_MIN,
    SHIFT_SCALE,
    SHIFT_WEIGHT_BASELINE,
    SHIFT_WEIGHT_TREND,
    SPEECH_MIN_VOICED_FRACTION,
    TREND_WINDOWS,
    Z_LIMIT,
    ramp,
)


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
class BaselineReading:
    """A speech window set against the baseline: shrunk z-scores, intensity, label scores."""

    z_level: float
    z_pitch: float
    z_rate: float
    z_range: float
    z_pause: float
    intensity: float
    scores: dict[str, float]


@dataclass(frozen=True)
class ToneJudgement:
    """What the baseline makes of one speech window, before the confidence threshold."""

    label: str
    confidence: float
    shift_magnitude: float
    shift_direction: str
    prosody_flags: list[str]


class SpeakerBaseline:
    """How this speaker usually sounds (loudness, pitch, pace, range, pauses) and where their
    intensity has been over the last TREND_WINDOWS speech windows."""

    def __init__(self) -> None:
        # The floors on each spread are the window-to-window variation of calm, steady speech:
        # a baseline learned from a few windows must not make ordinary variation look unusual.
        self._level = _RunningStat(min_spread=4.0)
        self._pitch = _RunningStat(min_spread=2.0)
        self._rate = _RunningStat(min_spread=2.0)
        self._range = _RunningStat(min_spread=1.5)
        self._pause = _RunningStat(min_spread=0.15)
        self._recent_intensity: deque[float] = deque(maxlen=TREND_WINDOWS)

    def judge(self, features: WindowFeatures) -> ToneJudgement:
        """Read a speech window against the baseline, then learn from it.

        1. Score every label of the vocabulary from the window's z-scores; the best one wins.
        2. Confidence from how clearly it won, how much of the window is voiced, and how much
           the baseline has heard.
        3. Shift from this window's intensity against the baseline and the recent trend.
        4. Fold the window into the baseline (after judging it, so it is not its own reference).
        """
        reading = self.read(features)
        (label, best), (_, runner_up) = sorted(reading.scores.items(), key=lambda item: item[1], reverse=True)[:2]
        confidence = self._confidence(features=features, best=best, runner_up=runner_up)
        shift_magnitude, shift_direction = self._shift(reading.intensity)
        flags = prosody_flags(features=features, reading=reading)
        self._update(features)
        return ToneJudgement(
            label=label,
            confidence=confidence,
            shift_magnitude=shift_magnitude,
            shift_direction=shift_direction,
            prosody_flags=flags,
        )

    def read(self, features: WindowFeatures) -> BaselineReading:
        """The window's z-scores, intensity and a score for each label of the tone vocabulary."""
        # A baseline seeded from a second of speech knows little about how this speaker varies,
        # so its z-scores are shrunk towards "as usual" until it has heard BASELINE_SEED_S.
        maturity = min(1.0, self._level.weight_s / BASELINE_SEED_S)
        z_level = maturity * self._level.zscore(features.level_dbfs)
        z_pitch = maturity * self._pitch.zscore(pitch_semitones(features.pitch_hz))
        z_rate = maturity * self._rate.zscore(features.syllable_rate)
        z_range = maturity * self._range.zscore(features.pitch_range_st)
        z_pause = maturity * self._pause.zscore(features.pause_ratio)
        intensity = INTENSITY_WEIGHT_LEVEL * z_level + INTENSITY_WEIGHT_PITCH * z_pitch + INTENSITY_WEIGHT_RATE * z_rate
        pausing = ramp(z_pause, 1.0, 2.0) * ramp(features.pause_ratio, 0.2, 0.4)
        questioning = ramp(features.terminal_rise_st or 0.0, 2.0, 3.5)
        lively = max(ramp(z_range, 0.3, 1.5), ramp(z_rate, 0.3, 1.5), ramp(features.pitch_range_st or 0.0, 6.0, 10.0))
        wider = ramp(z_range, 0.5, 2.0)
        scores = {
            "calm": (1.0 - ramp(abs(intensity), 0.6, 1.8)) * (1.0 - pausing) * (1.0 - questioning),
            "animated": ramp(intensity, 0.4, 1.5) * lively,
            "tense": min(ramp(z_level, 0.8, 2.0), ramp(z_pitch, 0.6, 1.8)) * (1.0 - 0.6 * wider),
            "subdued": ramp(-intensity, 0.5, 1.5) * (1.0 - 0.6 * wider),
            "hesitant": pausing * (0.4 + 0.6 * max(ramp(-z_rate, 0.3, 1.3), ramp(-z_level, 0.3, 1.3))),
            "questioning": questioning,
        }
        return BaselineReading(
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
        region = best * (0.4 + 0.6 * ramp(best - runner_up, 0.0, 0.5))
        voicing = 0.35 + 0.65 * ramp(features.voiced_fraction, SPEECH_MIN_VOICED_FRACTION, 0.45)
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

    def _update(self, features: WindowFeatures) -> None:
        weight = features.voiced_s
        self._level.update(features.level_dbfs, weight)
        self._pitch.update(pitch_semitones(features.pitch_hz), weight)
        self._rate.update(features.syllable_rate, weight)
        self._range.update(features.pitch_range_st, weight)
        self._pause.update(features.pause_ratio, weight)


def prosody_flags(*, features: WindowFeatures, reading: BaselineReading) -> list[str]:
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
