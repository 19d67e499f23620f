import io
import json
import math
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr
from scipy import signal, stats
from sklearn.metrics.pairwise import rbf_kernel

from analysis import augment
from analysis.drift import (
    MEASURES,
    MEASURES_VERSION,
    ReferenceSummary,
    alarm_level,
    clip_measures,
    concept_drift,
    concept_reason,
    concept_test,
    drift_report,
    mmd_test,
    reference_summary,
    speech_snr,
    transcript_words,
    wada_snr,
    wer_drift,
    wer_reason,
)
from analysis.text import error_rates

SR = 8000


def harmonic(f0: float, seconds: float = 0.6, sr: int = SR, n_harmonics: int = 8) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    y = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, n_harmonics + 1) if f0 * k < sr / 2)
    return 0.3 * y / np.max(np.abs(y))


def speech_frame(n: int, rng: np.random.Generator, **shifts: float) -> pd.DataFrame:
    """Clips' measures drawn like FSDD's (medians and spreads of the real corpus), optionally shifted."""
    frame = pd.DataFrame(
        {
            "duration_s": rng.gamma(9.0, 0.05, n),
            "rms_dbfs": rng.normal(-30, 6, n),
            "peak_dbfs": rng.normal(-17, 6, n),
            "snr_db": rng.normal(20, 15, n),
            "pitch_hz": rng.normal(125, 20, n),
            "centroid_hz": rng.normal(420, 70, n),
            "speaking_rate": rng.normal(2.5, 0.5, n),
        }
    )
    for name, delta in shifts.items():
        frame[name] += delta
    return frame


# --- per-clip measures ------------------------------------------------------------------------------


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0, 30.0])
def test_wada_snr_recovers_the_snr_of_its_own_signal_model(snr_db):
    # Kim & Stern's model: speech amplitudes Gamma(shape 0.4) with random sign, plus Gaussian noise.
    rng = np.random.default_rng(int(snr_db))
    n = 400_000
    speech = stats.gamma.rvs(0.4, size=n, random_state=rng) * rng.choice([-1.0, 1.0], n)
    noise = rng.standard_normal(n) * np.sqrt(np.mean(speech**2) / 10 ** (snr_db / 10))
    estimate, at_end = wada_snr(speech + noise)
    assert estimate == pytest.approx(snr_db, abs=1.0)
    assert not at_end


def test_wada_snr_flags_an_estimate_stuck_at_the_end_of_its_table():
    rng = np.random.default_rng(0)
    clean = stats.gamma.rvs(0.4, size=100_000, random_state=rng) * rng.choice([-1.0, 1.0], 100_000)
    estimate, at_end = wada_snr(clean)
    assert (estimate, at_end) == (100.0, True)
    assert math.isnan(wada_snr(np.zeros(100))[0])


def test_wada_snr_falls_as_white_noise_is_added_to_a_real_recording(fsdd_dir):
    y, _sr = sf.read(fsdd_dir / "recordings" / "3_theo_10.wav")
    noise = np.random.default_rng(0).standard_normal(len(y))
    estimates = [wada_snr(augment.mix_at_snr(y, noise, snr_db=s, random_state=0))[0] for s in (20, 10, 0)]
    # Real digits are not the paper's Gamma-distributed speech: the order holds, the dB values need not.
    assert estimates[0] > estimates[1] > estimates[2]


def test_pitch_of_a_harmonic_tone_is_its_fundamental():
    for f0 in (110.0, 220.0):
        assert clip_measures(harmonic(f0), SR)["pitch_hz"] == pytest.approx(f0, rel=0.01)


def test_centroid_of_tones_is_the_power_weighted_mean_frequency_and_low_band_their_share():
    t = np.arange(SR) / SR
    assert clip_measures(0.5 * np.sin(2 * np.pi * 1000 * t), SR)["centroid_hz"] == pytest.approx(
        1000, rel=0.02
    )
    two = 0.3 * np.sin(2 * np.pi * 500 * t) + 0.3 * np.sin(2 * np.pi * 1500 * t)
    assert clip_measures(two, SR)["centroid_hz"] == pytest.approx(1000, rel=0.02)
    # 100 Hz and 1 kHz at equal amplitude: half the energy lies below 300 Hz, -3.01 dB.
    low_high = 0.3 * np.sin(2 * np.pi * 100 * t) + 0.3 * np.sin(2 * np.pi * 1000 * t)
    assert clip_measures(low_high, SR)["low_band_db"] == pytest.approx(10 * np.log10(0.5), abs=0.1)


