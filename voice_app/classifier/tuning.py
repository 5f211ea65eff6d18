"""The classifier's tuning: every threshold, weight and time constant in one place, and `ramp`,
the curve through which a feature's distance past a threshold becomes a 0..1 score.

docs/voice.md gives the reasoning behind each value.
"""

from __future__ import annotations

IN_PROCESS_SPEAKER_ID = "speaker_0"
MIN_SAMPLE_RATE = 8000

# Framing and pitch search.
FRAME_S = 0.032
HOP_S = 0.010
PITCH_MIN_HZ = 60.0
PITCH_MAX_HZ = 450.0
# Pitch is tracked on the audio brought down to about this rate (at 16 kHz, each pair of samples
# averaged into one): the pitch of a voice and the harmonics that carry it lie well below its 4 kHz
# band edge, and the tracker has half the samples and half the lags to go through.
PITCH_SAMPLE_RATE = 8000
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

# Contour, pace and pauses of the voiced frames.
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

# Silence and the background.
DEAD_AIR_AFTER_S = 5.0
# A gap this short after speech is a pause between words, not silence; it only matters for
# windows shorter than itself.
SPEECH_HANGOVER_S = 0.3
SPEAKER_ONSET_AFTER_SILENCE_S = 1.0
NOISE_FLOOR_CHANGE_DB = 6.0
NOISE_FLOOR_CONFIRM_S = 1.0
NOISE_FLOOR_TIME_CONSTANT_S = 5.0

EPSILON_POWER = 1e-12
SEMITONE_REFERENCE_HZ = 100.0


def ramp(value: float, low: float, high: float) -> float:
    """0 at or below `low`, 1 at or above `high`, linear between: how far a feature is into a region."""
    return min(1.0, max(0.0, (value - low) / (high - low)))
