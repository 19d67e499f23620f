"""Views of one decoded signal for display: :func:`waveform_envelope` and :func:`spectrogram_db`.

Both bound their output size, so a ten-minute recording plots as fast as a one-second command word.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd


def waveform_envelope(y: npt.ArrayLike, sr: int, *, points: int = 2000) -> pd.DataFrame:
    """Min/max envelope of a mono signal in at most ``points`` buckets.

    Returns
    -------
    DataFrame with columns ``time_s`` (bucket start), ``min`` and ``max``.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError("waveform_envelope expects a mono signal")
    n = len(y)
    if n == 0:
        return pd.DataFrame({"time_s": [], "min": [], "max": []})
    size = max(1, int(np.ceil(n / points)))
    pad = (-n) % size
    padded = np.pad(y, (0, pad), mode="edge") if pad else y
    blocks = padded.reshape(-1, size)
    return pd.DataFrame(
        {
            "time_s": np.arange(len(blocks)) * size / sr,
            "min": blocks.min(axis=1),
            "max": blocks.max(axis=1),
        }
    )


def spectrogram_db(
    y: npt.ArrayLike, sr: int, *, n_fft: int = 512, max_frames: int = 800, top_db: float = 80.0
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float32]]:
    """Magnitude spectrogram in dB relative to its maximum, floored at ``-top_db``.

    Returns
    -------
    (times_s, freqs_hz, S_db) with ``S_db`` of shape (len(freqs_hz), len(times_s)).
    """
    import librosa

    y = np.asarray(y, dtype=np.float32)
    n_fft = int(min(n_fft, max(16, 2 ** int(np.floor(np.log2(max(len(y), 16)))))))
    hop = max(n_fft // 4, int(np.ceil(len(y) / max_frames)))
    S = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, center=True))
    S_db = librosa.amplitude_to_db(S, ref=np.max, top_db=top_db).astype(np.float32)
    times = librosa.frames_to_time(np.arange(S.shape[1]), sr=sr, hop_length=hop)
    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    return times, freqs, S_db
