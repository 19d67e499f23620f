import numpy as np
import pytest

from analysis.quality import audio_quality
from tests.audio import tone


def test_sine_levels_match_the_closed_form():
    # A sine of amplitude A peaks at 20·log10(A) and has RMS A/√2: 0.5 → -6.02 dBFS peak, -9.03 dBFS RMS.
    q = audio_quality(tone(1.0, amp=0.5), 16000)
    assert q.peak_dbfs == pytest.approx(20 * np.log10(0.5), abs=0.01)
    assert q.rms_dbfs == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.01)
    assert q.clipped_fraction == 0.0


def test_leading_and_trailing_silence_are_measured_to_the_frame():
    sr = 16000
    y = np.concatenate([np.zeros(int(0.25 * sr)), tone(0.5, sr), np.zeros(int(0.1 * sr))]).astype(np.float32)
    q = audio_quality(y, sr)
    assert q.leading_silence_ms == pytest.approx(250, abs=10)
    assert q.trailing_silence_ms == pytest.approx(100, abs=10)


def test_clipping_is_the_fraction_of_full_scale_samples():
    y = tone(1.0, amp=2.0).clip(-1, 1)
    expected = float(np.mean(np.abs(y) >= 0.999))
    assert audio_quality(y, 16000).clipped_fraction == pytest.approx(expected)
    assert expected > 0.3


def test_snr_estimate_separates_clean_from_noisy():
    rng = np.random.default_rng(0)
    sr = 16000
    speech = np.concatenate([np.zeros(sr // 2), tone(1.0, sr), np.zeros(sr // 2)]).astype(np.float32)
    clean = audio_quality(speech + 1e-4 * rng.standard_normal(len(speech)).astype(np.float32), sr)
    noisy = audio_quality(speech + 0.05 * rng.standard_normal(len(speech)).astype(np.float32), sr)
    assert clean.snr_db > noisy.snr_db + 20


def test_stereo_is_mixed_and_clipping_counts_any_channel():
    left = tone(0.5, amp=0.5)
    right = np.ones_like(left)
    q = audio_quality(np.stack([left, right], axis=1), 16000)
    assert q.clipped_fraction == 1.0


def test_empty_clip_is_refused():
    with pytest.raises(ValueError, match="empty"):
        audio_quality(np.zeros(0, dtype=np.float32), 16000)


def test_measuring_in_blocks_gives_the_whole_clip_measures():
    from analysis.quality import QualityMeter

    sr = 16000
    rng = np.random.default_rng(3)
    speech = np.concatenate([np.zeros(sr // 2), 0.1 * rng.standard_normal(3 * sr), np.zeros(sr // 4 + 37)])
    y = np.stack([speech, 0.5 * speech], axis=1).astype(np.float32)
    y[sr, 0] = 1.0  # one clipped sample
    whole = audio_quality(y, sr)
    meter = QualityMeter(sr)
    for start in range(0, len(y), 7 * meter.frame):
        meter.add(y[start : start + 7 * meter.frame])
    blocks = meter.result()
    mixed = y.astype(np.float64).mean(axis=1)
    assert blocks.rms_dbfs == pytest.approx(20 * np.log10(np.sqrt(np.mean(mixed**2))), abs=1e-6)
    assert blocks.peak_dbfs == pytest.approx(20 * np.log10(np.abs(mixed).max()), abs=1e-5)
    assert blocks.clipped_fraction == pytest.approx(1 / len(y))
    assert blocks.leading_silence_ms == pytest.approx(500.0)
    for name in ("leading_silence_ms", "trailing_silence_ms", "snr_db"):
        assert getattr(blocks, name) == pytest.approx(getattr(whole, name), abs=1e-6)