def test_speaking_rate_counts_energy_bursts_per_second_of_sound():
    def bursts(k: int) -> np.ndarray:
        on, off = np.ones(int(0.12 * SR)), np.full(int(0.12 * SR), 1e-3)
        envelope = np.concatenate([np.concatenate([on, off]) for _ in range(k)])
        return harmonic(150, seconds=len(envelope) / SR) * envelope

    three, six = clip_measures(bursts(3), SR)["speaking_rate"], clip_measures(bursts(6), SR)["speaking_rate"]
    # Each burst is 120 ms of sound: one nucleus per 0.12 s, whatever the number of bursts.
    assert three == pytest.approx(1 / 0.12, rel=0.15)
    assert six == pytest.approx(three, rel=0.1)


def test_silent_clip_has_undefined_measures():
    m = clip_measures(np.zeros(4000), SR)
    assert m.pop("digital_silence") == 1.0  # every sample is an exact zero
    assert all(math.isnan(v) for v in m.values())


# --- tests and effects ------------------------------------------------------------------------------


def test_per_measure_p_values_and_effects_match_scipy_in_real_units():
    rng = np.random.default_rng(1)
    ref = speech_frame(1200, rng)
    bat = speech_frame(80, rng, rms_dbfs=-10.0, pitch_hz=30.0)
    report = drift_report(ref, bat)
    by_name = {m.name: m for m in report.measures}
    for name in ("rms_dbfs", "pitch_hz", "duration_s"):
        expected = stats.ks_2samp(ref[name], bat[name])
        assert by_name[name].p_value == pytest.approx(expected.pvalue, rel=1e-9)
        assert by_name[name].statistic == pytest.approx(expected.statistic)
    # The effect is the Hodges-Lehmann shift: the median of all batch-minus-reference differences.
    pairwise = np.subtract.outer(bat.rms_dbfs.to_numpy(), ref.rms_dbfs.to_numpy())
    assert by_name["rms_dbfs"].effect == pytest.approx(np.median(pairwise))
    assert by_name["rms_dbfs"].effect == pytest.approx(-10, abs=2.5)
    assert by_name["rms_dbfs"].effect_unit == "dB"
    assert by_name["pitch_hz"].effect_unit == "Hz"
    assert report.drift
    assert report.level == "warning"
    assert {m.name for m in report.measures if m.drift} == {"rms_dbfs", "pitch_hz"}
    assert report.measures[0].drift  # drifted measures come first
    assert any(r.startswith("Loudness (RMS) −") and "dB (95% CI −" in r for r in report.reasons)


def test_bonferroni_threshold_splits_alpha_over_groups_and_measures():
    rng = np.random.default_rng(2)
    ref, bat = speech_frame(500, rng), speech_frame(60, rng)
    ref["predicted"], bat["predicted"] = (
        rng.integers(0, 10, 500).astype(str),
        rng.integers(0, 10, 60).astype(str),
    )
    report = drift_report(ref, bat, alpha=0.05)
    inputs = [m for m in report.measures if m.family == "input"]
    assert all(m.threshold == pytest.approx(0.05 / 3 / 7) for m in inputs)
    assert report.multivariate is not None
    assert report.multivariate.threshold == pytest.approx(0.05 / 3)
    predicted = next(m for m in report.measures if m.name == "predicted")
    assert predicted.threshold == pytest.approx(0.05 / 3)


def test_output_tests_match_scipy():
    rng = np.random.default_rng(3)
    ref = pd.DataFrame(
        {
            "predicted": rng.choice(list("abc"), 600, p=[0.5, 0.3, 0.2]),
            "confidence": rng.beta(8, 2, 600),
            "low_confidence": rng.random(600) < 0.1,
        }
    )
    bat = pd.DataFrame(
        {
            "predicted": rng.choice(list("abc"), 100, p=[0.2, 0.3, 0.5]),
            "confidence": rng.beta(4, 2, 100),
            "low_confidence": rng.random(100) < 0.3,
        }
    )
    by_name = {m.name: m for m in drift_report(ref, bat).measures}
    table = pd.crosstab(np.r_[np.zeros(600), np.ones(100)], np.r_[ref.predicted, bat.predicted]).to_numpy()
    assert by_name["predicted"].p_value == pytest.approx(
        stats.chi2_contingency(table, correction=False).pvalue
    )
    shares_ref = ref.predicted.value_counts(normalize=True)
    shares_bat = bat.predicted.value_counts(normalize=True)
    assert by_name["predicted"].effect == pytest.approx(0.5 * (shares_ref - shares_bat).abs().sum())
    a, b = int(ref.low_confidence.sum()), int(bat.low_confidence.sum())
    expected = stats.fisher_exact([[a, 600 - a], [b, 100 - b]]).pvalue
    assert by_name["low_confidence"].p_value == pytest.approx(expected)
    assert by_name["low_confidence"].effect == pytest.approx(100 * (b / 100 - a / 600))
    assert by_name["low_confidence"].effect_unit == "pp"
    assert by_name["confidence"].p_value == pytest.approx(
        stats.ks_2samp(ref.confidence, bat.confidence).pvalue
    )


