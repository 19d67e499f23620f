"""Per-clip audio features: MFCC statistics plus a few measures a person can read.

Call :func:`feature_frame` with ``{content_sha256: path}`` to get one row of features per clip (cached on
disk, computed in parallel, with progress); call :func:`extract_features` for one decoded signal. Both
take a :class:`FeatureSettings`; pick one for a corpus with :meth:`FeatureSettings.for_sample_rates`.

Columns (see :func:`feature_names`):

- ``mfcc_mean_00 … mfcc_std_19`` and ``dmfcc_mean_00 … dmfcc_std_19``: mean and standard deviation over
  frames of ``n_mfcc`` MFCCs (librosa's definition: log power mel spectrogram, type-II orthonormal DCT)
  and of their first differences (``librosa.feature.delta``, ``mode="nearest"``).
- ``rms_dbfs_mean``: mean over frames of the frame RMS in dB relative to full scale (``20·log10 rms``,
  floored at -100 dB), so a full-scale square wave is 0 dBFS and a full-scale sine -3 dBFS.
- ``f0_median_hz``: median pitch from ``librosa.yin`` over the speech range, over frames within
  ``voicing_db`` of the loudest frame; NaN when the clip is silent.
- ``centroid_mean_hz``, ``bandwidth_mean_hz``, ``rolloff_mean_hz``: librosa's spectral centroid,
  bandwidth (p=2) and roll-off (``rolloff_percent``) of the magnitude spectrogram, averaged over the
  frames that are not digital silence.
- ``zcr_mean``: librosa's zero-crossing rate averaged over frames; ``duration_s``: decoded length.

Speed comes from computing the STFT once and deriving every spectral measure from it, skipping
resampling when the file already has the target rate, and estimating pitch with a coarse hop on a
signal of at most ``pitch_sample_rate``. Every measure is librosa's (the tests compare each column with
a direct librosa call), computed with numpy, scipy and soxr (:func:`stft_magnitude`,
:func:`mel_filters`, :func:`power_to_db`, :func:`resample`, :func:`yin`): librosa's own functions
import numba-compiled helpers, which a fresh install compiles on first use in every process, for
tens of seconds of CPU each, before the first clip is done.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.fft
import scipy.ndimage
import scipy.signal
import soundfile as sf
import soxr
from threadpoolctl import threadpool_limits

from analysis.processes import plain_main, pool_context

# Bump when the meaning of a column changes without any setting changing.
FEATURES_VERSION = 1

INTERPRETABLE_FEATURES: tuple[str, ...] = (
    "rms_dbfs_mean",
    "f0_median_hz",
    "centroid_mean_hz",
    "bandwidth_mean_hz",
    "rolloff_mean_hz",
    "zcr_mean",
    "duration_s",
)
"""The columns a person can read without knowing what an MFCC is; slice discovery bins these."""

_SILENCE_DB = -100.0


def next_pow2(n: float) -> int:
    """The smallest power of two at or above ``n`` (an FFT or frame length)."""
    return 1 << max(0, math.ceil(math.log2(max(n, 1.0))))


@dataclass(frozen=True)
class FeatureSettings:
    """How features are computed; equal settings give equal features and an equal fingerprint.

    Parameters
    ----------
    sample_rate
        Every clip is resampled to this rate first, so clips of a corpus are comparable. 16 kHz keeps
        the 4-8 kHz band where low-bandwidth channels and most noise differ from clean speech; for a
        corpus recorded at 8 kHz (FSDD, telephone speech) use 8000, since upsampling adds nothing and
        doubles the work. :meth:`for_sample_rates` chooses between them.
    n_mfcc, n_mels
        MFCCs kept, and mel bands they are computed from.
    win_ms, hop_ms
        Analysis window and hop; the FFT size is the window rounded up to a power of two.
    pitch_fmin, pitch_fmax
        Speech f0 search range for YIN, in Hz.
    pitch_sample_rate, pitch_hop_ms
        Pitch is estimated on the signal at ``min(sample_rate, pitch_sample_rate)`` with this hop: f0
        of speech is far below 4 kHz and a median needs no fine time resolution, and YIN is the most
        expensive feature.
    voicing_db
        Frames quieter than the loudest frame by more than this do not vote for the pitch median.
    rolloff_percent
        Fraction of spectral magnitude below the roll-off frequency.
    delta_width
        Odd window length (frames) of the MFCC deltas.
    """

    sample_rate: int = 16000
    n_mfcc: int = 20
    n_mels: int = 40
    win_ms: float = 32.0
    hop_ms: float = 10.0
    pitch_fmin: float = 60.0
    pitch_fmax: float = 500.0
    pitch_sample_rate: int = 8000
    pitch_hop_ms: float = 20.0
    voicing_db: float = 30.0
    rolloff_percent: float = 0.85
    delta_width: int = 9

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.pitch_sample_rate <= 0:
            raise ValueError("sample rates must be positive")
        if not 1 <= self.n_mfcc <= self.n_mels:
            raise ValueError(f"n_mfcc must be between 1 and n_mels={self.n_mels}, got {self.n_mfcc}")
        if self.win_ms <= 0 or self.hop_ms <= 0 or self.pitch_hop_ms <= 0:
            raise ValueError("window and hop lengths must be positive")
        if not 0 < self.pitch_fmin < self.pitch_fmax <= self.pitch_rate / 2:
            raise ValueError(
                f"need 0 < pitch_fmin < pitch_fmax <= {self.pitch_rate / 2:g} Hz (half the pitch rate), "
                f"got {self.pitch_fmin:g} and {self.pitch_fmax:g}"
            )
        if not 0 < self.rolloff_percent < 1:
            raise ValueError("rolloff_percent must lie strictly between 0 and 1")
        if self.delta_width < 3 or self.delta_width % 2 == 0:
            raise ValueError("delta_width must be an odd integer >= 3")

    @classmethod
    def for_sample_rates(cls, rates: Iterable[int], **overrides: object) -> FeatureSettings:
        """Settings for a corpus whose clips have these native rates: the highest, capped at 16 kHz."""
        found = [int(r) for r in rates]
        if not found:
            raise ValueError("no sample rates given")
        return cls(sample_rate=min(16000, max(found)), **overrides)  # type: ignore[arg-type]

    @property
    def n_fft(self) -> int:
        return next_pow2(self.sample_rate * self.win_ms / 1000)

    @property
    def hop_length(self) -> int:
        return max(1, round(self.sample_rate * self.hop_ms / 1000))

    @property
    def pitch_rate(self) -> int:
        return min(self.sample_rate, self.pitch_sample_rate)

    @property
    def pitch_frame_length(self) -> int:
        # Two periods of the lowest f0 must fit in a YIN frame.
        return next_pow2(2 * math.ceil(self.pitch_rate / self.pitch_fmin) + 2)

    @property
    def pitch_hop_length(self) -> int:
        return max(1, round(self.pitch_rate * self.pitch_hop_ms / 1000))

    def fingerprint(self) -> str:
        """A short stable string naming these settings (and the feature definitions' version)."""
        payload = json.dumps({"version": FEATURES_VERSION, **asdict(self)}, sort_keys=True)
        return "feat" + hashlib.sha256(payload.encode()).hexdigest()[:16]


def feature_names(settings: FeatureSettings) -> list[str]:
    """Column names of :func:`extract_features` / :func:`feature_frame`, in order."""
    names = []
    for prefix in ("mfcc", "dmfcc"):
        for stat in ("mean", "std"):
            names += [f"{prefix}_{stat}_{i:02d}" for i in range(settings.n_mfcc)]
    return names + list(INTERPRETABLE_FEATURES)


def _hz_to_mel(hz: float | np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
    step, log_start, log_step = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / step
    logarithmic = log_start / step + np.log(np.maximum(hz, log_start) / log_start) / log_step
    return np.where(hz >= log_start, logarithmic, linear)


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    step, log_start, log_step = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    log_start_mel = log_start / step
    linear = step * mels
    logarithmic = log_start * np.exp(log_step * (np.maximum(mels, log_start_mel) - log_start_mel))
    return np.where(mels >= log_start_mel, logarithmic, linear)


def mel_filters(*, sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """``librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)``: Slaney-normalised triangular
    filters from 0 Hz to ``sr / 2``, shape ``(n_mels, 1 + n_fft // 2)``, float32."""
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(float(sr) / 2), n_mels + 2))
    widths = np.diff(edges)
    ramps = np.subtract.outer(edges, fft_freqs)
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(rising, falling)).astype(np.float32)
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights


