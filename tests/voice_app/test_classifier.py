"""The in-process classifier on synthetic signals and on the WAV fixtures, streamed in windows."""

import json
import math
import threading
import wave
from collections import Counter

import numpy as np
import pytest

from tests.voice_app.conftest import FIXTURES, SAMPLE_RATE, assert_tone_shape, wav_samples
from voice_app.annotation import TONE_LABELS
from voice_app.classifier import IN_PROCESS_SPEAKER_ID, SessionClassifier, VoiceEvent, measure_window
from voice_app.classifier.baseline import SpeakerBaseline
from voice_app.classifier.features import spread

PROSODY_FLAGS = {
    "loud",
    "soft",
    "high_pitch",
    "low_pitch",
    "rising_pitch",
    "falling_pitch",
    "wide_range",
    "monotone",
    "fast",
    "slow",
    "pauses",
}


def stream(
    classifier: SessionClassifier, pcm: np.ndarray, *, start: float = 0.0, window_s: float = 1.0
) -> list[VoiceEvent]:
    """Feed `pcm` window by window, as the ingest pipeline does, from `start` seconds on."""
    step = round(window_s * SAMPLE_RATE)
    events = []
    for offset in range(0, pcm.size, step):
        window = pcm[offset : offset + step]
        begin = start + offset / SAMPLE_RATE
        events += classifier.classify(window, start=begin, end=begin + window.size / SAMPLE_RATE)
    return events


def tones(events: list[VoiceEvent]) -> list[dict]:
    return [event.data for event in events if event.type == "tone"]


def duration_of(pcm: np.ndarray) -> float:
    return pcm.size / SAMPLE_RATE