def test_mmd_statistic_matches_a_direct_kernel_computation():
    rng = np.random.default_rng(4)
    x, z = rng.standard_normal((120, 3)), rng.standard_normal((40, 3)) + 1.0
    mmd2, p, bandwidth = mmd_test(x, z, n_permutations=200)
    k = rbf_kernel(np.vstack([x, z]), gamma=1 / (2 * bandwidth**2))
    expected = k[:120, :120].mean() + k[120:, 120:].mean() - 2 * k[:120, 120:].mean()
    assert mmd2 == pytest.approx(expected, rel=1e-9)
    pooled = np.vstack([x, z])
    d = np.sqrt(((pooled[:, None] - pooled[None]) ** 2).sum(-1))[np.triu_indices(160, 1)]
    assert bandwidth == pytest.approx(np.median(d), rel=1e-6)
    assert p == pytest.approx(1 / 201)


def test_mmd_keeps_its_level_without_drift():
    rng = np.random.default_rng(5)
    p_values = [
        mmd_test(
            rng.standard_normal((300, 4)), rng.standard_normal((50, 4)), n_permutations=99, random_state=i
        )[1]
        for i in range(200)
    ]
    assert np.mean(np.array(p_values) < 0.05) <= 0.09
    assert stats.kstest(p_values, "uniform").pvalue > 0.001


def test_a_reference_compared_with_itself_never_drifts():
    rng = np.random.default_rng(6)
    for n in (50, 200, 500, 5000):
        ref = speech_frame(n, rng)
        ref["predicted"] = rng.integers(0, 10, n).astype(str)
        report = drift_report(ref, ref)
        assert not report.drift
        assert report.level == "none"
        assert all(m.p_value == pytest.approx(1.0) for m in report.measures)
        if n <= 500:  # larger batches enter the kernel as a random subsample, no longer identical
            assert report.multivariate.p_value == pytest.approx(1.0)


def test_no_verdict_under_fifty_clips():
    rng = np.random.default_rng(7)
    ref, bat = speech_frame(1000, rng), speech_frame(49, rng, rms_dbfs=-20)
    report = drift_report(ref, bat)
    assert not report.drift
    assert report.level == "too_small"
    assert not any(m.drift for m in report.measures)
    assert "49 clips" in report.reasons[0]
    assert "50" in report.reasons[0]
    assert drift_report(ref, speech_frame(50, rng, rms_dbfs=-20)).drift


def test_large_batches_need_a_minimum_effect():
    rng = np.random.default_rng(8)
    ref, bat = speech_frame(20_000, rng), speech_frame(5000, rng, rms_dbfs=-0.8)
    report = drift_report(ref, bat)
    rms = next(m for m in report.measures if m.name == "rms_dbfs")
    assert rms.p_value < rms.threshold  # significant, but 0.8 dB is under the 2 dB minimum
    assert not rms.drift
    assert MEASURES["rms_dbfs"].min_effect == 2.0
    assert next(
        m for m in drift_report(ref, bat, min_effect={"rms_dbfs": 0.5}).measures if m.name == "rms_dbfs"
    ).drift