def stft_magnitude(y: np.ndarray, *, n_fft: int, hop_length: int, window: np.ndarray) -> np.ndarray:
    """``np.abs(librosa.stft(y, n_fft=…, hop_length=…, window=window))``: centred frames (zero
    padding of ``n_fft // 2`` at each end), shape ``(1 + n_fft // 2, frames)``, float32 for float32
    input."""
    padded = np.pad(y, n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]
    spectrum = scipy.fft.rfft(window * frames, axis=-1).astype(np.result_type(y.dtype, np.complex64))
    return np.abs(spectrum).T


def power_to_db(power: np.ndarray, *, amin: float = 1e-10, top_db: float = 80.0) -> np.ndarray:
    """``librosa.power_to_db(power, ref=1.0, amin=amin, top_db=top_db)``."""
    db = 10.0 * np.log10(np.maximum(amin, power))
    return np.maximum(db, db.max() - top_db)


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """``librosa.resample(y, orig_sr=…, target_sr=…, res_type="soxr_hq")``: soxr's high-quality
    resampler, zero-padded or trimmed to ``ceil(len(y) * target_sr / orig_sr)`` samples."""
    if orig_sr == target_sr:
        return y
    n = int(np.ceil(y.shape[-1] * (float(target_sr) / orig_sr)))
    out = soxr.resample(y, orig_sr, target_sr, quality="soxr_hq")[:n]
    return np.asarray(np.pad(out, (0, n - out.size)), dtype=y.dtype)