def harmonic_tone(*, f0: float, seconds: float, amplitude: float = 0.3, glide_to: float | None = None) -> np.ndarray:
    """A voiced-like signal: a fundamental and four harmonics, optionally gliding in pitch."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    if glide_to is None:
        phase = 2 * np.pi * f0 * t
    else:
        # An exponential glide is a straight line in semitones.
        ratio = glide_to / f0
        phase = 2 * np.pi * f0 * seconds / math.log(ratio) * (ratio ** (t / seconds) - 1)
    signal = sum(np.sin(k * phase) / k for k in range(1, 6))
    return (amplitude * signal / np.max(np.abs(signal)) * 32767).astype(np.int16)


def hum(*, mains_hz: float, seconds: float, amplitude: float = 0.05) -> np.ndarray:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    signal = sum(amplitude / k * np.sin(2 * np.pi * mains_hz * k * t + k) for k in range(1, 8))
    return (signal * 32767).astype(np.int16)


@pytest.mark.parametrize("name", ["calm", "loud_high", "fast", "question", "silence", "noise"])
def test_fixture_is_a_small_16k_mono_pcm16_file(name):
    path = FIXTURES / f"{name}.wav"
    with wave.open(str(path)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (SAMPLE_RATE, 1, 2)
        assert wav.getnframes() / SAMPLE_RATE <= 8.0
    assert path.stat().st_size <= 260_000


# --- feature extraction on synthetic signals -------------------------------------------------


@pytest.mark.parametrize("f0", [110.0, 200.0, 320.0])
def test_pitch_of_a_harmonic_tone_is_its_fundamental(f0):
    features = measure_window(pcm=harmonic_tone(f0=f0, seconds=1.0), sample_rate=SAMPLE_RATE, noise_floor_dbfs=-90.0)

    assert features.voiced_fraction > 0.9
    assert features.pitch_hz == pytest.approx(f0, rel=0.01)
    assert features.pitch_range_st < 0.2


def test_pitch_is_measured_at_8_khz_too():
    t = np.arange(8000) / 8000
    pcm = (0.3 * 32767 * sum(np.sin(2 * np.pi * 200 * k * t) / k for k in range(1, 4)) / 1.5).astype(np.int16)

    features = measure_window(pcm=pcm, sample_rate=8000, noise_floor_dbfs=-90.0)

    assert features.pitch_hz == pytest.approx(200.0, rel=0.01)


@pytest.mark.parametrize("sample_rate", [22050, 24000, 44100, 48000])
def test_pitch_is_the_same_whether_the_pitch_tracker_decimates_or_not(sample_rate):
    """22.05 and 24 kHz are tracked at half and a third of their rate, 48 kHz at a sixth, 44.1 kHz as it is."""
    t = np.arange(sample_rate) / sample_rate
    pcm = (0.3 * 32767 * sum(np.sin(2 * np.pi * 180 * k * t) / k for k in range(1, 6)) / 2.3).astype(np.int16)

    features = measure_window(pcm=pcm, sample_rate=sample_rate, noise_floor_dbfs=-90.0)

    assert features.voiced_fraction > 0.9
    assert features.pitch_hz == pytest.approx(180.0, rel=0.01)


def test_pitch_of_a_full_scale_tone_is_its_fundamental():
    """Squared sums of neighbouring full-scale samples do not fit 32 bits; the energies must not wrap."""
    features = measure_window(
        pcm=harmonic_tone(f0=220.0, seconds=1.0, amplitude=1.0), sample_rate=SAMPLE_RATE, noise_floor_dbfs=-90.0
    )

    assert features.voiced_fraction > 0.9
    assert features.pitch_hz == pytest.approx(220.0, rel=0.01)


def test_a_dc_offset_moves_neither_loudness_nor_pitch():
    tone = harmonic_tone(f0=150.0, seconds=1.0, amplitude=0.2)
    shifted = (tone.astype(np.int32) + 6000).astype(np.int16)

    plain = measure_window(pcm=tone, sample_rate=SAMPLE_RATE, noise_floor_dbfs=-90.0)
    offset = measure_window(pcm=shifted, sample_rate=SAMPLE_RATE, noise_floor_dbfs=-90.0)

    assert offset.level_dbfs == pytest.approx(plain.level_dbfs, abs=1e-9)
    assert offset.voiced_frames == plain.voiced_frames
    assert offset.pitch_hz == pytest.approx(plain.pitch_hz, rel=1e-9)


def test_a_window_measures_the_same_after_windows_of_other_lengths_and_rates():
    """The pitch tracker reuses its arrays from window to window; what an earlier one left there must not count."""
    calm = wav_samples("calm")
    window = calm[SAMPLE_RATE : 2 * SAMPLE_RATE]
    first = measure_window(pcm=window, sample_rate=SAMPLE_RATE)

    for pcm, rate in ((calm[: 3 * SAMPLE_RATE], SAMPLE_RATE), (calm[:44100], 44100), (calm[:1600], SAMPLE_RATE)):
        measure_window(pcm=pcm, sample_rate=rate)
    again = measure_window(pcm=window, sample_rate=SAMPLE_RATE)

    assert first.voiced_frames > 10
    assert again == first


def test_spread_is_numpys_10th_to_90th_percentile_range_to_the_last_bit():
    values = np.random.default_rng(5).normal(0.0, 3.0, 300)

    # Every size: numpy interpolates from the nearer end, which a plain lerp misses only now and then.
    for size in range(1, values.size + 1):
        low, high = np.percentile(values[:size], [10, 90])
        assert spread(values[:size]) == float(high - low)


def test_louder_sine_reads_higher_by_its_gain_in_db():
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    quiet = (0.05 * 32767 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    loud = (0.2 * 32767 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)

    quiet_level = measure_window(pcm=quiet, sample_rate=SAMPLE_RATE).level_dbfs
    loud_level = measure_window(pcm=loud, sample_rate=SAMPLE_RATE).level_dbfs

    # A full-scale sine is -3 dBFS RMS; four times the amplitude is 12 dB more.
    assert quiet_level == pytest.approx(20 * math.log10(0.05) - 3.01, abs=0.2)
    assert loud_level - quiet_level == pytest.approx(12.04, abs=0.2)


def test_pitch_glide_gives_its_slope_in_semitones_per_second():
    glide = harmonic_tone(f0=150.0, glide_to=250.0, seconds=1.0)

    features = measure_window(pcm=glide, sample_rate=SAMPLE_RATE, noise_floor_dbfs=-90.0)

    assert features.pitch_slope_st_per_s == pytest.approx(12 * math.log2(250 / 150), abs=0.5)
    assert features.pitch_range_st > 6.0


def test_white_noise_is_active_but_never_voiced():
    noise = (np.random.default_rng(7).normal(0.0, 0.05, SAMPLE_RATE) * 32767).astype(np.int16)

    features = measure_window(pcm=noise, sample_rate=SAMPLE_RATE, noise_floor_dbfs=-90.0)

    assert features.active_fraction > 0.9
    assert features.voiced_frames == 0
    assert features.pitch_hz is None


def test_syllable_rate_counts_level_pulses():
    """Tone bursts 60 ms long at 4 and at 8 per second: the count per voiced second doubles."""
    tone = harmonic_tone(f0=150.0, seconds=1.0).astype(np.float64)
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    rates = {}
    for pulses in (4, 8):
        envelope = np.clip(np.cos(np.pi * pulses * t) ** 2 - 0.4, 0.0, None) / 0.6
        features = measure_window(
            pcm=(tone * envelope).astype(np.int16), sample_rate=SAMPLE_RATE, noise_floor_dbfs=-90.0
        )
        rates[pulses] = features.syllable_rate
        assert round(features.syllable_rate * features.voiced_s) in (pulses - 1, pulses)
    assert rates[8] > 1.5 * rates[4]


def test_digital_silence_has_no_activity():
    features = measure_window(pcm=np.zeros(SAMPLE_RATE, dtype=np.int16), sample_rate=SAMPLE_RATE)

    assert features.active_fraction == 0.0
    assert features.voiced_frames == 0
    assert features.syllable_rate is None


def test_pcm_must_be_one_dimensional_int16():
    with pytest.raises(TypeError):
        measure_window(pcm=np.zeros(SAMPLE_RATE, dtype=np.float32), sample_rate=SAMPLE_RATE)
    with pytest.raises(ValueError):
        measure_window(pcm=np.zeros((2, SAMPLE_RATE), dtype=np.int16), sample_rate=SAMPLE_RATE)


def test_classifier_refuses_a_bad_sample_rate_or_threshold():
    with pytest.raises(ValueError, match="sample_rate"):
        SessionClassifier(sample_rate=4000)
    with pytest.raises(ValueError, match="confidence_threshold"):
        SessionClassifier(sample_rate=SAMPLE_RATE, confidence_threshold=1.5)


# --- streams of the fixtures ------------------------------------------------------------------


def test_loud_high_delivery_after_calm_is_flagged_louder_higher_and_escalating():
    classifier = SessionClassifier(sample_rate=SAMPLE_RATE)
    calm = wav_samples("calm")
    calm_tones = tones(stream(classifier, calm))
    loud_tones = tones(stream(classifier, wav_samples("loud_high"), start=duration_of(calm)))

    assert len(calm_tones) >= 6 and len(loud_tones) >= 6
    for flag in ("loud", "high_pitch"):
        assert not any(flag in tone["prosody_flags"] for tone in calm_tones)
        assert sum(flag in tone["prosody_flags"] for tone in loud_tones) >= len(loud_tones) - 1
    assert Counter(tone["label"] for tone in calm_tones).most_common(1)[0][0] == "calm"
    assert sum(tone["label"] in ("tense", "animated") for tone in loud_tones) >= len(loud_tones) - 1
    assert loud_tones[0]["shift_direction"] == "escalating"
    assert not any(tone["shift_direction"] == "escalating" for tone in calm_tones)
    assert np.mean([t["shift_magnitude"] for t in loud_tones]) > 2 * np.mean([t["shift_magnitude"] for t in calm_tones])


def test_the_same_speech_much_softer_reads_subdued_and_de_escalating():
    classifier = SessionClassifier(sample_rate=SAMPLE_RATE)
    calm = wav_samples("calm")
    stream(classifier, calm)
    soft_tones = tones(stream(classifier, (calm // 4).astype(np.int16), start=duration_of(calm)))

    assert all("soft" in tone["prosody_flags"] for tone in soft_tones)
    assert all(tone["shift_direction"] == "de-escalating" for tone in soft_tones)
    assert Counter(tone["label"] for tone in soft_tones).most_common(1)[0][0] == "subdued"


def test_fast_read_measures_a_higher_syllable_rate_and_is_flagged_fast():
    calm, fast = wav_samples("calm"), wav_samples("fast")

    def mean_rate(pcm: np.ndarray) -> float:
        windows = [
            measure_window(pcm=pcm[i : i + SAMPLE_RATE], sample_rate=SAMPLE_RATE)
            for i in range(0, pcm.size, SAMPLE_RATE)
        ]
        return float(np.mean([w.syllable_rate for w in windows if w.syllable_rate is not None]))

    assert mean_rate(fast) > 1.5 * mean_rate(calm)

    classifier = SessionClassifier(sample_rate=SAMPLE_RATE)
    calm_tones = tones(stream(classifier, calm))
    fast_tones = tones(stream(classifier, fast, start=duration_of(calm)))
    assert not any("fast" in tone["prosody_flags"] for tone in calm_tones)
    assert sum("fast" in tone["prosody_flags"] for tone in fast_tones) >= 2


def test_questions_read_as_questioning_with_rising_pitch():
    classifier = SessionClassifier(sample_rate=SAMPLE_RATE)
    calm = wav_samples("calm")
    calm_tones = tones(stream(classifier, calm))
    question_tones = tones(stream(classifier, wav_samples("question"), start=duration_of(calm)))

    questioning = [tone for tone in question_tones if tone["label"] == "questioning"]
    assert len(questioning) >= 2
    assert all("rising_pitch" in tone["prosody_flags"] for tone in questioning)
    assert not any(tone["label"] == "questioning" for tone in calm_tones)


def test_silence_gives_only_queue_events_and_one_dead_air_after_five_seconds():
    events = stream(SessionClassifier(sample_rate=SAMPLE_RATE), wav_samples("silence"))

    assert {event.type for event in events} == {"queue"}
    assert [e.data["label"] for e in events].count("silence") == 7
    dead_air = [event.data for event in events if event.data["label"] == "dead_air"]
    assert len(dead_air) == 1
    assert (dead_air[0]["start"], dead_air[0]["end"]) == (0.0, 5.0)
    # It is reported in the window that completes five seconds, after that window's silence.
    assert [e.data["label"] for e in events][4:6] == ["silence", "dead_air"]


def test_dead_air_is_reported_once_per_silent_stretch():
    silence, calm = wav_samples("silence"), wav_samples("calm")
    audio = np.concatenate([silence, calm[: 2 * SAMPLE_RATE], silence])

    labels = [event.data["label"] for event in stream(SessionClassifier(sample_rate=SAMPLE_RATE), audio)]

    assert labels.count("dead_air") == 2


@pytest.mark.parametrize("window_s", [0.1, 1.0, 3.0])
@pytest.mark.parametrize(
    "background",
    [
        pytest.param(lambda: wav_samples("noise"), id="pink-noise"),
        pytest.param(lambda: hum(mains_hz=50.0, seconds=4.0), id="hum-50hz"),
        pytest.param(lambda: hum(mains_hz=60.0, seconds=4.0), id="hum-60hz"),
        pytest.param(
            lambda: (np.random.default_rng(3).normal(0, 0.03, 4 * SAMPLE_RATE) * 32767).astype(np.int16), id="white"
        ),
    ],
)
def test_noise_and_hum_never_produce_a_tone(background, window_s):
    audio = background()
    for lead_in in (np.zeros(0, np.int16), wav_samples("silence")[: 2 * SAMPLE_RATE]):
        events = stream(SessionClassifier(sample_rate=SAMPLE_RATE), np.concatenate([lead_in, audio]), window_s=window_s)

        assert not tones(events)
        assert not [event for event in events if event.type == "speaker"]
        assert {event.data["label"] for event in events if event.type == "queue"} >= {"silence"}


def test_background_rising_after_silence_is_one_noise_floor_change():
    silence, noise = wav_samples("silence")[: 3 * SAMPLE_RATE], wav_samples("noise")

    events = stream(SessionClassifier(sample_rate=SAMPLE_RATE), np.concatenate([silence, noise]))

    changes = [event.data for event in events if event.type == "environ"]
    assert [change["label"] for change in changes] == ["noise_floor_change"]
    assert changes[0]["start"] == 3.0
    assert changes[0]["confidence"] > 0.9


def test_a_brief_background_blip_is_not_a_noise_floor_change():
    silence, noise = wav_samples("silence"), wav_samples("noise")
    audio = np.concatenate([silence[: 2 * SAMPLE_RATE], noise[: SAMPLE_RATE // 2], silence[: 2 * SAMPLE_RATE]])

    events = stream(SessionClassifier(sample_rate=SAMPLE_RATE), audio, window_s=0.1)

    assert not [event for event in events if event.type == "environ"]


def test_silence_then_speech_goes_silence_speaker_tone():
    silence, calm = wav_samples("silence")[: 2 * SAMPLE_RATE], wav_samples("calm")

    events = stream(SessionClassifier(sample_rate=SAMPLE_RATE), np.concatenate([silence, calm]))

    assert [(e.type, e.data["label"]) for e in events[:3]] == [
        ("queue", "silence"),
        ("queue", "silence"),
        ("speaker", IN_PROCESS_SPEAKER_ID),
    ]
    assert events[3].type == "tone"
    # The speaker event marks where speech begins inside its window.
    assert 2.0 <= events[2].data["start"] < 2.2
    assert [e.type for e in events].count("speaker") == 1
    assert not [e for e in events[2:] if e.type == "queue" and e.data["label"] == "dead_air"]


def test_every_tone_has_every_field_with_valid_values():
    classifier = SessionClassifier(sample_rate=SAMPLE_RATE)
    audio = np.concatenate([wav_samples(name) for name in ("calm", "loud_high", "fast", "question")])
    events = stream(classifier, audio)

    assert len(tones(events)) >= 20
    for tone in tones(events):
        assert_tone_shape(tone, elcor=False)
        assert tone["label"] in TONE_LABELS
        assert tone["speaker_id"] == IN_PROCESS_SPEAKER_ID
        assert tone["affect"] == TONE_LABELS[tone["label"]].affect
        assert set(tone["prosody_flags"]) <= PROSODY_FLAGS
        for number in ("confidence", "shift_magnitude", "start", "end"):
            assert type(tone[number]) is float
    for event in events:
        assert json.loads(json.dumps(event.data)) == event.data
        if event.type != "tone":
            assert set(event.data) == {"label", "confidence", "start", "end"}
            assert 0.0 <= event.data["confidence"] <= 1.0


def test_elcor_mode_gives_bracketed_subtext_and_plain_mode_gives_sentences():
    calm = wav_samples("calm")

    elcor_tones = tones(stream(SessionClassifier(sample_rate=SAMPLE_RATE, elcor=True), calm))
    plain_tones = tones(stream(SessionClassifier(sample_rate=SAMPLE_RATE, elcor=False), calm))

    assert elcor_tones[0]["subtext"] == "[Calmly — steady, even delivery]"
    assert all(t["subtext"].startswith("[") and t["subtext"].endswith("]") for t in elcor_tones)
    assert plain_tones[0]["subtext"] == "Sounds calm, with a steady, even delivery."
    assert all("[" not in t["subtext"] and t["subtext"].endswith(".") for t in plain_tones)


def test_confidence_threshold_drops_weak_tones_but_not_other_events():
    audio = np.concatenate([wav_samples("silence")[: 2 * SAMPLE_RATE], wav_samples("calm"), wav_samples("question")])

    by_threshold = {
        threshold: stream(SessionClassifier(sample_rate=SAMPLE_RATE, confidence_threshold=threshold), audio)
        for threshold in (0.0, 0.5, 1.0)
    }

    assert len(tones(by_threshold[0.0])) > len(tones(by_threshold[0.5])) > 0
    assert all(tone["confidence"] >= 0.5 for tone in tones(by_threshold[0.5]))
    assert tones(by_threshold[1.0]) == []
    others = {threshold: [e for e in events if e.type != "tone"] for threshold, events in by_threshold.items()}
    assert others[0.0] == others[0.5] == others[1.0] != []


def test_confidence_is_lower_while_the_baseline_is_new_and_for_short_windows():
    calm = wav_samples("calm")

    one_second = tones(stream(SessionClassifier(sample_rate=SAMPLE_RATE), calm))
    tenth_second = tones(stream(SessionClassifier(sample_rate=SAMPLE_RATE), calm, window_s=0.1))

    assert one_second[0]["confidence"] < max(tone["confidence"] for tone in one_second[2:])
    assert max(tone["confidence"] for tone in tenth_second) < 0.5 < max(tone["confidence"] for tone in one_second)


def test_same_audio_gives_the_same_events():
    audio = np.concatenate([wav_samples(name) for name in ("silence", "calm", "loud_high", "noise")])

    first = stream(SessionClassifier(sample_rate=SAMPLE_RATE, elcor=True), audio)
    second = stream(SessionClassifier(sample_rate=SAMPLE_RATE, elcor=True), audio)

    assert first == second


def test_sessions_classified_on_parallel_threads_match_a_sequential_run():
    audio = np.concatenate([wav_samples("calm"), wav_samples("loud_high")])
    expected = stream(SessionClassifier(sample_rate=SAMPLE_RATE), audio)
    results: list[list[VoiceEvent]] = [[] for _ in range(4)]

    def run(slot: int) -> None:
        results[slot] = stream(SessionClassifier(sample_rate=SAMPLE_RATE), audio)

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(result == expected for result in results)


def test_100_ms_windows_classify_speech_and_its_pauses():
    events = stream(SessionClassifier(sample_rate=SAMPLE_RATE), wav_samples("calm"), window_s=0.1)

    assert len(tones(events)) >= 20
    assert {tone["label"] for tone in tones(events)} <= set(TONE_LABELS)
    # espeak's pauses between sentences are longer than the 300 ms hangover.
    assert any(event.data["label"] == "silence" for event in events if event.type == "queue")
    # Only the stream's first speech is an onset: no pause in a calm read lasts a second.
    assert [event.type for event in events].count("speaker") == 1


def test_partial_and_tiny_final_windows_are_classified():
    calm = wav_samples("calm")
    classifier = SessionClassifier(sample_rate=SAMPLE_RATE)
    stream(classifier, calm[: 3 * SAMPLE_RATE])

    partial = classifier.classify(calm[3 * SAMPLE_RATE : 3 * SAMPLE_RATE + 6000], start=3.0, end=3.375)
    tiny = classifier.classify(calm[4 * SAMPLE_RATE : 4 * SAMPLE_RATE + 80], start=3.375, end=3.38)

    assert [event.type for event in partial] == ["tone"]
    assert (partial[0].data["start"], partial[0].data["end"]) == (3.0, 3.375)
    assert all(event.data["end"] == 3.38 for event in tiny)
    assert classifier.classify(np.zeros(0, dtype=np.int16), start=3.38, end=3.38) == []


def test_halting_delivery_after_calm_reads_hesitant_with_pauses():
    calm = wav_samples("calm")
    classifier = SessionClassifier(sample_rate=SAMPLE_RATE)
    stream(classifier, calm)
    # A quarter second of speech, then almost half a second of nothing, over and over.
    pieces = []
    for offset in range(0, calm.size, SAMPLE_RATE // 4):
        pieces += [calm[offset : offset + SAMPLE_RATE // 4], np.zeros(int(0.45 * SAMPLE_RATE), dtype=np.int16)]

    halting = tones(stream(classifier, np.concatenate(pieces), start=duration_of(calm)))

    hesitant = [tone for tone in halting if tone["label"] == "hesitant"]
    assert len(hesitant) >= 3
    assert all("pauses" in tone["prosody_flags"] for tone in hesitant)


def test_scores_cover_exactly_the_documented_vocabulary():
    features = measure_window(pcm=wav_samples("calm")[:SAMPLE_RATE], sample_rate=SAMPLE_RATE)

    assert set(SpeakerBaseline().read(features).scores) == set(TONE_LABELS)