def test_a_band_limit_is_reported_as_a_channel_change_not_as_new_speakers():
    rng = np.random.default_rng(9)
    ref = speech_frame(1200, rng)
    ref["low_band_db"] = rng.normal(-7.5, 3.5, 1200)
    phone = speech_frame(100, rng, pitch_hz=15.0, centroid_hz=150.0)
    phone["low_band_db"] = rng.normal(-22.5, 5, 100)
    reasons = drift_report(ref, phone).reasons
    assert any("channel changed" in r and "energy below 300 Hz −15 dB" in r and "pitch" in r for r in reasons)
    voices = speech_frame(100, rng, pitch_hz=15.0, centroid_hz=150.0)
    voices["low_band_db"] = rng.normal(-8.5, 3.5, 100)
    assert not any("channel" in r for r in drift_report(ref, voices).reasons)
    # Without the band measure, pitch moving with the centroid is a possible channel change.
    no_band = drift_report(ref.drop(columns="low_band_db"), phone.drop(columns="low_band_db")).reasons
    assert any("channel may have changed" in r for r in no_band)


def test_telephone_line_removes_the_energy_below_300_hz_of_real_speech(fsdd_dir):
    names = ["0_jackson_1", "4_nicolas_2", "7_theo_3", "9_yweweler_4"]
    clips = [sf.read(fsdd_dir / "recordings" / f"{n}.wav")[0] for n in names]
    for y in clips:
        clean, phone = clip_measures(y, SR), clip_measures(augment.telephone_channel(y, sr=SR), SR)
        shifted = clip_measures(augment.pitch_shift(y, sr=SR, n_steps=2), SR)
        assert phone["low_band_db"] < clean["low_band_db"] - 6
        assert abs(shifted["low_band_db"] - clean["low_band_db"]) < 6
        assert phone["centroid_hz"] > clean["centroid_hz"]


def test_missing_columns_are_skipped():
    rng = np.random.default_rng(10)
    ref = speech_frame(300, rng)
    report = drift_report(ref[["rms_dbfs", "pitch_hz"]], ref[["pitch_hz"]].iloc[:100])
    assert [m.name for m in report.measures] == ["pitch_hz"]
    assert report.multivariate is None


def test_report_is_json_safe():
    rng = np.random.default_rng(11)
    ref, bat = speech_frame(200, rng), speech_frame(60, rng, snr_db=-15.0)
    bat.loc[0, "pitch_hz"] = np.nan
    ref["latency_ms"], bat["latency_ms"] = rng.gamma(2, 50, 200), rng.gamma(2, 50, 60)
    payload = json.loads(json.dumps(drift_report(ref, bat).to_dict(), allow_nan=False))
    assert payload["drift"] is True
    assert payload["level"] == "warning"
    assert {
        "name",
        "drift",
        "test",
        "statistic",
        "p_value",
        "threshold",
        "effect",
        "reference",
        "batch",
    } <= set(payload["measures"][0])
    latency = next(m for m in payload["measures"] if m["name"] == "latency_ms")
    assert latency["test"] == "not tested"
    assert latency["drift"] is False


# --- concept drift and alarms ---------------------------------------------------------------------


def test_concept_drift_is_fishers_exact_test_against_the_reference_correctness():
    ref = np.r_[np.ones(1140), np.zeros(60)].astype(bool)  # 95% accurate
    bat = np.r_[np.ones(35), np.zeros(15), [np.nan] * 20]  # 70% on 50 labelled clips
    result = concept_drift(ref, bat)
    assert result.p_value == pytest.approx(stats.fisher_exact([[1140, 60], [35, 15]]).pvalue)
    assert result.drift
    assert result.effect == pytest.approx(-25.0)
    assert result.batch["n"] == 50
    assert result.batch["ci_low"] < 0.70 < result.batch["ci_high"]
    small = concept_drift(ref, bat[:29])
    assert not small.drift
    assert math.isnan(small.p_value)


