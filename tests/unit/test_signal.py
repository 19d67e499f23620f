"""The display spectrogram against scipy's STFT (an independent implementation of the same transform)."""

from __future__ import annotations

import numpy as np
from scipy import signal

from analysis.signal import spectrogram_db


def test_spectrogram_matches_scipy_stft_in_db_below_the_peak():
    sr = 16000
    t = np.arange(int(0.7 * sr)) / sr
    rng = np.random.default_rng(0)
    y = (0.5 * signal.chirp(t, 200, t[-1], 4000) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    y[: int(0.1 * sr)] = 0.0  # silence: the -80 dB floor
    times, freqs, S_db = spectrogram_db(y, sr)
    hop = 128  # n_fft // 4 for a short clip
    f, frames_t, Z = signal.stft(
        y, fs=sr, window="hann", nperseg=512, noverlap=512 - hop, boundary="zeros", padded=True, detrend=False
    )
    ref = 20 * np.log10(np.maximum(np.abs(Z), 1e-12))
    ref -= ref.max()
    ref = np.maximum(ref, -80.0)
    n = min(S_db.shape[1], ref.shape[1])
    assert S_db.shape[1] >= ref.shape[1] - 1
    np.testing.assert_allclose(freqs, f)
    np.testing.assert_allclose(times[:n], frames_t[:n])
    np.testing.assert_allclose(S_db[:, :n], ref[:, :n], atol=1e-3)
    assert S_db.min() == -80.0
    assert S_db[:, 2].max() == -80.0  # a frame inside the leading silence is all floor
