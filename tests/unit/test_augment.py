"""Augmentation transforms, checked with numpy, scipy.signal.welch and YIN as the measures.

YIN is analysis.features.yin, which tests/unit/test_features.py checks against librosa.yin.
"""

from __future__ import annotations

import librosa
import numpy as np
import pytest
from scipy import signal

from analysis.augment import (
    babble_noise,
    car_noise,
    mix_at_snr,
    peak_normalize,
    pitch_shift,
    room_reverb,
    speed_change,
    telephone_channel,
)
from analysis.features import yin

SR = 16_000


def vowel(f0: float = 140.0, seconds: float = 1.0, *, sr: int = SR, pad: float = 0.2) -> np.ndarray:
    """A voiced, vowel-like sound: a sawtooth through two formant resonators, with silence around it."""
    t = np.arange(int(seconds * sr)) / sr
    source = signal.sawtooth(2 * np.pi * f0 * t)
    for formant, bandwidth in ((700.0, 110.0), (1200.0, 120.0)):
        b, a = signal.iirpeak(formant, formant / bandwidth, fs=sr)
        source = signal.lfilter(b, a, source)
    envelope = np.sin(np.pi * t / seconds) ** 0.5
    silence = np.zeros(int(pad * sr))
    return np.concatenate([silence, 0.3 * source * envelope, silence])


def measured_snr_db(speech: np.ndarray, mixture: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(speech**2) / np.sum((mixture - speech) ** 2)))


def band_fraction(x: np.ndarray, lo: float, hi: float, *, sr: int = SR) -> float:
    freqs, psd = signal.welch(x, fs=sr, nperseg=1024)
    return float(psd[(freqs >= lo) & (freqs < hi)].sum() / psd.sum())


def median_f0(x: np.ndarray, *, sr: int = SR) -> float:
    f0 = yin(x, fmin=60.0, fmax=500.0, sr=sr, frame_length=2048, hop_length=2048 // 4)
    rms = librosa.feature.rms(y=x, frame_length=2048, hop_length=512)[0]
    voiced = rms[: len(f0)] > 0.3 * rms.max()
    return float(np.median(f0[voiced]))


@pytest.mark.parametrize("snr_db", [20.0, 10.0, 5.0, 0.0, -5.0])
@pytest.mark.parametrize("noise_seconds", [0.3, 1.4, 5.0])
def test_mix_reaches_the_requested_snr(snr_db: float, noise_seconds: float) -> None:
    speech = vowel()
    noise = np.random.default_rng(1).standard_normal(int(noise_seconds * SR))
    mixture = mix_at_snr(speech, noise, snr_db=snr_db, random_state=7)
    assert mixture.shape == speech.shape
    assert measured_snr_db(speech, mixture) == pytest.approx(snr_db, abs=0.1)


@pytest.mark.parametrize("snr_db", [20.0, 10.0, 5.0])
def test_mix_with_car_noise_reaches_the_requested_snr(snr_db: float) -> None:
    speech = vowel()
    noise = car_noise(3 * SR, sr=SR, random_state=3)
    assert measured_snr_db(speech, mix_at_snr(speech, noise, snr_db=snr_db, random_state=0)) == (
        pytest.approx(snr_db, abs=0.1)
    )


def test_mix_is_deterministic_and_leaves_inputs_alone() -> None:
    speech = vowel()
    noise = np.random.default_rng(2).standard_normal(4 * SR)
    speech_before, noise_before = speech.copy(), noise.copy()
    first = mix_at_snr(speech, noise, snr_db=10.0, random_state=5)
    again = mix_at_snr(speech, noise, snr_db=10.0, random_state=5)
    other = mix_at_snr(speech, noise, snr_db=10.0, random_state=6)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other), "another seed should take another stretch of the noise"
    np.testing.assert_array_equal(speech, speech_before)
    np.testing.assert_array_equal(noise, noise_before)


def test_mix_refuses_silence() -> None:
    with pytest.raises(ValueError, match="speech is silent"):
        mix_at_snr(np.zeros(SR), np.ones(SR), snr_db=10.0)
    with pytest.raises(ValueError, match="noise is silent"):
        mix_at_snr(vowel(), np.zeros(SR), snr_db=10.0)
    with pytest.raises(ValueError, match="mono"):
        mix_at_snr(np.ones((2, SR)), np.ones(SR), snr_db=10.0)


def test_car_noise_is_low_frequency_unit_level_and_seeded() -> None:
    noise = car_noise(2 * SR, sr=SR, random_state=11)
    assert noise.shape == (2 * SR,)
    assert np.sqrt(np.mean(noise**2)) == pytest.approx(1.0)
    assert band_fraction(noise, 0, 500) > 0.9
    np.testing.assert_array_equal(noise, car_noise(2 * SR, sr=SR, random_state=11))
    assert not np.array_equal(noise, car_noise(2 * SR, sr=SR, random_state=12))


def test_car_noise_has_the_engine_harmonics() -> None:
    noise = car_noise(8 * SR, sr=SR, engine_hz=40.0, random_state=0)
    freqs, psd = signal.welch(noise, fs=SR, nperseg=SR)  # 1 Hz bins
    # The revs wander by 3 %, so look for a peak near each harmonic, above the rumble between them.
    for harmonic in (2, 3):
        near = psd[(freqs > harmonic * 40 * 0.96) & (freqs < harmonic * 40 * 1.04)].max()
        between = np.median(psd[(freqs > harmonic * 40 + 8) & (freqs < harmonic * 40 + 16)])
        assert near > 5 * between


