"""Audio-quality measures of one decoded clip: call :func:`audio_quality`.

Levels are in dBFS (0 dBFS is digital full scale). Silence is judged on 10 ms frames: a frame is
silent when its RMS is below ``silence_db`` dBFS or more than ``relative_db`` below the loudest frame,
so both quiet studio takes and noisy field recordings get a sensible edge.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

FLOOR_DB = -120.0


@dataclass(frozen=True)
class Quality:
    peak_dbfs: float
    rms_dbfs: float
    leading_silence_ms: float
    trailing_silence_ms: float
    clipped_fraction: float
    snr_db: float | None

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)


def to_db(x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Amplitude to decibels, floored at -120 dB so silence stays finite."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.maximum(20.0 * np.log10(np.abs(x)), FLOOR_DB)


def frame_rms(y: npt.NDArray[np.floating], frame: int) -> npt.NDArray[np.float64]:
    n = len(y) // frame
    if n == 0:
        return np.sqrt(np.mean(np.square(y, dtype=np.float64), keepdims=True))
    blocks = y[: n * frame].reshape(n, frame).astype(np.float64)
    rms = np.sqrt(np.mean(blocks * blocks, axis=1))
    if len(y) > n * frame:  # keep the tail so trailing silence is measured to the last sample
        tail = y[n * frame :].astype(np.float64)
        rms = np.append(rms, np.sqrt(np.mean(tail * tail)))
    return rms


def audio_quality(
    y: npt.ArrayLike,
    sr: int,
    *,
    frame_ms: float = 10.0,
    silence_db: float = -50.0,
    relative_db: float = 40.0,
    clip_level: float = 0.999,
) -> Quality:
    """Measure a clip.

    Parameters
    ----------
    y : array, shape (n,) or (n, channels)
        Samples as floats in [-1, 1] (soundfile's default), channels mixed by averaging.
    sr : int
        Sample rate in Hz.

    Returns
    -------
    Quality
        Peak and RMS level (dBFS), leading and trailing silence (ms), the fraction of samples at or
        beyond ``clip_level`` of full scale (on any channel), and an SNR estimate (dB) from the
        loudest vs quietest tenth of frames, or None for clips shorter than ten frames.
    """
    samples = np.asarray(y, dtype=np.float32)
    if samples.ndim == 2:
        clipped = float(np.mean(np.any(np.abs(samples) >= clip_level, axis=1))) if len(samples) else 0.0
        samples = samples.mean(axis=1)
    else:
        clipped = float(np.mean(np.abs(samples) >= clip_level)) if len(samples) else 0.0
    y = samples
    if len(y) == 0:
        raise ValueError("cannot measure an empty clip")
    frame = max(1, round(sr * frame_ms / 1000))
    rms_db = to_db(frame_rms(y, frame))
    threshold = max(silence_db, float(rms_db.max()) - relative_db)
    voiced = np.flatnonzero(rms_db >= threshold)
    total_ms = 1000.0 * len(y) / sr
    if len(voiced) == 0:
        leading = trailing = total_ms
    else:
        leading = min(total_ms, voiced[0] * frame_ms)
        trailing = max(0.0, total_ms - (voiced[-1] + 1) * frame_ms)
    snr = None
    if len(rms_db) >= 10:
        ordered = np.sort(rms_db)
        tenth = max(1, len(ordered) // 10)
        snr = float(ordered[-tenth:].mean() - ordered[:tenth].mean())
    return Quality(
        peak_dbfs=float(to_db(np.max(np.abs(y)))),
        rms_dbfs=float(to_db(np.sqrt(np.mean(np.square(y, dtype=np.float64))))),
        leading_silence_ms=float(leading),
        trailing_silence_ms=float(trailing),
        clipped_fraction=clipped,
        snr_db=snr,
    )