@functools.lru_cache(maxsize=8)
def _constants(settings: FeatureSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    mel = mel_filters(sr=settings.sample_rate, n_fft=settings.n_fft, n_mels=settings.n_mels)
    freqs = np.fft.rfftfreq(n=settings.n_fft, d=1.0 / settings.sample_rate).astype(np.float32)
    window = scipy.signal.get_window("hann", settings.n_fft, fftbins=True)
    # The filter librosa.feature.delta builds on every call (a least-squares fit); build it once.
    delta = scipy.signal.savgol_coeffs(settings.delta_width, 1, deriv=1, use="conv")
    return mel, freqs, window, delta


def _frame_rms(y: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """``librosa.feature.rms(y=y, frame_length=…, hop_length=…)`` from one running sum of squares."""
    half = frame_length // 2
    energy = np.concatenate([np.zeros(half + 1), np.cumsum(np.square(y, dtype=np.float64)), np.zeros(half)])
    energy[y.size + half + 1 :] = energy[y.size + half]
    starts = np.arange(0, y.size + 2 * half - frame_length + 1, hop_length)
    return np.sqrt(np.maximum(energy[starts + frame_length] - energy[starts], 0.0) / frame_length)


def _mean_zcr(y: np.ndarray, frame_length: int, hop_length: int) -> float:
    """Mean over frames of ``librosa.feature.zero_crossing_rate(y, frame_length=…, hop_length=…)``.

    librosa counts a crossing between samples ``i-1`` and ``i`` of the same frame, treats samples within
    1e-10 of zero as positive, and pads the signal with its edge values; a running count reproduces it.
    """
    half = frame_length // 2
    negative = y < -1e-10
    padded = np.concatenate([np.full(half, negative[0]), negative, np.full(half, negative[-1])])
    count = np.concatenate([[0], np.cumsum(padded[1:] != padded[:-1])])
    starts = np.arange(0, padded.size - frame_length + 1, hop_length)
    return float(np.mean(count[starts + frame_length - 1] - count[starts]) / frame_length)


def _mono(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 2:
        y = y.mean(axis=0)
    if y.ndim != 1:
        raise ValueError(f"expected a 1-D signal or (channels, samples), got shape {y.shape}")
    return y


def _feature_vector(y: np.ndarray, sr: int, settings: FeatureSettings) -> np.ndarray:
    y = _mono(y)
    if y.size == 0:
        raise ValueError("the signal is empty")
    if not np.all(np.isfinite(y)):
        raise ValueError("the signal contains NaN or infinite samples")
    duration = y.size / sr
    rate = settings.sample_rate
    y = resample(y, orig_sr=sr, target_sr=rate)
    n_fft, hop = settings.n_fft, settings.hop_length
    if y.size < n_fft:
        y = np.pad(y, (0, n_fft - y.size))
    mel_basis, freqs, window, delta_filter = _constants(settings)

    magnitude = stft_magnitude(y, n_fft=n_fft, hop_length=hop, window=window)
    log_mel = power_to_db(mel_basis @ (magnitude * magnitude))
    # librosa.feature.mfcc(S=log_mel): the orthonormal type-II DCT over mel bands.
    mfcc = scipy.fft.dct(log_mel, axis=0, type=2, norm="ortho")[: settings.n_mfcc]
    delta = scipy.ndimage.convolve1d(mfcc, delta_filter, axis=-1, mode="nearest")

    total = magnitude.sum(axis=0)
    audible = total > 0
    if audible.any():
        mag, tot = magnitude[:, audible], total[audible]
        centroid = (freqs @ mag) / tot
        bandwidth = np.sqrt(np.sum(mag * (freqs[:, None] - centroid) ** 2, axis=0) / tot)
        cumulative = np.cumsum(mag, axis=0)
        rolloff = freqs[np.argmax(cumulative >= settings.rolloff_percent * cumulative[-1], axis=0)]
        spectral = [float(centroid.mean()), float(bandwidth.mean()), float(rolloff.mean())]
    else:
        spectral = [math.nan] * 3

    rms = _frame_rms(y, n_fft, hop)
    rms_db = float(np.mean(20 * np.log10(np.maximum(rms, 10 ** (_SILENCE_DB / 20)))))
    zcr = _mean_zcr(y, n_fft, hop)

    return np.concatenate(
        [
            mfcc.mean(axis=1),
            mfcc.std(axis=1),
            delta.mean(axis=1),
            delta.std(axis=1),
            [rms_db, _median_f0(y, settings), *spectral, zcr, duration],
        ]
    ).astype(np.float64)


def yin(
    y: np.ndarray,
    *,
    fmin: float,
    fmax: float,
    sr: int,
    frame_length: int,
    hop_length: int,
    trough_threshold: float = 0.1,
) -> np.ndarray:
    """YIN fundamental frequency per centred frame (de Cheveigné & Kawahara 2002), in plain numpy.

    The same estimator as ``librosa.yin`` (cumulative mean normalised difference, first trough
    below the threshold, parabolic refinement), without its numba kernels: those are compiled on
    first use and cached on disk, and concurrent first uses from several processes (a fresh install
    under parallel workers) have crashed the interpreter.
    """
    y = np.pad(np.asarray(y, dtype=np.float64), (frame_length // 2, frame_length // 2))
    frames = np.lib.stride_tricks.sliding_window_view(y, frame_length)[::hop_length]  # (n, frame)
    min_period = int(np.floor(sr / fmax))
    max_period = min(int(np.ceil(sr / fmin)), frame_length - 1)
    # Autocorrelation by FFT, then the difference function d(t) = r(0) + r_t(0) - 2 r(t) (eq. 7).
    spectrum = np.fft.rfft(frames, n=2 * frame_length, axis=1)
    acf = np.fft.irfft(np.abs(spectrum) ** 2, n=2 * frame_length, axis=1)[:, : max_period + 1]
    energy = np.cumsum(frames * frames, axis=1)
    diff = np.zeros((len(frames), max_period + 1))
    diff[:, 1:] = 2 * (acf[:, :1] - acf[:, 1:]) - energy[:, :max_period]
    lags = np.arange(1, max_period + 1)
    mean = np.cumsum(diff[:, 1:], axis=1) / lags
    cmnd = diff[:, min_period:] / (mean[:, min_period - 1 :] + np.finfo(np.float64).tiny)
    # Parabolic refinement of each lag from its neighbours; edges are not refined.
    shifts = np.zeros_like(cmnd)
    a = cmnd[:, 2:] + cmnd[:, :-2] - 2 * cmnd[:, 1:-1]
    b = (cmnd[:, 2:] - cmnd[:, :-2]) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        shifts[:, 1:-1] = np.where(np.abs(b) >= np.abs(a), 0.0, -b / a)
    trough = np.zeros_like(cmnd, dtype=bool)
    trough[:, 1:-1] = (cmnd[:, 1:-1] < cmnd[:, :-2]) & (cmnd[:, 1:-1] <= cmnd[:, 2:])
    trough[:, 0] = cmnd[:, 0] < cmnd[:, 1]
    below = trough & (cmnd < trough_threshold)
    period = np.where(below.any(axis=1), np.argmax(below, axis=1), np.argmin(cmnd, axis=1))
    refined = min_period + period + shifts[np.arange(len(period)), period]
    return sr / refined


def _median_f0(y: np.ndarray, settings: FeatureSettings) -> float:
    rate = settings.pitch_rate
    y = resample(y, orig_sr=settings.sample_rate, target_sr=rate)
    frame, hop = settings.pitch_frame_length, settings.pitch_hop_length
    if y.size < frame:
        y = np.pad(y, (0, frame - y.size))
    f0 = yin(
        y, fmin=settings.pitch_fmin, fmax=settings.pitch_fmax, sr=rate, frame_length=frame, hop_length=hop
    )
    # YIN answers for every frame, silence included; only frames near the clip's loudest carry a voice.
    rms = _frame_rms(y, frame, hop)
    loud = (rms >= rms.max() * 10 ** (-settings.voicing_db / 20)) & (rms > 1e-4)
    return float(np.median(f0[loud])) if loud.any() else math.nan


def extract_features(y: np.ndarray, sr: int, *, settings: FeatureSettings) -> dict[str, float]:
    """Features of one decoded signal.

    Parameters
    ----------
    y
        Samples, shape ``(n,)`` or ``(channels, n)`` (librosa's layout; channels are averaged).
    sr
        Sample rate of ``y``; resampled to ``settings.sample_rate`` when different.
    settings
        What to compute.

    Returns
    -------
    dict
        ``{name: value}`` in the order of :func:`feature_names`. ``f0_median_hz`` and the spectral
        means are NaN for a silent signal.

    Raises
    ------
    ValueError
        If the signal is empty or not finite.
    """
    return dict(zip(feature_names(settings), _feature_vector(y, int(sr), settings).tolist(), strict=True))


def decode(path: str | Path) -> tuple[np.ndarray, int]:
    """Samples (mono float32) and sample rate of an audio file: soundfile, librosa for what it can't.

    Raises
    ------
    ValueError
        If neither can read the file; the message is soundfile's.
    """
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
        return data.mean(axis=1) if data.shape[1] > 1 else data[:, 0], int(sr)
    except (sf.LibsndfileError, RuntimeError) as exc:
        first_error = exc
    try:
        import librosa

        # librosa's fallback decoders announce themselves with deprecation warnings; the caller
        # cares only whether the file was read.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y, sr = librosa.load(path, sr=None, mono=True)
    except Exception as exc:
        raise ValueError(f"not a readable audio file: {first_error}") from exc
    return y, int(sr)


def _extract_chunk(items: list[tuple[str, str]], settings: FeatureSettings) -> tuple[list[str], np.ndarray]:
    out = np.empty((len(items), len(feature_names(settings))))
    for row, (key, path) in enumerate(items):
        try:
            y, sr = decode(path)
            out[row] = _feature_vector(y, sr, settings)
        except Exception as exc:
            raise ValueError(f"cannot compute features of clip {key} ({path}): {exc}") from exc
    return [key for key, _ in items], out


class _ShardStore:
    """Feature vectors on disk: 256 ``.npy`` shards of (key, vector) records, chosen by hash of the key.

    Shards are replaced atomically, so a crash or a concurrent writer can lose entries (they are
    recomputed) but never leave a torn file.
    """

    def __init__(self, root: Path, width: int) -> None:
        self.root = root
        self.width = width

    @staticmethod
    def shard_of(key: str) -> str:
        return hashlib.blake2b(key.encode(), digest_size=1).hexdigest()

    def _read(self, shard: str) -> tuple[np.ndarray, np.ndarray]:
        path = self.root / f"{shard}.npy"
        try:
            records = np.load(path, allow_pickle=False)
            if records.dtype.names != ("key", "vec") or records["vec"].shape[1:] != (self.width,):
                raise ValueError("unexpected layout")
        except (OSError, ValueError):
            return np.empty(0, dtype=str), np.empty((0, self.width))
        return records["key"], records["vec"]

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        by_shard: dict[str, list[str]] = {}
        for key in keys:
            by_shard.setdefault(self.shard_of(key), []).append(key)
        found: dict[str, np.ndarray] = {}
        for shard, wanted in by_shard.items():
            stored_keys, vectors = self._read(shard)
            if stored_keys.size == 0:
                continue
            index = {k: i for i, k in enumerate(stored_keys.tolist())}
            for key in wanted:
                i = index.get(key)
                if i is not None:
                    found[key] = vectors[i]
        return found

    def put_many(self, entries: Mapping[str, np.ndarray]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        by_shard: dict[str, list[str]] = {}
        for key in entries:
            by_shard.setdefault(self.shard_of(key), []).append(key)
        for shard, new_keys in by_shard.items():
            old_keys, old_vectors = self._read(shard)
            merged = {k: v for k, v in zip(old_keys.tolist(), old_vectors, strict=True)}
            merged.update((k, entries[k]) for k in new_keys)
            width = max(len(k) for k in merged)
            records = np.empty(len(merged), dtype=[("key", f"U{width}"), ("vec", "f8", (self.width,))])
            records["key"] = list(merged)
            records["vec"] = np.stack(list(merged.values()))
            fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.save(fh, records, allow_pickle=False)
                Path(tmp).replace(self.root / f"{shard}.npy")
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise


@functools.cache
def _source_digest() -> str:
    source = inspect.getsource(sys.modules[__name__]).replace("\r\n", "\n")
    return hashlib.sha256(source.encode()).hexdigest()[:12]


def cache_location(cache_dir: Path, settings: FeatureSettings) -> Path:
    """Directory holding the cached vectors for ``settings`` computed by this version of the code."""
    return Path(cache_dir) / f"{settings.fingerprint()}-{_source_digest()}"


def cached_keys(keys: Sequence[str], *, settings: FeatureSettings, cache_dir: Path) -> set[str]:
    """Which of ``keys`` already have vectors cached for ``settings`` (their audio need not be read)."""
    store = _ShardStore(cache_location(cache_dir, settings), len(feature_names(settings)))
    return set(store.get_many([str(k) for k in keys]))


def feature_frame(
    paths_by_key: Mapping[str, str | Path],
    *,
    settings: FeatureSettings,
    cache_dir: Path | None = None,
    n_jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Features of many audio files, one row per clip.

    Parameters
    ----------
    paths_by_key
        ``{key: path}``; the key must identify the content (Earmark uses the SHA-256 of the file's
        bytes), because cached vectors are looked up by key and settings, never by path or mtime.
    settings
        What to compute.
    cache_dir
        Where to keep computed vectors (under a subdirectory named after the settings fingerprint and
        this module's source), or None to compute everything.
    n_jobs
        Worker processes for clips not in the cache; ``-1`` for one per CPU.
    progress
        Called as ``progress(done, total)`` after the cache lookup and after each chunk of clips.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``key`` in the order given, columns :func:`feature_names`, float64.

    Raises
    ------
    ValueError
        Naming the first clip that cannot be decoded or is empty.
    """
    keys = [str(k) for k in paths_by_key]
    names = feature_names(settings)
    values = np.full((len(keys), len(names)), np.nan)
    row_of = {key: i for i, key in enumerate(keys)}
    store = _ShardStore(cache_location(cache_dir, settings), len(names)) if cache_dir is not None else None

    cached = store.get_many(keys) if store is not None else {}
    for key, vector in cached.items():
        values[row_of[key]] = vector
    todo = [(key, str(path)) for key, path in paths_by_key.items() if str(key) not in cached]
    done, total = len(keys) - len(todo), len(keys)
    if progress is not None:
        progress(done, total)

    pending: dict[str, np.ndarray] = {}

    def collect(chunk_keys: list[str], chunk_values: np.ndarray) -> None:
        nonlocal done
        for key, vector in zip(chunk_keys, chunk_values, strict=True):
            values[row_of[key]] = vector
            pending[key] = vector
        done += len(chunk_keys)
        if store is not None and len(pending) >= 4096:
            store.put_many(pending)
            pending.clear()
        if progress is not None:
            progress(done, total)

    try:
        _run_chunks(todo, settings, n_jobs=n_jobs, collect=collect)
    finally:
        # Whatever was computed before an error or interruption is kept.
        if store is not None and pending:
            store.put_many(pending)
    return pd.DataFrame(values, index=pd.Index(keys, name="key"), columns=names)


#: Clips a worker takes at a time: a few hundredths of a second of work, so progress moves clip by
#: clip, while handing a task over costs a fraction of a millisecond.
CLIPS_PER_TASK = 4


def _limit_threads() -> None:
    # A worker is one process per core: BLAS threads inside it (the mel projection is a small matrix
    # product) only spin against the other workers, which made extraction several times slower.
    threadpool_limits(limits=1, user_api="blas")


def _run_chunks(
    todo: list[tuple[str, str]],
    settings: FeatureSettings,
    *,
    n_jobs: int,
    collect: Callable[[list[str], np.ndarray], None],
) -> None:
    workers = (os.cpu_count() or 1) if n_jobs == -1 else n_jobs
    if workers < 1:
        raise ValueError(f"n_jobs must be positive or -1, got {n_jobs}")
    workers = min(workers, max(1, len(todo) // 32))
    if workers == 1:
        with threadpool_limits(limits=1, user_api="blas"):
            for item in todo:
                collect(*_extract_chunk([item], settings))
        return
    chunks = [todo[i : i + CLIPS_PER_TASK] for i in range(0, len(todo), CLIPS_PER_TASK)]
    with (
        plain_main(),
        ProcessPoolExecutor(
            max_workers=workers, mp_context=pool_context(__name__), initializer=_limit_threads
        ) as pool,
    ):
        running: set[Future] = set()
        # Keep only a few tasks in flight so a failure stops the run early and memory stays flat.
        for chunk in chunks:
            running.add(pool.submit(_extract_chunk, chunk, settings))
            if len(running) >= 4 * workers:
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    collect(*future.result())
        while running:
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                collect(*future.result())