def test_the_accuracy_says_its_counts_and_gets_a_verdict_from_the_projects_minimum():
    # 9 of 20 right against 114 of 120 on the reference: Fisher's test on those counts.
    fisher = stats.fisher_exact([[114, 6], [9, 11]]).pvalue
    counted = concept_test(114, 120, 9, 20, min_labels=20)
    assert counted.p_value == pytest.approx(fisher)
    assert counted.drift
    assert counted.effect == pytest.approx(100 * (9 / 20 - 114 / 120))
    assert (counted.batch["n"], counted.batch["correct"]) == (20, 9)
    said = concept_reason(counted, min_labels=20, sample="labelled random-sample clips")
    assert said == (
        "accuracy −50.0 points: 9 of 20 labelled random-sample clips right (45%) against 95% on the "
        "reference (Fisher p < 0.001)"
    )
    # Under the minimum there is no verdict, and the words say so rather than nothing.
    few = concept_test(114, 120, 9, 20)
    assert not few.drift
    assert concept_reason(few) == (
        "accuracy: 9 of 20 labelled clips right (45%) against 95% on the reference; "
        "too few for a verdict (30 needed)"
    )
    assert concept_reason(concept_test(114, 120, 0, 0)) is None
    # A report takes the same minimum, and its reason the same words.
    rng = np.random.default_rng(3)
    ref, bat = speech_frame(120, rng), speech_frame(60, rng)
    ref["correct"] = np.r_[np.ones(114), np.zeros(6)]
    bat["correct"] = np.r_[np.ones(9), np.zeros(11), [np.nan] * 40]
    report = drift_report(ref, bat, min_labels=20, sample="labelled random-sample clips")
    assert report.concept is not None
    assert report.concept.p_value == pytest.approx(fisher)
    assert said in report.reasons


def _report(drift: bool, min_p: float = 0.01, level: str | None = None, concept: bool = False):
    rng = np.random.default_rng(12)
    ref = speech_frame(300, rng)
    bat = speech_frame(60, rng, rms_dbfs=-25.0 if drift else 0.0)
    if concept:
        ref["correct"] = np.ones(300, dtype=bool)
        bat["correct"] = np.r_[np.ones(20), np.zeros(40)].astype(bool)
    report = drift_report(ref, bat)
    return report


def test_alarm_needs_two_drifted_batches_in_a_row_a_tiny_p_or_concept_drift():
    clean, shifted, with_concept = _report(False), _report(True), _report(False, concept=True)
    assert alarm_level([]) == "none"
    assert alarm_level([clean]) == "none"
    assert shifted.min_p < 0.001
    assert alarm_level([clean, shifted]) == "alarm"
    assert with_concept.concept is not None
    assert with_concept.concept.drift
    assert alarm_level([clean, with_concept]) == "alarm"
    assert alarm_level([shifted, clean]) == "none"
    from dataclasses import replace

    mild = replace(shifted, min_p=0.004)
    assert alarm_level([clean, mild]) == "warning"
    assert alarm_level([mild, mild]) == "alarm"
    too_small = replace(clean, level="too_small", drift=False)
    assert alarm_level([mild, too_small, mild]) == "alarm"
    # The project's alarm_p moves the line between a warning and an alarm.
    assert alarm_level([clean, shifted], alarm_p=shifted.min_p / 10) == "warning"
    assert alarm_level([clean, mild], alarm_p=0.01) == "alarm"


# --- SNR on the recorded part, censored at the table's ends -----------------------------------------