def test_babble_overlaps_the_sources_and_is_seeded() -> None:
    sources = [vowel(f0, 0.5) for f0 in (110.0, 150.0, 190.0, 230.0)]
    babble = babble_noise(sources, n_samples=3 * SR, n_talkers=4, random_state=2)
    assert babble.shape == (3 * SR,)
    assert np.sqrt(np.mean(babble**2)) == pytest.approx(1.0)
    np.testing.assert_array_equal(
        babble, babble_noise(sources, n_samples=3 * SR, n_talkers=4, random_state=2)
    )
    # Talkers overlap, so there are hardly any gaps: most 50 ms frames carry speech.
    frames = librosa.feature.rms(y=babble, frame_length=800, hop_length=800)[0]
    assert np.mean(frames > 0.1 * frames.max()) > 0.8
    # Several voices at once: more than one of the sources' pitches is present.
    freqs, psd = signal.welch(babble, fs=SR, nperseg=SR)
    peaks = [psd[(freqs > f0 - 3) & (freqs < f0 + 3)].max() for f0 in (110.0, 150.0, 190.0, 230.0)]
    assert min(peaks) > 10 * np.median(psd[(freqs > 80) & (freqs < 260)])


def test_babble_needs_a_source() -> None:
    with pytest.raises(ValueError, match="non-silent source"):
        babble_noise([np.zeros(SR)], n_samples=SR)


@pytest.mark.parametrize("mu_law", [True, False])
def test_telephone_removes_energy_outside_300_to_3400_hz(mu_law: bool) -> None:
    noise = 0.1 * np.random.default_rng(0).standard_normal(4 * SR)
    phone = telephone_channel(noise, sr=SR, mu_law=mu_law)
    assert phone.shape == noise.shape
    assert band_fraction(noise, 0, 300) > 0.03
    assert band_fraction(noise, 3400, SR / 2) > 0.5
    assert band_fraction(phone, 0, 250) < 0.005
    assert band_fraction(phone, 3700, SR / 2) < 0.005
    assert band_fraction(phone, 0, 300) + band_fraction(phone, 3400, SR / 2) < 0.03
    # The voice band itself passes at about its original level.
    _, psd_in = signal.welch(noise, fs=SR, nperseg=1024)
    freqs, psd_out = signal.welch(phone, fs=SR, nperseg=1024)
    band = (freqs > 500) & (freqs < 3000)
    assert 10 * np.log10(psd_out[band].sum() / psd_in[band].sum()) == pytest.approx(0.0, abs=1.0)


def test_telephone_keeps_words_in_place() -> None:
    speech = vowel(seconds=0.5, pad=0.5)
    phone = telephone_channel(speech, sr=SR)
    lag = np.argmax(signal.correlate(phone, speech, mode="full")) - (len(speech) - 1)
    assert abs(lag) <= 2


@pytest.mark.parametrize("factor", [0.8, 0.9, 1.1, 1.5])
def test_speed_change_divides_the_duration(factor: float) -> None:
    speech = vowel(seconds=1.0)
    faster = speed_change(speech, factor=factor)
    assert len(faster) / len(speech) == pytest.approx(1 / factor, rel=1e-3)
    # Played faster, the pitch rises by the same factor.
    assert median_f0(faster) / median_f0(speech) == pytest.approx(factor, rel=0.03)


def test_speed_change_rejects_absurd_factors() -> None:
    with pytest.raises(ValueError, match="factor"):
        speed_change(vowel(), factor=0.0)


@pytest.mark.parametrize("n_steps", [-3.0, 2.0, 4.0, 7.0])
def test_pitch_shift_moves_f0_by_the_semitone_ratio(n_steps: float) -> None:
    speech = vowel(f0=140.0, seconds=1.0)
    shifted = pitch_shift(speech, sr=SR, n_steps=n_steps)
    assert shifted.shape == speech.shape
    assert median_f0(shifted) / median_f0(speech) == pytest.approx(2 ** (n_steps / 12), rel=0.03)


def test_room_reverb_adds_a_decaying_tail() -> None:
    burst = np.zeros(SR)
    burst[1000:1400] = np.random.default_rng(0).standard_normal(400)
    wet = room_reverb(burst, sr=SR, rt60=0.4, random_state=1)
    assert wet.shape == burst.shape
    after = wet[1400 + int(0.02 * SR) :]
    assert np.mean(after[:1600] ** 2) > 1e-4 * np.mean(burst[1000:1400] ** 2)
    early, late = np.mean(after[:1600] ** 2), np.mean(after[3200:4800] ** 2)
    assert late < early
    np.testing.assert_array_equal(wet, room_reverb(burst, sr=SR, rt60=0.4, random_state=1))


def test_peak_normalize_sets_the_peak() -> None:
    y = peak_normalize(vowel(), peak_dbfs=-6.0)
    assert 20 * np.log10(np.max(np.abs(y))) == pytest.approx(-6.0)
    np.testing.assert_array_equal(peak_normalize(np.zeros(10)), np.zeros(10))
