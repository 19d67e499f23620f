"""Median pitch of a clip, the drift measure ``pitch_hz``: call :func:`median_pitch`.

- :func:`median_pitch` -- the median YIN fundamental over the frames within ``voicing_db`` of the
  clip's loudest, estimated on the signal at 4 kHz and only on those frames.
- :func:`median_pitch_full_rate` -- the same summary with YIN run at the clip's own rate on every
  frame and the quiet frames dropped afterwards: the estimator the drift measures used before, kept
  as the baseline the fast one is measured against.
- :func:`yin_frames` -- YIN on frames already cut (one row per frame).

Why the fast one gives the same answer: speech F0 lies below 400 Hz, so the band above 2 kHz carries
nothing YIN needs, and the frames that do not vote for the median need no estimate. Both run the same
YIN (de Cheveigné & Kawahara 2002, the formulation of ``librosa.yin``) on frames of the same duration
(64 ms at 8 kHz), centred on the same instants 10 ms apart, with the same voicing rule. On FSDD the
two medians differ by 0.2 Hz for the typical clip; ``bench/bench_drift.py`` reports the spread of the
differences and the error of each against ``librosa.pyin``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import scipy.fft
import soxr

from analysis.features import next_pow2, yin

__all__ = ["PITCH_RATE", "median_pitch", "median_pitch_full_rate", "yin_frames"]

PITCH_RATE = 4000
"""Rate (Hz) :func:`median_pitch` brings a clip to before estimating; clips at or below it stay."""

FMIN, FMAX, VOICING_DB, HOP_S = 60.0, 400.0, 25.0, 0.010


def yin_frames(
    frames: np.ndarray, *, sr: int, fmin: float, fmax: float, trough_threshold: float = 0.1
) -> np.ndarray:
    """YIN fundamental frequency (Hz) of each row of ``frames`` (shape ``(n_frames, frame_length)``).

    The estimator of ``librosa.yin`` and :func:`analysis.features.yin` (cumulative mean normalised
    difference, first trough below the threshold or else the global minimum, parabolic refinement),
    with the autocorrelation computed only as far as the longest period and the refinement only at the
    chosen lag.
    """
    frames = np.asarray(frames)
    if frames.dtype != np.float32:
        frames = frames.astype(np.float64)
    n, length = frames.shape
    min_period = int(np.floor(sr / fmax))
    max_period = min(int(np.ceil(sr / fmin)), length - 1)
    if n == 0:
        return np.empty(0)
    # Autocorrelation up to max_period by FFT: a transform of length + max_period avoids wrap-around.
    size = scipy.fft.next_fast_len(length + max_period + 1, real=True)
    spectrum = scipy.fft.rfft(frames, n=size, axis=1)
    acf = scipy.fft.irfft(spectrum.real**2 + spectrum.imag**2, n=size, axis=1)[:, : max_period + 1]
    # d(t) = r(0) + (energy from sample t on) - 2 r(t) (eq. 7 of the paper, over the whole frame).
    head = np.cumsum(frames[:, :max_period] ** 2, axis=1)
    diff = 2.0 * (acf[:, :1] - acf[:, 1:]) - head
    mean = np.cumsum(diff, axis=1) / np.arange(1, max_period + 1)
    cmnd = diff[:, min_period - 1 :] / (mean[:, min_period - 1 :] + np.finfo(frames.dtype).tiny)
    # cmnd[:, j] is lag min_period + j. A trough is below its left neighbour and not above its right;
    # the first lag needs only to be below its right one.
    trough = np.empty_like(cmnd, dtype=bool)
    trough[:, 1:-1] = (cmnd[:, 1:-1] < cmnd[:, :-2]) & (cmnd[:, 1:-1] <= cmnd[:, 2:])
    trough[:, 0] = cmnd[:, 0] < cmnd[:, 1]
    trough[:, -1] = False
    below = trough & (cmnd < trough_threshold)
    found = below.any(axis=1)
    period = np.where(found, np.argmax(below, axis=1), np.argmin(cmnd, axis=1))
    # Parabolic refinement from the two neighbours; the first and last lags are not refined.
    rows = np.arange(n)
    inner = (period > 0) & (period < cmnd.shape[1] - 1)
    left = cmnd[rows, np.maximum(period - 1, 0)]
    mid = cmnd[rows, period]
    right = cmnd[rows, np.minimum(period + 1, cmnd.shape[1] - 1)]
    a = right + left - 2.0 * mid
    b = (right - left) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(inner & (np.abs(b) < np.abs(a)), -b / a, 0.0)
    return sr / (min_period + period + shift)


def _mono(y: npt.ArrayLike) -> np.ndarray:
    x = np.asarray(y, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.ndim != 1:
        raise ValueError(f"expected samples of shape (n,) or (n, channels), got {x.shape}")
    return x


def _loud_frames(x: np.ndarray, frame: int, hop: int, voicing_db: float) -> np.ndarray:
    """Which centred frames (``frame`` samples, ``hop`` apart, the signal padded by half a frame on
    each side) are within ``voicing_db`` of the loudest, from one running sum of squares."""
    half = frame // 2
    n_frames = 1 + max(0, x.size + 2 * half - frame) // hop
    energy = np.zeros(x.size + 2 * half + 1)
    energy[half + 1 : half + 1 + x.size] = np.cumsum(x * x)
    energy[half + 1 + x.size :] = energy[half + x.size]
    starts = np.arange(n_frames) * hop
    power = np.maximum(energy[starts + frame] - energy[starts], 0.0)
    return power >= power.max() * 10 ** (-voicing_db / 10)


def median_pitch(
    y: npt.ArrayLike,
    sr: int,
    *,
    fmin: float = FMIN,
    fmax: float = FMAX,
    voicing_db: float = VOICING_DB,
) -> float:
    """Median YIN F0 (Hz) over the frames within ``voicing_db`` of the clip's loudest.

    Frames last two periods of ``fmin`` rounded up to a power of two at the clip's rate (64 ms at
    8 kHz), are centred 10 ms apart and judged loud at the clip's own rate; YIN then runs on those
    frames only, on the signal resampled to :data:`PITCH_RATE` (soxr). ``fmax`` is capped at a quarter
    of the clip's rate. NaN for a silent or empty clip.

    Parameters
    ----------
    y : array, shape (n,) or (n, channels)
        Samples; channels are averaged.
    sr : int
        Sample rate in Hz.
    """
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    x = _mono(y)
    if x.size == 0 or not np.any(x):
        return math.nan
    fmax = min(fmax, sr / 4)
    frame = next_pow2(2 * math.ceil(sr / fmin) + 2)
    hop = max(1, round(HOP_S * sr))
    loud = _loud_frames(x, frame, hop, voicing_db)
    rate = min(sr, PITCH_RATE)
    if rate != sr:
        x = soxr.resample(x, sr, rate, quality="LQ")
    # The same frames at the lower rate: same duration, same centres.
    length = max(2, round(frame * rate / sr))
    centres = np.round(np.flatnonzero(loud) * hop * rate / sr).astype(int)
    # Zero-padded by half a frame before and a frame after, as float32; only the loud frames are cut.
    padded = np.zeros(x.size + length // 2 + length, dtype=np.float32)
    padded[length // 2 : length // 2 + x.size] = x
    frames = padded[centres[:, None] + np.arange(length)]
    return float(np.median(yin_frames(frames, sr=rate, fmin=fmin, fmax=fmax)))


def median_pitch_full_rate(
    y: npt.ArrayLike,
    sr: int,
    *,
    fmin: float = FMIN,
    fmax: float = FMAX,
    voicing_db: float = VOICING_DB,
) -> float:
    """:func:`median_pitch` the slow way: :func:`analysis.features.yin` at the clip's own rate over
    every frame, then the median over the loud ones. The baseline for :func:`median_pitch`."""
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    x = _mono(y)
    if x.size == 0 or not np.any(x):
        return math.nan
    fmax = min(fmax, sr / 4)
    frame = next_pow2(2 * math.ceil(sr / fmin) + 2)
    hop = max(1, round(HOP_S * sr))
    f0 = yin(
        np.pad(x, (0, max(0, frame - x.size))),
        fmin=fmin,
        fmax=fmax,
        sr=sr,
        frame_length=frame,
        hop_length=hop,
    )
    padded = np.pad(x, (frame // 2, frame // 2))
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame)[::hop][: len(f0)]
    power = np.mean(frames * frames, axis=1)
    loud = power >= power.max() * 10 ** (-voicing_db / 10)
    return float(np.median(f0[loud]))
