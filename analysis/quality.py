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


class QualityMeter:
    """:func:`audio_quality` fed in blocks, so a long recording is measured without holding it whole.

    Feed consecutive blocks of samples (shape ``(n,)`` or ``(n, channels)``) with :meth:`add`; every
    block but the last must hold a whole number of frames (:attr:`frame` samples). :meth:`result` gives
    the same measures :func:`audio_quality` gives for the concatenated samples. Memory is the frame
    levels (one float per 10 ms) and a block at a time.
    """

    def __init__(self, sr: int, *, frame_ms: float = 10.0, clip_level: float = 0.999) -> None:
        self.sr = sr
        self.frame_ms = frame_ms
        self.clip_level = clip_level
        self.frame = max(1, round(sr * frame_ms / 1000))
        self._rms: list[npt.NDArray[np.float64]] = []
        self._n = 0
        self._clipped = 0
        self._peak = 0.0
        self._sum_sq = 0.0
        self._ragged = False

    def add(self, block: npt.ArrayLike) -> None:
        samples = np.asarray(block, dtype=np.float32)
        if len(samples) == 0:
            return
        if self._ragged:
            raise ValueError("only the last block may hold a partial frame")
        if samples.ndim == 2:
            self._clipped += int(np.count_nonzero(np.any(np.abs(samples) >= self.clip_level, axis=1)))
            samples = samples.mean(axis=1)
        else:
            self._clipped += int(np.count_nonzero(np.abs(samples) >= self.clip_level))
        self._ragged = len(samples) % self.frame != 0
        self._n += len(samples)
        self._peak = max(self._peak, float(np.max(np.abs(samples))))
        self._sum_sq += float(np.sum(np.square(samples, dtype=np.float64)))
        self._rms.append(frame_rms(samples, self.frame))

    @property
    def samples(self) -> int:
        return self._n

    def result(self, *, silence_db: float = -50.0, relative_db: float = 40.0) -> Quality:
        if self._n == 0:
            raise ValueError("cannot measure an empty clip")
        frame_ms = self.frame_ms
        rms_db = to_db(np.concatenate(self._rms))
        threshold = max(silence_db, float(rms_db.max()) - relative_db)
        voiced = np.flatnonzero(rms_db >= threshold)
        total_ms = 1000.0 * self._n / self.sr
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
            peak_dbfs=float(to_db(self._peak)),
            rms_dbfs=float(to_db(np.sqrt(self._sum_sq / self._n))),
            leading_silence_ms=float(leading),
            trailing_silence_ms=float(trailing),
            clipped_fraction=self._clipped / self._n,
            snr_db=snr,
        )


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
    meter = QualityMeter(sr, frame_ms=frame_ms, clip_level=clip_level)
    meter.add(y)
    return meter.result(silence_db=silence_db, relative_db=relative_db)
