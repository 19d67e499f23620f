"""Audio features: each column agrees with a direct librosa call, and the frame caches and parallelises."""

from __future__ import annotations

import math
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import pytest
import scipy.signal
import soundfile as sf

from analysis.features import (
    INTERPRETABLE_FEATURES,
    FeatureSettings,
    decode,
    extract_features,
    feature_frame,
    feature_names,
    mel_filters,
    power_to_db,
    resample,
    stft_magnitude,
)

SR = 8000
SETTINGS = FeatureSettings(sample_rate=SR)


def voiced_signal(f0: float, *, seconds: float = 0.6, sr: int = SR, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a little noise and a fade in/out: speech-like enough for every feature."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6) if f0 * k < sr / 2)
    envelope = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.05)
    return (0.3 * envelope * tone + 0.005 * rng.normal(size=t.size)).astype(np.float32)


def librosa_reference(y: np.ndarray, sr: int, settings: FeatureSettings) -> dict[str, np.ndarray]:
    """The same measures computed the obvious way, one librosa call each."""
    n_fft, hop = settings.n_fft, settings.hop_length
    mfcc = librosa.feature.mfcc(
        y=y, sr=sr, n_mfcc=settings.n_mfcc, n_fft=n_fft, hop_length=hop, n_mels=settings.n_mels
    )
    delta = librosa.feature.delta(mfcc, width=settings.delta_width, mode="nearest")
    magnitude = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop))
    rms = librosa.feature.rms(y=y, frame_length=n_fft, hop_length=hop)[0]
    return {
        "mfcc": mfcc,
        "delta": delta,
        "centroid": librosa.feature.spectral_centroid(S=magnitude, sr=sr)[0],
        "bandwidth": librosa.feature.spectral_bandwidth(S=magnitude, sr=sr)[0],
        "rolloff": librosa.feature.spectral_rolloff(
            S=magnitude, sr=sr, roll_percent=settings.rolloff_percent
        )[0],
        "zcr": librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop)[0],
        "rms_db": 20 * np.log10(np.maximum(rms, 1e-5)),
    }