def noisy_speechlike(seconds: float, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Voiced bursts (a harmonic tone under a syllable-rate envelope) plus white noise at ``snr_db``."""
    n = round(seconds * SR)
    t = np.arange(n) / SR
    voiced = harmonic(130.0, seconds) * np.clip(np.sin(2 * np.pi * 3.0 * t), 0, None) ** 2
    noise = rng.standard_normal(n) * np.sqrt(np.mean(voiced**2) / 10 ** (snr_db / 10))
    return voiced + noise


def test_digital_silence_is_left_out_of_the_snr():
    rng = np.random.default_rng(20)
    clip = noisy_speechlike(1.5, 15.0, rng)
    # Digital silence: a zero lead-in and tail (padding) and four 50 ms gaps of a noise gate.
    gaps = [np.zeros(int(0.2 * SR))]
    for part in np.array_split(clip, 5):
        gaps += [part, np.zeros(int(0.05 * SR))]
    gated = np.concatenate([*gaps[:-1], np.zeros(int(0.3 * SR))])
    share = 1 - clip.size / gated.size
    estimate = speech_snr(gated, SR)
    assert estimate.digital_silence == pytest.approx(share)
    assert estimate.snr_db == pytest.approx(speech_snr(clip, SR).snr_db, abs=0.5)
    assert not estimate.censored
    # The plain estimator takes the zeros for a perfectly quiet noise floor.
    assert wada_snr(gated) == (100.0, True)
    # Isolated zeros (a waveform crossing zero on the sample grid) are not silence.
    crossing = clip.copy()
    crossing[::97] = 0.0
    assert speech_snr(crossing, SR).digital_silence == 0.0


def _pcm16(y: np.ndarray, sr: int) -> np.ndarray:
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(y, -1, 1), sr, format="WAV", subtype="PCM_16")
    buffer.seek(0)
    return sf.read(buffer)[0]


@pytest.mark.fsdd
def test_resampling_8_16_8_khz_does_not_move_the_snr(fsdd_dir):
    paths = sorted((fsdd_dir / "recordings").glob("*.wav"))[::40]  # 50 clips, all four speakers
    clips = [sf.read(p)[0] for p in paths]
    assert any(np.mean(y == 0) > 0.1 for y in clips)  # the 8-bit speaker's clips: many exact zeros
    round_trips = {
        "soxr": lambda y: soxr.resample(soxr.resample(y, 8000, 16000), 16000, 8000),
        "scipy polyphase": lambda y: signal.resample_poly(signal.resample_poly(y, 2, 1), 1, 2),
    }
    before = np.array([speech_snr(y, SR).snr_db for y in clips])
    plain_before = np.array([wada_snr(y)[0] for y in clips])
    for name, round_trip in round_trips.items():
        resampled = [_pcm16(round_trip(y), SR) for y in clips]
        after = np.array([speech_snr(y, SR).snr_db for y in resampled])
        assert np.percentile(np.abs(after - before), 90) < 0.5, name
        assert abs(np.median(after) - np.median(before)) < 0.2, name
        report = drift_report(pd.DataFrame({"snr_db": before}), pd.DataFrame({"snr_db": after}))
        assert not report.drift, (name, report.reasons)
        # The plain estimator moved by tens of dB on the 8-bit clips: the false alarms this removes.
        plain_after = np.array([wada_snr(y)[0] for y in resampled])
        assert np.max(np.abs(plain_after - plain_before)) > 40, name


def test_snr_at_the_ends_of_the_table_is_censored():
    # A pure tone's amplitudes are less spread than any speech-plus-noise mixture of the model: the
    # statistic falls below the table's noise-only end. (437.3 Hz: no sample falls on a zero crossing.)
    t = np.arange(SR) / SR
    tone = speech_snr(0.5 * np.sin(2 * np.pi * 437.3 * t), SR)
    assert (tone.snr_db, tone.censored) == (-20.0, True)
    # Speech bursts over a floor 80 dB down run off the top.
    rng = np.random.default_rng(21)
    clean = noisy_speechlike(1.0, 80.0, rng)
    assert speech_snr(clean, SR) == (100.0, True, 0.0)
    measured = clip_measures(clean, SR)
    assert (measured["wada_snr_db"], measured["wada_at_end"], measured["digital_silence"]) == (
        100.0,
        1.0,
        0.0,
    )


def test_censored_snr_is_tested_as_shares_at_the_ends_and_values_within():
    rng = np.random.default_rng(22)
    inside = lambda n: rng.normal(15, 6, n)  # noqa: E731
    ref = pd.DataFrame({"snr_db": np.r_[np.full(300, 100.0), inside(700)]})
    # Same values within the table, far fewer clips at its top.
    fewer_top = pd.DataFrame({"snr_db": np.r_[np.full(3, 100.0), inside(97)]})
    snr = drift_report(ref, fewer_top).measures[0]
    fisher = stats.fisher_exact([[300, 700], [3, 97]]).pvalue
    ks = stats.ks_2samp(ref.snr_db[ref.snr_db < 100], fewer_top.snr_db[fewer_top.snr_db < 100]).pvalue
    assert snr.p_value == pytest.approx(min(1.0, 2 * min(fisher, ks)))
    assert snr.test == "Kolmogorov-Smirnov within the table, Fisher exact at its ends"
    assert snr.drift
    assert snr.reason.startswith("SNR (WADA) at the table's top (≥ 100 dB) in 30% → 3% of clips")
    assert snr.batch["share_at_table_end"] == pytest.approx(0.03)
    # The same share at the top, and the values within it lower: the KS part finds that.
    lower = pd.DataFrame({"snr_db": np.r_[np.full(30, 100.0), inside(70) - 8.0]})
    moved = drift_report(ref, lower).measures[0]
    assert moved.drift
    assert re.search(r"−\d+\.\d dB within the table \(95% CI", moved.reason)
    # Without any value at an end, a plain KS test.
    plain = pd.DataFrame({"snr_db": inside(400)})
    assert drift_report(plain, pd.DataFrame({"snr_db": inside(80)})).measures[0].test == "Kolmogorov-Smirnov"


# --- reasons that say what changed --------------------------------------------------------------------


def test_reasons_name_spread_tails_and_zeros_when_the_median_does_not_move():
    rng = np.random.default_rng(23)
    ref = speech_frame(1200, rng)
    ref["leading_silence_ms"] = np.where(rng.random(1200) < 0.1, 0.0, rng.gamma(2, 60, 1200))
    bat = speech_frame(150, rng)
    bat["pitch_hz"] = rng.normal(125, 45, 150)  # same median, more than twice the spread
    bat["leading_silence_ms"] = np.where(rng.random(150) < 0.5, 0.0, rng.gamma(2, 60, 150))
    report = drift_report(ref, bat)
    by_name = {m.name: m for m in report.measures}
    pitch, lead = by_name["pitch_hz"], by_name["leading_silence_ms"]
    assert pitch.drift
    assert lead.drift
    assert pitch.reason.startswith("Pitch (median F0) spread wider (IQR ")
    assert ", median unchanged, KS p" in pitch.reason
    assert lead.reason.startswith("Leading silence none in 10% → ")
    assert pitch.reason in report.reasons
    assert lead.reason in report.reasons
    assert pitch.change["shift"]["moved"] is False
    assert pitch.change["batch"]["iqr"] == pytest.approx(np.subtract(*np.percentile(bat.pitch_hz, [75, 25])))


def test_a_new_voice_does_not_read_as_a_new_channel_unless_the_whole_interval_says_so():
    rng = np.random.default_rng(24)
    ref = speech_frame(1200, rng)
    ref["low_band_db"] = rng.normal(-7.5, 3.5, 1200)
    # A voice with 6 dB less energy below 300 Hz, give or take: drifts, but not surely by 6 dB or more.
    voice = speech_frame(60, rng, pitch_hz=20.0)
    voice["low_band_db"] = rng.normal(-13.5, 6.0, 60)
    report = drift_report(ref, voice)
    band = next(m for m in report.measures if m.name == "low_band_db")
    assert band.drift
    assert band.change["shift"]["high"] > -6.0
    assert not any("channel" in r for r in report.reasons)


# --- the reference, summarised once ----------------------------------------------------------------------


def _outputs(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    n = len(frame)
    frame = frame.copy()
    frame["predicted"] = rng.integers(0, 10, n).astype(str)
    frame["confidence"] = rng.beta(8, 2, n)
    frame["low_confidence"] = (frame["confidence"] < 0.6).astype(float)
    frame["correct"] = np.where(rng.random(n) < 0.4, rng.random(n) < 0.9, np.nan)
    frame["word_errors"] = np.where(rng.random(n) < 0.4, rng.integers(0, 3, n), np.nan)
    frame["ref_words"] = rng.integers(1, 8, n)
    frame.loc[frame.index[:5], "pitch_hz"] = np.nan
    return frame


def test_a_summary_of_the_reference_gives_the_same_report_from_bytes_or_json():
    rng = np.random.default_rng(25)
    ref = _outputs(speech_frame(2500, rng), rng)  # more than the kernel takes: a drawn subsample
    bat = _outputs(speech_frame(80, rng, rms_dbfs=-4.0), rng)
    summary = reference_summary(ref, random_state=7, key="version 3")
    from_bytes = ReferenceSummary.from_bytes(summary.to_bytes())
    from_json = ReferenceSummary.from_dict(json.loads(json.dumps(summary.to_dict(), allow_nan=False)))
    expected = drift_report(ref, bat, random_state=7).to_dict()
    for cached in (summary, from_bytes, from_json):
        assert drift_report(cached, bat, random_state=7).to_dict() == expected
    assert from_bytes.key == "version 3"
    assert expected["drift"]
    # A batch missing some measures is checked on the rest, against the same summary.
    assert drift_report(summary, bat[["rms_dbfs", "pitch_hz"]]).to_dict()["measures"]


def test_a_summary_refuses_what_it_cannot_read():
    rng = np.random.default_rng(26)
    summary = reference_summary(speech_frame(100, rng))
    with pytest.raises(ValueError, match="not a reference summary"):
        ReferenceSummary.from_bytes(b"not an npz")
    stale = replace(summary, measures_version=MEASURES_VERSION - 1)
    with pytest.raises(ValueError, match="summarise the reference again"):
        drift_report(stale, speech_frame(60, rng))
    with pytest.raises(ValueError, match="empty"):
        reference_summary(speech_frame(0, rng))


# --- transcripts: word error rate and length ---------------------------------------------------------


WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "oh", "hello"]


def transcripts(n: int, error_rate: float, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    refs, hyps = [], []
    for _ in range(n):
        ref = list(rng.choice(WORDS, rng.integers(2, 8)))
        hyp = [w if rng.random() > error_rate else str(rng.choice(WORDS)) for w in ref]
        if rng.random() < error_rate / 2:
            hyp = hyp[:-1]  # a deletion
        refs.append(" ".join(ref))
        hyps.append(" ".join(hyp))
    return refs, hyps


def test_wer_is_jiwers_corpus_rate_and_its_change_is_tested():
    import jiwer

    rng = np.random.default_rng(27)
    ref_t, ref_h = transcripts(400, 0.1, rng)
    bat_t, bat_h = transcripts(60, 0.35, rng)
    ref_c = error_rates(ref_t, ref_h, chars=False)
    bat_c = error_rates(bat_t, bat_h, chars=False)
    result = wer_drift(ref_c["word_errors"], ref_c["ref_words"], bat_c["word_errors"], bat_c["ref_words"])
    assert result.reference["wer"] == pytest.approx(jiwer.wer(ref_t, ref_h))
    assert result.batch["wer"] == pytest.approx(jiwer.wer(bat_t, bat_h))
    assert result.effect == pytest.approx(100 * (jiwer.wer(bat_t, bat_h) - jiwer.wer(ref_t, ref_h)))
    assert result.drift
    assert result.change["ci_low"] < result.effect < result.change["ci_high"]
    assert result.change["ci_low"] > 0
    assert result.reason.startswith(f"WER +{result.effect:.1f} points (95% CI +")
    # Unlabelled clips (NaN) are left out; under the minimum there is no verdict.
    few = wer_drift(ref_c["word_errors"], ref_c["ref_words"], [1, 0, np.nan], [3, 4, np.nan])
    assert few.batch["n"] == 2
    assert not few.drift
    assert math.isnan(few.p_value)
    assert "too few for a verdict (30 needed)" in wer_reason(few)


def test_wer_test_keeps_its_level_without_a_change():
    rng = np.random.default_rng(28)

    def counts(n: int) -> tuple[np.ndarray, np.ndarray]:
        words = 1 + rng.poisson(4, n)
        rate = np.clip(rng.beta(1, 4, n), 0, 1)  # some clips much worse than others
        return rng.binomial(words, rate), words

    alarms = 0
    for i in range(200):
        (re_, rw), (be, bw) = counts(300), counts(30)
        alarms += wer_drift(re_, rw, be, bw, n_permutations=400, n_boot=200, random_state=i).drift
    assert alarms / 200 <= 0.09


def test_a_report_carries_the_wer_test_and_transcript_length_drift():
    rng = np.random.default_rng(29)
    ref = speech_frame(400, rng)
    ref_t, ref_h = transcripts(400, 0.1, rng)
    bat = speech_frame(80, rng)
    bat_t, bat_h = transcripts(80, 0.4, rng)
    bat_h = [" ".join(h.split()[:2]) for h in bat_h]  # the model stops after two words
    for frame, refs, hyps in ((ref, ref_t, ref_h), (bat, bat_t, bat_h)):
        counted = error_rates(refs, hyps, chars=False)
        frame["word_errors"] = counted["word_errors"].to_numpy(float)
        frame["ref_words"] = counted["ref_words"].to_numpy(float)
        frame["transcript_words"] = transcript_words(hyps)
    bat.loc[40:, ["word_errors", "ref_words"]] = np.nan  # only half the batch labelled
    report = drift_report(ref, bat, sample="labelled random-sample clips")
    assert report.wer is not None
    assert report.wer.drift
    assert report.wer.batch["n"] == 40
    assert report.wer.reason in report.reasons
    assert "on 40 labelled random-sample clips" in report.wer.reason
    length = next(m for m in report.measures if m.name == "transcript_words")
    assert length.family == "output"
    assert length.drift
    assert length.reason.startswith("Transcript length −")
    assert alarm_level([report]) == "alarm"
    assert json.loads(json.dumps(report.to_dict(), allow_nan=False))["wer"]["drift"] is True
    assert list(transcript_words(["two words", "", None, "  "])[[0, 1, 3]]) == [2, 0, 0]
    assert math.isnan(transcript_words([None])[0])
