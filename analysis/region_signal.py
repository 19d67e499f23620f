"""Signal helpers for the region editor on long recordings.

- :func:`energy_vad` (decoded samples) and :func:`file_energy_vad` (a file, read in blocks) propose
  speech regions: frame RMS in dBFS, a high and a low threshold (hysteresis), gaps shorter than
  ``min_silence`` closed, regions shorter than ``min_speech`` dropped. They are proposals for an
  annotator to correct, not labels.
- :func:`snap_boundary` / :func:`file_snap_boundary` move a dragged boundary to the nearest zero
  crossing or the quietest point within a small window, so cuts do not click.
- :func:`waveform_peaks` computes min/max per pixel bucket of a long file by streaming it in blocks
  with soundfile: a 30-minute 16 kHz recording is never held whole. :class:`Peaks` coarsens them for
  zoomed-out views and cuts out the window on screen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import soundfile as sf

from analysis.quality import frame_rms, to_db
from analysis.regions import RegionError, activity_regions

FloatArray = npt.NDArray[np.float64]
SnapTo = Literal["zero_crossing", "energy_minimum"]


def _mono(y: npt.ArrayLike) -> npt.NDArray[np.float32]:
    samples = np.asarray(y, dtype=np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if samples.ndim != 1:
        raise ValueError("expected samples of shape (n,) or (n, channels)")
    return samples


def _frame_length(sr: int, frame_ms: float) -> int:
    if sr <= 0 or frame_ms <= 0:
        raise ValueError("sample rate and frame length must be positive")
    return max(1, round(sr * frame_ms / 1000))


def frame_levels_db(y: npt.ArrayLike, sr: int, *, frame_ms: float = 10.0) -> FloatArray:
    """RMS level in dBFS of consecutive frames (the last one partial), floored at -120 dB."""
    return to_db(frame_rms(_mono(y), _frame_length(sr, frame_ms)))


def file_frame_levels_db(
    path: str | Path, *, frame_ms: float = 10.0, block_seconds: float = 30.0
) -> tuple[FloatArray, float]:
    """:func:`frame_levels_db` of a file read in blocks of about ``block_seconds``.

    Returns
    -------
    (levels_db, step)
        One level per frame and the frame step in seconds (frames are whole samples long).
    """
    with sf.SoundFile(str(path)) as f:
        frame = _frame_length(f.samplerate, frame_ms)
        block = frame * max(1, round(block_seconds * f.samplerate / frame))
        parts = [
            frame_rms(_mono(b), frame) for b in f.blocks(blocksize=block, dtype="float32", always_2d=True)
        ]
        step = frame / f.samplerate
    levels = np.concatenate(parts) if parts else np.zeros(0)
    return to_db(levels), step


def vad_from_levels(
    levels_db: npt.ArrayLike,
    *,
    step: float,
    threshold_db: float | None = None,
    hysteresis_db: float = 6.0,
    min_speech: float = 0.1,
    min_silence: float = 0.25,
    label: str = "speech",
) -> pd.DataFrame:
    """Speech regions from frame levels: see :func:`energy_vad`."""
    levels = np.asarray(levels_db, dtype=np.float64)
    if len(levels) == 0:
        return activity_regions(levels, high=0.0, step=step, label=label)
    high = default_threshold_db(levels) if threshold_db is None else threshold_db
    return activity_regions(
        levels,
        high=high,
        low=high - hysteresis_db,
        step=step,
        min_duration=min_speech,
        min_gap=min_silence,
        label=label,
    )


def default_threshold_db(levels_db: npt.ArrayLike) -> float:
    """The level that starts speech when none is given: 12 dB over the noise floor, at least.

    The floor is the 10th percentile of frame levels and the top the 99th. The threshold is the
    higher of floor + 12 dB and top − 35 dB, so digital silence (floor −120 dB) does not pull it down
    to where breaths and room tone count as speech, and a noisy recording's floor stays below it.
    """
    levels = np.asarray(levels_db, dtype=np.float64)
    floor, top = np.percentile(levels, [10, 99])
    return float(min(max(floor + 12.0, top - 35.0), top - 3.0))


def energy_vad(
    y: npt.ArrayLike,
    sr: int,
    *,
    frame_ms: float = 10.0,
    threshold_db: float | None = None,
    hysteresis_db: float = 6.0,
    min_speech: float = 0.1,
    min_silence: float = 0.25,
    label: str = "speech",
) -> pd.DataFrame:
    """Propose speech regions where the frame level is high, with hysteresis and minimum durations.

    Parameters
    ----------
    y, sr
        Samples (mono, or channels averaged) and sample rate.
    frame_ms
        Frame length and step in milliseconds.
    threshold_db
        Level in dBFS at which speech starts; default: :func:`default_threshold_db` of the recording.
    hysteresis_db
        Speech, once started, lasts until the level falls this far below the threshold.
    min_speech, min_silence
        Seconds: shorter pauses are bridged first, then shorter regions dropped.

    Returns
    -------
    pandas.DataFrame
        ``start``, ``end`` (seconds, on frame edges) and ``label``.
    """
    step = _frame_length(sr, frame_ms) / sr
    return vad_from_levels(
        frame_levels_db(y, sr, frame_ms=frame_ms),
        step=step,
        threshold_db=threshold_db,
        hysteresis_db=hysteresis_db,
        min_speech=min_speech,
        min_silence=min_silence,
        label=label,
    )


def file_energy_vad(
    path: str | Path,
    *,
    frame_ms: float = 10.0,
    threshold_db: float | None = None,
    hysteresis_db: float = 6.0,
    min_speech: float = 0.1,
    min_silence: float = 0.25,
    label: str = "speech",
    block_seconds: float = 30.0,
) -> pd.DataFrame:
    """:func:`energy_vad` of a file, read in blocks: memory is one block and one level per frame."""
    levels, step = file_frame_levels_db(path, frame_ms=frame_ms, block_seconds=block_seconds)
    return vad_from_levels(
        levels,
        step=step,
        threshold_db=threshold_db,
        hysteresis_db=hysteresis_db,
        min_speech=min_speech,
        min_silence=min_silence,
        label=label,
    )


def _snap_index(
    y: npt.NDArray[np.float32], centre: int, sr: int, window: float, to: SnapTo, frame_ms: float
) -> int:
    radius = max(1, round(window * sr))
    lo, hi = max(0, centre - radius), min(len(y), centre + radius + 1)
    if hi - lo < 2:
        return centre
    part = y[lo:hi].astype(np.float64)
    if to == "zero_crossing":
        # A crossing lies between samples k and k+1 of opposite sign (or at a sample that is 0);
        # it snaps to whichever of the two is nearer zero.
        k = np.flatnonzero((part[:-1] * part[1:] < 0) | (part[:-1] == 0))
        if len(k) == 0:
            return centre
        at = np.where(np.abs(part[k]) <= np.abs(part[k + 1]), k, k + 1)
    elif to == "energy_minimum":
        n = _frame_length(sr, frame_ms)
        if len(part) < n:
            return centre
        # RMS of every window of n samples, by a running sum of squares.
        power = np.concatenate([[0.0], np.cumsum(part * part)])
        rms = (power[n:] - power[:-n]) / n
        lowest = rms.min()
        at = np.flatnonzero(rms <= lowest * (1 + 1e-9) + 1e-20) + n // 2
    else:
        raise ValueError(f"to must be 'zero_crossing' or 'energy_minimum', got {to!r}")
    best = at[np.argmin(np.abs(lo + at - centre))]
    return int(lo + best)


def snap_boundary(
    y: npt.ArrayLike,
    sr: int,
    t: float,
    *,
    window: float = 0.02,
    to: SnapTo = "zero_crossing",
    frame_ms: float = 5.0,
) -> float:
    """Move a boundary at ``t`` seconds to the nearest zero crossing, or the quietest point, nearby.

    Parameters
    ----------
    window
        Seconds either side of ``t`` to search; ``t`` is returned unchanged when nothing qualifies.
    to
        ``"zero_crossing"``: the sample nearest ``t`` where the waveform changes sign (the one of the
        pair nearer zero). ``"energy_minimum"``: the centre of the ``frame_ms`` window of least RMS
        (nearest ``t`` on ties), for snapping to a pause rather than a waveform detail.

    Returns
    -------
    float
        The snapped time in seconds, on a sample.
    """
    samples = _mono(y)
    if not 0 <= t <= len(samples) / sr:
        raise RegionError(f"boundary {t} s lies outside the recording (0-{len(samples) / sr:.3f} s)")
    centre = min(len(samples) - 1, round(t * sr))
    return _snap_index(samples, centre, sr, window, to, frame_ms) / sr


def file_snap_boundary(
    path: str | Path,
    t: float,
    *,
    window: float = 0.02,
    to: SnapTo = "zero_crossing",
    frame_ms: float = 5.0,
) -> float:
    """:func:`snap_boundary` on a file, reading only the samples around ``t``."""
    with sf.SoundFile(str(path)) as f:
        sr, n = f.samplerate, f.frames
        if not 0 <= t <= n / sr:
            raise RegionError(f"boundary {t} s lies outside the recording (0-{n / sr:.3f} s)")
        reach = round(window * sr) + _frame_length(sr, frame_ms)
        centre = min(n - 1, round(t * sr))
        lo = max(0, centre - reach)
        f.seek(lo)
        part = _mono(f.read(min(n, centre + reach + 1) - lo, dtype="float32", always_2d=True))
    return (lo + _snap_index(part, centre - lo, sr, window, to, frame_ms)) / sr


@dataclass(frozen=True)
class Peaks:
    """Min and max of the samples in each bucket of ``samples_per_pixel`` (the last may be shorter),
    and, when asked for, the loudness track (see :func:`loudness_track`)."""

    sr: int
    samples_per_pixel: int
    n_samples: int
    min: npt.NDArray[np.float32]
    max: npt.NDArray[np.float32]
    loudness: npt.NDArray[np.uint8] | None = None

    @property
    def seconds_per_pixel(self) -> float:
        return self.samples_per_pixel / self.sr

    def coarsen(self, factor: int) -> Peaks:
        """The same peaks with ``factor`` buckets merged into one, for a zoomed-out view."""
        if factor < 1:
            raise ValueError("factor must be at least 1")
        n = len(self.min)
        starts = np.arange(0, n, factor)
        lo = np.minimum.reduceat(self.min, starts) if n else self.min
        hi = np.maximum.reduceat(self.max, starts) if n else self.max
        return Peaks(self.sr, self.samples_per_pixel * factor, self.n_samples, lo, hi)

    def window(self, start: float, end: float) -> Peaks:
        """The buckets that cover ``[start, end)`` seconds, for the part of the view on screen.

        The returned peaks' first bucket starts at ``floor(start / seconds_per_pixel)`` buckets.
        """
        first = max(0, math.floor(start / self.seconds_per_pixel))
        stop = min(len(self.min), math.ceil(end / self.seconds_per_pixel))
        return Peaks(
            self.sr, self.samples_per_pixel, self.n_samples, self.min[first:stop], self.max[first:stop]
        )

    def frame(self) -> pd.DataFrame:
        """Columns ``time_s`` (bucket start), ``min``, ``max`` (as ``analysis.signal.waveform_envelope``)."""
        times = np.arange(len(self.min)) * self.seconds_per_pixel
        return pd.DataFrame({"time_s": times, "min": self.min, "max": self.max})


#: The loudness track's hop: one value per 5 ms, whatever the recording's length.
LOUDNESS_HOP_S = 0.005


def loudness_hop(sr: int, hop_s: float = LOUDNESS_HOP_S) -> int:
    """The loudness hop in samples at ``sr``: an even number, so that half a hop is whole samples."""
    return max(2, 2 * round(hop_s * sr / 2))


def loudness_track(low: npt.ArrayLike, high: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """The loudness track from the min and max of each half hop (``low``, ``high``).

    Hop ``i`` covers half hops ``2i`` and ``2i + 1``; its loudness is the peak-to-peak (largest minus
    smallest sample) over the hop and half a hop either side (half hops ``2i - 1`` to ``2i + 2``,
    clipped to the recording), as ``round(ptp / 2 * 255)``: 0 is digital silence, 255 a full-scale
    swing. That window (10 ms at 5 ms hops) holds half a cycle of anything above 50 Hz, so a tone
    never looks like a pause at its zero crossings.
    """
    lo = np.asarray(low, dtype=np.float32)
    hi = np.asarray(high, dtype=np.float32)
    n = len(lo)
    if n == 0:
        return np.zeros(0, dtype=np.uint8)
    if n % 2:  # a last half hop on its own is a hop of its own
        lo, hi = np.append(lo, lo[-1]), np.append(hi, hi[-1])
    pad_lo = np.concatenate([lo[:1], lo, lo[-1:]])
    pad_hi = np.concatenate([hi[:1], hi, hi[-1:]])
    # Padded index 2i holds half hop 2i - 1: hop i spans padded 2i .. 2i + 3.
    windows_hi = np.lib.stride_tricks.sliding_window_view(pad_hi, 4)[::2]
    windows_lo = np.lib.stride_tricks.sliding_window_view(pad_lo, 4)[::2]
    ptp = windows_hi.max(axis=1).astype(np.float64) - windows_lo.min(axis=1)
    return np.clip(np.round(ptp / 2 * 255), 0, 255).astype(np.uint8)


def waveform_peaks(
    path: str | Path,
    *,
    samples_per_pixel: int = 256,
    block_seconds: float = 10.0,
    loudness: bool = False,
) -> Peaks:
    """Min/max per bucket of ``samples_per_pixel`` samples of an audio file, read block by block;
    with ``loudness``, also its loudness track (:func:`loudness_track`, hops of :func:`loudness_hop`)
    from the same read.

    Channels are pooled: a bucket's min is the lowest sample of any channel, its max the highest.
    Memory is one block (about ``block_seconds`` of audio) plus the peaks themselves.
    """
    if samples_per_pixel < 1:
        raise ValueError("samples_per_pixel must be at least 1")
    lows, highs, half_lows, half_highs = [], [], [], []
    with sf.SoundFile(str(path)) as f:
        sr, n = f.samplerate, f.frames
        half = loudness_hop(sr) // 2
        # Blocks hold whole buckets (and half hops), so none straddles two blocks.
        unit = math.lcm(samples_per_pixel, half) if loudness else samples_per_pixel
        block = unit * max(1, round(block_seconds * sr / unit))
        for data in f.blocks(blocksize=block, dtype="float32", always_2d=True):
            lo = data.min(axis=1)
            hi = data.max(axis=1)
            starts = np.arange(0, len(lo), samples_per_pixel)
            lows.append(np.minimum.reduceat(lo, starts))
            highs.append(np.maximum.reduceat(hi, starts))
            if loudness:
                halves = np.arange(0, len(lo), half)
                half_lows.append(np.minimum.reduceat(lo, halves))
                half_highs.append(np.maximum.reduceat(hi, halves))
    empty = np.zeros(0, dtype=np.float32)
    return Peaks(
        sr=sr,
        samples_per_pixel=samples_per_pixel,
        n_samples=n,
        min=np.concatenate(lows) if lows else empty,
        max=np.concatenate(highs) if highs else empty,
        loudness=(
            loudness_track(
                np.concatenate(half_lows) if half_lows else empty,
                np.concatenate(half_highs) if half_highs else empty,
            )
            if loudness
            else None
        ),
    )
