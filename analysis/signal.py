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

    Frames are centred (``n_fft // 2`` zeros at each end) and Hann-windowed, as ``librosa.stft``
    does; plain numpy, because librosa's first STFT in a process costs seconds (its lazy imports
    and compiled helpers) and a page shows this on its first render.

    Returns
    -------
    (times_s, freqs_hz, S_db) with ``S_db`` of shape (len(freqs_hz), len(times_s)).
    """
    y = np.asarray(y, dtype=np.float32)
    n_fft = int(min(n_fft, max(16, 2 ** int(np.floor(np.log2(max(len(y), 16)))))))
    hop = max(n_fft // 4, int(np.ceil(len(y) / max_frames)))
    padded = np.pad(y, n_fft // 2)
    n_frames = 1 + max(0, len(padded) - n_fft) // hop
    frames = padded[np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]]
    window = np.hanning(n_fft + 1)[:-1]  # periodic Hann
    S = np.abs(np.fft.rfft(frames * window, axis=1)).T
    amin = 1e-5
    db = 20 * np.log10(np.maximum(S, amin)) - 20 * np.log10(max(float(S.max(initial=0.0)), amin))
    S_db: npt.NDArray[np.float32] = np.maximum(db, db.max(initial=0.0) - top_db).astype(np.float32)
    times = np.arange(n_frames, dtype=np.float64) * hop / sr
    freqs: npt.NDArray[np.float64] = np.fft.rfftfreq(n_fft, d=1 / sr).astype(np.float64)
    return times, freqs, S_db