def assert_matches_librosa(features: dict[str, float], y: np.ndarray, sr: int, settings: FeatureSettings):
    ref = librosa_reference(y, sr, settings)
    n = settings.n_mfcc
    got = np.array(list(features.values()))
    np.testing.assert_allclose(got[:n], ref["mfcc"].mean(axis=1), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(got[n : 2 * n], ref["mfcc"].std(axis=1), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(got[2 * n : 3 * n], ref["delta"].mean(axis=1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got[3 * n : 4 * n], ref["delta"].std(axis=1), rtol=1e-4, atol=1e-4)
    assert features["centroid_mean_hz"] == pytest.approx(ref["centroid"].mean(), rel=1e-4)
    assert features["bandwidth_mean_hz"] == pytest.approx(ref["bandwidth"].mean(), rel=1e-4)
    assert features["rolloff_mean_hz"] == pytest.approx(ref["rolloff"].mean(), rel=1e-4)
    assert features["zcr_mean"] == pytest.approx(ref["zcr"].mean(), rel=1e-9)
    assert features["rms_dbfs_mean"] == pytest.approx(ref["rms_db"].mean(), abs=1e-3)
    assert features["duration_s"] == pytest.approx(y.size / sr)


def test_columns_are_named_in_order_and_end_with_the_readable_measures():
    names = feature_names(SETTINGS)
    assert len(names) == 4 * 20 + len(INTERPRETABLE_FEATURES)
    assert names[:2] == ["mfcc_mean_00", "mfcc_mean_01"]
    assert names[-len(INTERPRETABLE_FEATURES) :] == list(INTERPRETABLE_FEATURES)
    assert list(extract_features(voiced_signal(150), SR, settings=SETTINGS)) == names


def test_synthetic_voice_matches_direct_librosa_calls():
    y = voiced_signal(180.0)
    assert_matches_librosa(extract_features(y, SR, settings=SETTINGS), y, SR, SETTINGS)


@pytest.mark.fsdd
def test_fsdd_clip_matches_direct_librosa_calls(fsdd_dir):
    y, sr = librosa.load(fsdd_dir / "recordings" / "7_jackson_32.wav", sr=None)
    assert sr == SR
    assert_matches_librosa(extract_features(y, sr, settings=SETTINGS), y, sr, SETTINGS)


@pytest.mark.parametrize("f0", [95.0, 140.0, 220.0, 310.0])
def test_pitch_of_a_harmonic_tone_is_its_fundamental(f0):
    features = extract_features(voiced_signal(f0), SR, settings=SETTINGS)
    assert features["f0_median_hz"] == pytest.approx(f0, rel=0.02)


def test_pitch_ignores_the_silence_around_a_voice():
    silence = np.zeros(int(0.8 * SR), dtype=np.float32)
    y = np.concatenate([silence, voiced_signal(120.0, seconds=0.3), silence])
    assert extract_features(y, SR, settings=SETTINGS)["f0_median_hz"] == pytest.approx(120.0, rel=0.02)


def test_silence_gives_nan_pitch_and_spectrum_but_no_error():
    features = extract_features(np.zeros(SR // 2, dtype=np.float32), SR, settings=SETTINGS)
    assert math.isnan(features["f0_median_hz"])
    assert math.isnan(features["centroid_mean_hz"])
    assert features["rms_dbfs_mean"] == pytest.approx(-100.0)
    assert features["duration_s"] == pytest.approx(0.5)


def test_clip_shorter_than_one_window_still_gets_features():
    features = extract_features(voiced_signal(150.0, seconds=0.02), SR, settings=SETTINGS)
    assert features["duration_s"] == pytest.approx(0.02)
    assert np.isfinite(features["mfcc_mean_00"])


def test_full_scale_square_wave_is_zero_dbfs():
    y = np.sign(np.sin(2 * np.pi * 100.5 * np.arange(SR) / SR)).astype(np.float32)
    # Only the half-empty first and last frames pull the mean below 0 dBFS.
    assert extract_features(y, SR, settings=SETTINGS)["rms_dbfs_mean"] == pytest.approx(0.0, abs=0.2)


def test_other_rates_are_resampled_to_the_settings_rate():
    y16 = voiced_signal(200.0, sr=16000)
    features = extract_features(y16, 16000, settings=SETTINGS)
    y8 = librosa.resample(y16, orig_sr=16000, target_sr=SR, res_type="soxr_hq")
    expected = extract_features(y8, SR, settings=SETTINGS)
    assert features["duration_s"] == pytest.approx(y16.size / 16000)
    np.testing.assert_allclose(
        [features[k] for k in feature_names(SETTINGS)[:-1]],
        [expected[k] for k in feature_names(SETTINGS)[:-1]],
        rtol=1e-6,
    )


def test_wideband_settings_keep_high_frequencies_that_narrowband_settings_drop():
    rng = np.random.default_rng(1)
    hiss = (0.1 * rng.normal(size=16000)).astype(np.float32)
    wide = extract_features(hiss, 16000, settings=FeatureSettings(sample_rate=16000))
    narrow = extract_features(hiss, 16000, settings=FeatureSettings(sample_rate=8000))
    assert wide["centroid_mean_hz"] == pytest.approx(4000, rel=0.05)
    assert narrow["centroid_mean_hz"] == pytest.approx(2000, rel=0.05)


def test_channels_are_averaged():
    y = voiced_signal(150.0)
    stereo = np.stack([y, y])
    assert extract_features(stereo, SR, settings=SETTINGS) == extract_features(y, SR, settings=SETTINGS)


@pytest.mark.parametrize("bad", [np.zeros(0, dtype=np.float32), np.array([0.1, np.nan, 0.2])])
def test_empty_or_non_finite_signal_is_refused(bad):
    with pytest.raises(ValueError, match=r"empty|NaN"):
        extract_features(bad, SR, settings=SETTINGS)


def test_settings_choose_the_corpus_rate_up_to_16k():
    assert FeatureSettings.for_sample_rates([8000, 8000]).sample_rate == 8000
    assert FeatureSettings.for_sample_rates([8000, 16000]).sample_rate == 16000
    assert FeatureSettings.for_sample_rates([44100]).sample_rate == 16000
    assert FeatureSettings(sample_rate=8000).n_fft == 256
    assert FeatureSettings(sample_rate=16000).n_fft == 512


def test_fingerprint_changes_with_any_setting_and_only_then():
    assert FeatureSettings(sample_rate=8000).fingerprint() == SETTINGS.fingerprint()
    others = {
        FeatureSettings(sample_rate=16000).fingerprint(),
        FeatureSettings(sample_rate=8000, n_mfcc=13).fingerprint(),
        FeatureSettings(sample_rate=8000, hop_ms=12.5).fingerprint(),
    }
    assert SETTINGS.fingerprint() not in others
    assert len(others) == 3


def test_impossible_settings_are_refused():
    with pytest.raises(ValueError, match="n_mfcc"):
        FeatureSettings(n_mfcc=50, n_mels=40)
    with pytest.raises(ValueError, match="pitch"):
        FeatureSettings(sample_rate=8000, pitch_fmax=4500)


def write_clips(folder: Path, count: int) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for i in range(count):
        path = folder / f"clip{i:03d}.wav"
        sf.write(path, voiced_signal(100.0 + 3 * i, seconds=0.25 + 0.01 * (i % 7), seed=i), SR)
        paths[f"{i:064x}"] = path
    return paths


def test_frame_rows_equal_features_of_each_decoded_file(tmp_path):
    paths = write_clips(tmp_path / "audio", 5)
    frame = feature_frame(paths, settings=SETTINGS)
    assert list(frame.index) == list(paths)
    assert frame.index.name == "key"
    assert list(frame.columns) == feature_names(SETTINGS)
    for key, path in paths.items():
        y, sr = sf.read(path, dtype="float32")
        expected = extract_features(y, sr, settings=SETTINGS)
        np.testing.assert_allclose(frame.loc[key].to_numpy(), list(expected.values()), rtol=1e-12)


def test_cached_features_survive_the_audio_files_and_reports_progress(tmp_path):
    paths = write_clips(tmp_path / "audio", 6)
    cache = tmp_path / "cache"
    calls: list[tuple[int, int]] = []

    def record(done: int, total: int) -> None:
        calls.append((done, total))

    first = feature_frame(paths, settings=SETTINGS, cache_dir=cache, progress=record)
    assert calls[0] == (0, 6)
    assert calls[-1] == (6, 6)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)

    for path in paths.values():
        path.unlink()
    calls.clear()
    again = feature_frame(paths, settings=SETTINGS, cache_dir=cache, progress=record)
    pd.testing.assert_frame_equal(again, first)
    assert calls == [(6, 6)]

    # Different settings must not reuse those vectors: the files are gone, so this has to fail.
    with pytest.raises(ValueError, match="cannot compute features of clip"):
        feature_frame(paths, settings=FeatureSettings(sample_rate=SR, n_mfcc=13), cache_dir=cache)


def test_cache_adds_new_clips_beside_old_ones(tmp_path):
    paths = write_clips(tmp_path / "audio", 8)
    keys = list(paths)
    cache = tmp_path / "cache"
    feature_frame({k: paths[k] for k in keys[:4]}, settings=SETTINGS, cache_dir=cache)
    feature_frame({k: paths[k] for k in keys[4:]}, settings=SETTINGS, cache_dir=cache)
    for path in paths.values():
        path.unlink()
    frame = feature_frame(dict(reversed(paths.items())), settings=SETTINGS, cache_dir=cache)
    assert list(frame.index) == keys[::-1]
    assert frame.notna().all().all()


def test_parallel_workers_give_the_same_frame(tmp_path):
    paths = write_clips(tmp_path / "audio", 70)
    serial = feature_frame(paths, settings=SETTINGS, n_jobs=1)
    calls: list[tuple[int, int]] = []
    parallel = feature_frame(paths, settings=SETTINGS, n_jobs=2, progress=lambda d, t: calls.append((d, t)))
    pd.testing.assert_frame_equal(parallel, serial)
    assert calls[-1] == (70, 70)
    # Progress moves a few clips at a time, not once per large chunk of work.
    steps = np.diff([d for d, _ in calls])
    assert steps.max() <= 8, calls


def test_features_need_no_numba_compilation(tmp_path):
    # On a fresh install numba compiles librosa's helpers on first use in every process, for tens of
    # seconds of CPU each: the features must not wait for it. Checked in a fresh interpreter.
    import subprocess
    import sys

    paths = write_clips(tmp_path / "audio", 2)
    code = (
        "import sys\n"
        "from analysis.features import FeatureSettings, feature_frame\n"
        "frame = feature_frame(dict(zip('ab', sys.argv[1:])), settings=FeatureSettings(sample_rate=16000))\n"
        "assert frame.notna().all().all()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'llvmlite', 'librosa')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, paths.values())],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout
    assert "numba" not in out
    assert "llvmlite" not in out


def test_building_blocks_match_librosa():
    y = voiced_signal(180.0, sr=16000)
    np.testing.assert_array_equal(
        mel_filters(sr=16000, n_fft=512, n_mels=40), librosa.filters.mel(sr=16000, n_fft=512, n_mels=40)
    )
    window = scipy.signal.get_window("hann", 512, fftbins=True)
    magnitude = stft_magnitude(y, n_fft=512, hop_length=160, window=window)
    reference = np.abs(librosa.stft(y, n_fft=512, hop_length=160, window=window))
    np.testing.assert_array_equal(magnitude, reference)
    np.testing.assert_array_equal(power_to_db(magnitude**2), librosa.power_to_db(magnitude**2))
    for rate in (8000, 22050, 44100):
        np.testing.assert_array_equal(
            resample(y, orig_sr=16000, target_sr=rate),
            librosa.resample(y, orig_sr=16000, target_sr=rate, res_type="soxr_hq"),
        )


def test_parallel_workers_never_run_the_callers_main_script(tmp_path, monkeypatch):
    # Under Streamlit the app script is __main__; spawned workers must not execute it.
    import sys
    import threading
    import types

    script = tmp_path / "app_script.py"
    script.write_text("raise SystemExit('a worker ran the main script')\n")
    main = types.ModuleType("__main__")
    main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", main)
    # A second thread, as in a web server, rules out plain fork.
    stop = threading.Event()
    helper = threading.Thread(target=stop.wait)
    helper.start()
    try:
        paths = write_clips(tmp_path / "audio", 70)
        frame = feature_frame(paths, settings=SETTINGS, n_jobs=2)
    finally:
        stop.set()
        helper.join()
    assert len(frame) == 70
    assert sys.modules["__main__"] is main


def test_undecodable_file_is_named_in_the_error(tmp_path):
    paths = write_clips(tmp_path / "audio", 2)
    broken = tmp_path / "audio" / "broken.wav"
    broken.write_bytes(b"RIFF not really a wave file")
    with pytest.raises(ValueError, match="clip deadbeef"):
        feature_frame({**paths, "deadbeef": broken}, settings=SETTINGS)


def test_decode_mixes_channels_and_reports_the_file_rate(tmp_path):
    y = voiced_signal(150.0, sr=16000)
    path = tmp_path / "stereo.flac"
    sf.write(path, np.stack([y, 0 * y], axis=1), 16000)
    decoded, sr = decode(path)
    assert sr == 16000
    np.testing.assert_allclose(decoded, y / 2, atol=1e-4)


def test_numpy_yin_equals_librosa_yin(run_librosa):
    from analysis.features import yin

    sr = 8000
    t = np.arange(sr) / sr
    rng = np.random.default_rng(3)
    voiced = np.sin(2 * np.pi * 140 * t) + 0.3 * np.sin(2 * np.pi * 280 * t) + 0.05 * rng.standard_normal(sr)
    signals = np.stack([voiced, rng.standard_normal(sr)])
    theirs = run_librosa(
        "print(json.dumps([librosa.yin(y, fmin=60, fmax=500, sr=8000, frame_length=400, hop_length=160)"
        ".tolist() for y in ys]))\n",
        signals,
    )
    for y, expected in zip(signals, theirs, strict=True):
        ours = yin(y, fmin=60, fmax=500, sr=sr, frame_length=400, hop_length=160)
        np.testing.assert_allclose(ours, expected, rtol=1e-6)
