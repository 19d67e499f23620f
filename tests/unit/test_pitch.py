import numpy as np
import pytest
import soundfile as sf

from analysis.pitch import median_pitch, median_pitch_full_rate, yin_frames


def harmonic(f0: float, sr: int, seconds: float = 0.8) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    y = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 9) if f0 * k < sr / 2)
    return 0.3 * y / np.max(np.abs(y))


def test_yin_on_cut_frames_equals_librosa_yin(run_librosa):
    sr, frame, hop = 4000, 256, 40
    t = np.arange(sr) / sr
    rng = np.random.default_rng(3)
    voiced = np.sin(2 * np.pi * 140 * t) + 0.3 * np.sin(2 * np.pi * 280 * t) + 0.05 * rng.standard_normal(sr)
    signals = np.stack([voiced, rng.standard_normal(sr)])
    theirs = run_librosa(
        "print(json.dumps([librosa.yin(y, fmin=60, fmax=400, sr=4000, frame_length=256, hop_length=40)"
        ".tolist() for y in ys]))\n",
        signals,
    )
    for y, expected in zip(signals, theirs, strict=True):
        # librosa centres its frames on a signal padded with half a frame of zeros on each side. On
        # white noise the troughs are shallow and the refinement amplifies rounding (a shorter FFT).
        frames = np.lib.stride_tricks.sliding_window_view(np.pad(y, frame // 2), frame)[::hop]
        np.testing.assert_allclose(yin_frames(frames, sr=sr, fmin=60, fmax=400), expected, rtol=1e-5)


@pytest.mark.parametrize("sr", [8000, 16000, 22050])
@pytest.mark.parametrize("f0", [100.0, 180.0, 310.0])
def test_median_pitch_of_a_harmonic_tone_is_its_fundamental(sr, f0):
    assert median_pitch(harmonic(f0, sr), sr) == pytest.approx(f0, rel=0.01)
    assert median_pitch_full_rate(harmonic(f0, sr), sr) == pytest.approx(f0, rel=0.01)


def test_only_loud_frames_vote():
    sr = 8000
    loud = harmonic(120.0, sr, 0.5)
    quiet = 10 ** (-40 / 20) * harmonic(300.0, sr, 1.0)  # twice as long, 40 dB down
    assert median_pitch(np.concatenate([loud, quiet]), sr) == pytest.approx(120.0, rel=0.01)


def test_silent_or_empty_clip_has_no_pitch():
    assert np.isnan(median_pitch(np.zeros(4000), 8000))
    assert np.isnan(median_pitch(np.zeros(0), 8000))
    with pytest.raises(ValueError, match="sample rate"):
        median_pitch(np.ones(100), 0)


@pytest.mark.fsdd
def test_fast_pitch_gives_the_full_rate_median_on_real_speech(fsdd_dir):
    paths = sorted((fsdd_dir / "recordings").glob("*.wav"))[::25]  # 80 clips, all four speakers
    fast, full = [], []
    for path in paths:
        y, sr = sf.read(path)
        fast.append(median_pitch(y, sr))
        full.append(median_pitch_full_rate(y, sr))
    diff = np.abs(np.array(fast) - np.array(full))
    # Half the clips within half a hertz; the rest differ where the median sits between a
    # voice's two octaves, which either estimator may take.
    assert np.median(diff) < 0.5
    assert np.mean(diff < 5.0) > 0.8


@pytest.mark.fsdd
@pytest.mark.slow
def test_fast_pitch_is_within_5_hz_of_pyin_on_real_speech(fsdd_dir, run_librosa):
    paths = sorted((fsdd_dir / "recordings").glob("*.wav"))[::100]  # 20 clips, five per speaker
    clips = [sf.read(p)[0] for p in paths]
    width = max(len(y) for y in clips)
    signals = np.stack([np.pad(y, (0, width - len(y))) for y in clips])
    lengths = [len(y) for y in clips]
    theirs = run_librosa(
        f"lengths = {lengths}\n"
        "out = []\n"
        "for y, n in zip(ys, lengths):\n"
        "    f0, voiced, _ = librosa.pyin(\n"
        "        y[:n], fmin=60, fmax=400, sr=8000, frame_length=512, hop_length=80\n"
        "    )\n"
        "    out.append(float(np.median(f0[voiced])) if voiced.any() else None)\n"
        "print(json.dumps(out))\n",
        signals,
    )
    ours = np.array([median_pitch(y, 8000) for y in clips])
    reference = np.array([np.nan if v is None else v for v in theirs])
    known = np.isfinite(reference)
    assert known.sum() >= 15
    assert np.median(np.abs(ours[known] - reference[known])) <= 5.0
