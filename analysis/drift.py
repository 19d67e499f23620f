"""Drift of a batch of production clips against a reference: call :func:`drift_report`.

Which function to call:

- :func:`clip_measures` -- the per-clip measures that the import does not already store: median pitch
  (:func:`analysis.pitch.median_pitch`), spectral centroid, the energy below 300 Hz, a speaking-rate
  proxy and a reference-free SNR (:func:`speech_snr`, stored as the ``snr_db`` measure; the import's
  own SNR is a percentile proxy).
- :func:`reference_summary` -- everything a check needs from the reference, computed once per
  reference version; a :class:`ReferenceSummary` turns into bytes (:meth:`ReferenceSummary.to_bytes`)
  or JSON (:meth:`ReferenceSummary.to_dict`) and back, so a check reads only the batch's measures.
- :func:`drift_report` -- one batch against a reference (a frame, or its summary), both one row per
  clip with any of the :data:`MEASURES` columns; returns a :class:`DriftReport` with a verdict, a test
  and an effect size in real units per measure, and reasons in plain words.
- :func:`concept_drift` -- the batch's labelled sample against the reference's own correctness
  (:func:`concept_test` on counts, :func:`concept_reason` in words); :func:`wer_drift` the same
  question for transcripts, by word error rate (:func:`wer_reason` in words).
- :func:`alarm_level` -- the standing level (``none``, ``warning``, ``alarm``) of a series of reports.

The design, and why
-------------------
A verdict that moves with the batch size is useless to someone reading a dashboard, so every verdict is
a test at a fixed family-wise error rate, never a distance against a fixed cut-off. The overall
``alpha`` (0.05) is split evenly over the groups of tests that the frames allow (Bonferroni):

1. per-measure input tests: two-sample Kolmogorov-Smirnov for continuous measures (exact p-values for
   small samples), split again over the measures present;
2. one multivariate input test: the maximum mean discrepancy (MMD, Gretton et al. 2012) with a Gaussian
   kernel on the measures standardised on the reference (missing values at the reference mean),
   bandwidth the median pairwise distance, and a permutation test, ``p = (1 + #{MMD*_b >= MMD}) /
   (1 + B)``. At most 2,000 reference and 500 batch clips, drawn at random, enter the kernel: the test
   keeps its level, loses power only on shifts far below what a few hundred clips already show, and
   stays fast for a batch of 10,000 against a reference of 100,000;
3. output tests: chi-squared homogeneity of predicted classes, KS on confidence, Fisher's exact test on
   the low-confidence and empty shares, split again over the outputs present.

Every test reports an effect in the measure's own unit (the Hodges-Lehmann shift in dB, Hz, s, nuclei
per second: the median of all batch-minus-reference differences, which a two-humped distribution does
not throw off as it does a difference of medians; difference of shares in percentage points;
total-variation distance of the class mix), and a batch of 1,000 clips or more drifts on a measure
only when that effect also reaches the measure's minimum effect (:attr:`MeasureSpec.min_effect`,
overridable per project), because at that size a test finds differences that nobody would act on.
Batches under ``min_batch`` (50) clips get no verdict. Latency is summarised but never tested: a
slower server is not a change in the data.

A measure with censored values (:attr:`MeasureSpec.bounds`: the SNR estimate stuck at an end of its
table is a bound, not a value) is tested in two parts, each at the measure's share of alpha split
again over the parts present: Fisher's exact test on the share at each end that either sample
reaches, and KS on the values within the table. The reason of a drifted measure says what moved
(:func:`analysis.shift.describe_change`): the shift with its 95% interval when the interval excludes
zero, else the spread, a tail, or the share of clips at a bound.

Concept drift is a separate test, once the batch has ``min_labels`` (30) labelled clips: Fisher's exact
test of the batch's correct/incorrect counts against the reference's own out-of-sample correctness,
never against the reference accuracy as a fixed number (that ignores the reference's own sampling
error). For transcripts it is the corpus word error rate of the batch's labelled clips against the
reference's: a permutation test of the difference (clips shuffled between the two; exact level, where
a bootstrap p-value ran at 6-7% for a nominal 5% with 30 clips) with a percentile bootstrap interval of
the difference to say how large it is.

One drifted batch is a warning. :func:`alarm_level` raises an alarm on two drifted batches in a row, on
a batch whose smallest p-value is below 0.001, or on concept drift (accuracy or WER).

A telephone channel shifts the pitch that YIN measures (the fundamental is filtered out below 300 Hz).
The energy below 300 Hz tells a channel from a voice: a band limit removes it (-15 dB on FSDD), a
pitch shift of two semitones barely moves it (about 1 dB). When it drifts by 6 dB or more the reasons
say the channel changed, and that the pitch and centroid moves follow from it (only when the whole
95% interval of the shift lies beyond 6 dB: a new speaker's voice can move it by a few dB); without
that measure, pitch moving together with the centroid is reported as a possible channel change.
"""

from __future__ import annotations

import functools
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.fft
from scipy import signal, stats

from analysis.features import next_pow2
from analysis.pitch import median_pitch
from analysis.shift import describe_change, hodges_lehmann

__all__ = [
    "MEASURES",
    "MEASURES_VERSION",
    "DriftReport",
    "MeasureResult",
    "MeasureSpec",
    "ReferenceSummary",
    "SnrEstimate",
    "alarm_level",
    "clip_measures",
    "concept_drift",
    "concept_reason",
    "concept_test",
    "digital_silence",
    "drift_report",
    "mmd_test",
    "reference_summary",
    "speech_snr",
    "transcript_words",
    "wada_snr",
    "wer_drift",
    "wer_reason",
]

Family = Literal["input", "output", "software"]
Kind = Literal["continuous", "categorical", "rate"]


@dataclass(frozen=True)
class MeasureSpec:
    """What a measure is: its family, the kind of test it gets, its unit and a label for people.

    ``min_effect`` is the smallest effect (in ``unit``, or percentage points for rates, or
    total-variation distance for categorical measures) that counts as drift in batches of 1,000 clips
    or more; ``tested`` is False for measures that are summarised but never tested (latency);
    ``decimals`` is how many the reasons print; ``bounds`` marks a measure whose values at or beyond
    them are censored (bounds, not values).
    """

    name: str
    family: Family
    kind: Kind
    unit: str
    label: str
    min_effect: float = 0.0
    tested: bool = True
    decimals: int = 1
    bounds: tuple[float, float] | None = None


def _spec(*args: Any, **kwargs: Any) -> tuple[str, MeasureSpec]:
    spec = MeasureSpec(*args, **kwargs)
    return spec.name, spec


WADA_RANGE_DB = (-20.0, 100.0)
"""The ends of the WADA table: an SNR estimate there is censored (a bound, not a value)."""

MEASURES: Mapping[str, MeasureSpec] = dict(
    [
        _spec("duration_s", "input", "continuous", "s", "Duration", 0.1, decimals=2),
        _spec("rms_dbfs", "input", "continuous", "dB", "Loudness (RMS)", 2.0),
        _spec("peak_dbfs", "input", "continuous", "dB", "Peak level", 2.0),
        _spec("leading_silence_ms", "input", "continuous", "ms", "Leading silence", 50.0, decimals=0),
        _spec("trailing_silence_ms", "input", "continuous", "ms", "Trailing silence", 50.0, decimals=0),
        _spec("clipped_fraction", "input", "continuous", "pp", "Clipped samples", 0.1, decimals=2),
        _spec("snr_db", "input", "continuous", "dB", "SNR (WADA)", 3.0, bounds=WADA_RANGE_DB),
        _spec("pitch_hz", "input", "continuous", "Hz", "Pitch (median F0)", 10.0, decimals=0),
        _spec("centroid_hz", "input", "continuous", "Hz", "Spectral centroid", 100.0, decimals=0),
        _spec("low_band_db", "input", "continuous", "dB", "Energy below 300 Hz", 3.0),
        _spec("speaking_rate", "input", "continuous", "nuclei/s", "Speaking rate", 0.3, decimals=2),
        _spec("predicted", "output", "categorical", "TV distance", "Predicted class", 0.05),
        _spec("confidence", "output", "continuous", "", "Confidence", 0.03, decimals=2),
        _spec("low_confidence", "output", "rate", "pp", "Low-confidence share", 3.0),
        _spec("empty", "output", "rate", "pp", "Empty outputs", 1.0),
        _spec("transcript_words", "output", "continuous", "words", "Transcript length", 1.0),
        _spec("latency_ms", "software", "continuous", "ms", "Latency", 0.0, tested=False, decimals=0),
    ]
)
"""Every measure :func:`drift_report` knows, by column name."""

MEASURES_VERSION = 2
"""Bumped when :func:`clip_measures` changes what a measure means (2: the SNR without digital silence
and on the band below 70% of Nyquist, the pitch at 4 kHz): stored measures and reference summaries of
an older version are to be measured again."""

LARGE_BATCH = 1000
"""Batches of at least this many clips must also reach a measure's minimum effect to drift."""

MMD_MAX_REFERENCE = 2000
MMD_MAX_BATCH = 500
ALARM_P = 0.001
CHANNEL_LOW_HZ = 300.0
CHANNEL_SHIFT_DB = 6.0
"""A drift of the energy below 300 Hz by this much is a channel (a band limit), not a voice."""

# ---------------------------------------------------------------------------------------------------
# Per-clip measures


# G(SNR) = log E|z| - E log|z| for z = speech + noise, speech amplitude Gamma-distributed with shape 0.4
# and Gaussian noise (the model of Kim & Stern 2008), for SNR = -20 ... 100 dB in 1 dB steps.
# Computed by numerical integration: E|z| in closed form (folded normal) and E log|z| by quadrature over
# the noise for each speech amplitude, then Gauss-Legendre over the Gamma law (substituting s = u^2.5,
# which removes its singularity at 0). G rises from the noise-only value log sqrt(2/pi) + (gamma_E +
# log 2) / 2 = 0.40939 towards the speech-only value log 0.4 - psi(0.4) = 1.6451, which it has not
# reached at 100 dB: so few samples sit below the noise that the top of the table is flat, and a clean
# clip's estimate runs off its end.
_WADA_DB = np.arange(-20.0, 101.0)
_WADA_G = np.array(
    [
        0.409434,
        0.409458,
        0.409496,
        0.409554,
        0.409642,
        0.409774,
        0.409971,
        0.410261,
        0.410683,
        0.411288,
        0.412144,
        0.413334,
        0.414965,
        0.417159,
        0.420063,
        0.423836,
        0.428652,
        0.434691,
        0.442129,
        0.451132,
        0.461843,
        0.474377,
        0.488807,
        0.505167,
        0.523442,
        0.543574,
        0.565460,
        0.588963,
        0.613914,
        0.640123,
        0.667387,
        0.695494,
        0.724238,
        0.753416,
        0.782838,
        0.812330,
        0.841731,
        0.870902,
        0.899720,
        0.928081,
        0.955896,
        0.983094,
        1.009617,
        1.035419,
        1.060468,
        1.084740,
        1.108219,
        1.130899,
        1.152779,
        1.173861,
        1.194156,
        1.213673,
        1.232430,
        1.250441,
        1.267726,
        1.284306,
        1.300200,
        1.315432,
        1.330022,
        1.343994,
        1.357369,
        1.370169,
        1.382416,
        1.394132,
        1.405337,
        1.416052,
        1.426297,
        1.436092,
        1.445454,
        1.454402,
        1.462954,
        1.471127,
        1.478936,
        1.486398,
        1.493527,
        1.500338,
        1.506845,
        1.513061,
        1.518999,
        1.524672,
        1.530090,
        1.535265,
        1.540209,
        1.544931,
        1.549440,
        1.553748,
        1.557862,
        1.561791,
        1.565543,
        1.569127,
        1.572549,
        1.575818,
        1.578939,
        1.581919,
        1.584766,
        1.587484,
        1.590079,
        1.592557,
        1.594924,
        1.597184,
        1.599342,
        1.601403,
        1.603371,
        1.605250,
        1.607044,
        1.608758,
        1.610394,
        1.611957,
        1.613449,
        1.614873,
        1.616234,
        1.617533,
        1.618774,
        1.619959,
        1.621091,
        1.622171,
        1.623203,
        1.624189,
        1.625130,
        1.626028,
        1.626886,
    ]
)


def wada_snr(y: npt.ArrayLike) -> tuple[float, bool]:
    """Waveform-amplitude-distribution SNR (Kim & Stern 2008) of one clip, in dB.

    The statistic ``log(mean|y|) - mean(log|y|)`` grows with the SNR under the paper's model (speech
    amplitudes Gamma-distributed with shape 0.4 plus Gaussian noise); the SNR is read off the model's
    table by linear interpolation.

    Returns
    -------
    (snr_db, at_end)
        ``at_end`` is True when the statistic falls off either end of the table (-20 or 100 dB): the
        estimate is then a bound, not a value, as happens on short clean clips. NaN for silent clips.
    """
    x = np.abs(np.asarray(y, dtype=np.float64).ravel())
    peak = x.max() if x.size else 0.0
    if peak == 0.0:
        return math.nan, False
    x = np.maximum(x / peak, 1e-10)
    g = math.log(max(1e-10, float(x.mean()))) - float(np.log(x).mean())
    if g <= _WADA_G[0]:
        return float(_WADA_DB[0]), True
    if g >= _WADA_G[-1]:
        return float(_WADA_DB[-1]), True
    return float(np.interp(g, _WADA_G, _WADA_DB)), False


DIGITAL_SILENCE_S = 0.002
"""Exact zeros lasting this long or longer are digital silence (padding, a noise gate, a dropped
packet), not a quiet stretch of a recording: no analogue noise floor stays at exactly zero for 2 ms."""

SNR_BAND = (0.7, 0.8)
"""The SNR is estimated on the band below ``SNR_BAND[0]`` of the Nyquist frequency, tapered to nothing
at ``SNR_BAND[1]``."""


class SnrEstimate(NamedTuple):
    """What :func:`speech_snr` found: the estimate (dB), whether it is censored (stuck at an end of the
    table, so a bound: at most -20 dB or at least 100 dB), and the share of the clip's samples in
    digital silence, which the estimate leaves out."""

    snr_db: float
    censored: bool
    digital_silence: float


def digital_silence(y: npt.ArrayLike, sr: int, *, min_run_s: float = DIGITAL_SILENCE_S) -> np.ndarray:
    """Which samples lie in runs of at least ``min_run_s`` seconds (and two samples) of exact zeros."""
    x = np.asarray(y).ravel()
    zero = x == 0
    if not zero.any():
        return zero
    run = max(2, math.ceil(min_run_s * sr))
    edges = np.diff(np.concatenate([[0], zero.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    long = (ends - starts) >= run
    # Runs are separated by non-zero samples, so no run ends where another starts.
    marks = np.zeros(x.size + 1, dtype=np.int8)
    marks[starts[long]] = 1
    marks[ends[long]] = -1
    return np.cumsum(marks[:-1]) > 0


_BAND_CACHE: dict[int, np.ndarray] = {}


def _band_limited(x: np.ndarray) -> np.ndarray:
    """``x`` without the top of its band (see :data:`SNR_BAND`), by one real FFT; the transform is
    padded so that the filter's ringing does not wrap round."""
    size = scipy.fft.next_fast_len(x.size + 64, real=True)
    gain = _BAND_CACHE.get(size)
    if gain is None:
        f = np.arange(size // 2 + 1) / (size / 2)
        ramp = np.clip((SNR_BAND[1] - f) / (SNR_BAND[1] - SNR_BAND[0]), 0.0, 1.0)
        gain = _BAND_CACHE.setdefault(size, 0.5 - 0.5 * np.cos(np.pi * ramp))
    return np.asarray(scipy.fft.irfft(scipy.fft.rfft(x, n=size) * gain, n=size)[: x.size])


def speech_snr(y: npt.ArrayLike, sr: int, *, min_silence_s: float = DIGITAL_SILENCE_S) -> SnrEstimate:
    """WADA SNR (:func:`wada_snr`) of a clip's recorded part, in dB, with its censoring.

    Two things throw the plain estimator off without changing what anyone hears, and both are removed
    first:

    - digital silence: runs of exact zeros (at least ``min_silence_s``, see :func:`digital_silence`)
      put ``log 0`` into the statistic and push a clip to the top of the table; they are cut out;
    - the finest amplitudes: the statistic leans on the smallest samples, which the quantisation step
      (FSDD holds a speaker recorded with 8-bit resolution, whose quiet samples are exact zeros between
      steps) and any resampling (whose filter acts near the Nyquist frequency) change freely. The
      estimate is made on the band below 70% of the Nyquist frequency (tapered off at 80%), where
      speech is and resampling is not; there a round trip 8 -> 16 -> 8 kHz moves an FSDD clip's
      estimate by 0.1 dB, against 87 dB for the 8-bit speaker with the plain estimator.

    Returns
    -------
    SnrEstimate
        ``(snr_db, censored, digital_silence)``; ``snr_db`` is NaN when nothing but silence is left.
    """
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    x = np.asarray(y, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    x = x.ravel()
    if x.size == 0:
        return SnrEstimate(math.nan, False, math.nan)
    silent = digital_silence(x, sr, min_run_s=min_silence_s)
    share = float(silent.mean())
    kept = x[~silent]
    if kept.size == 0 or not np.any(kept):
        return SnrEstimate(math.nan, False, share)
    snr, at_end = wada_snr(_band_limited(kept))
    return SnrEstimate(snr, bool(at_end) and not math.isnan(snr), share)


def _hop_frames(x: np.ndarray, frame: int, hop: int) -> np.ndarray:
    """Rows of ``frame`` samples of ``x`` starting every ``hop`` samples, as a read-only view: what
    ``sliding_window_view(x, frame)[::hop]`` gives, without its checks (a tenth of a short clip's cost)."""
    n = (x.size - frame) // hop + 1
    step = x.strides[0]
    return np.lib.stride_tricks.as_strided(x, shape=(n, frame), strides=(hop * step, step), writeable=False)


@functools.lru_cache(maxsize=16)
def _hann_and_freqs(frame: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    return np.hanning(frame), np.fft.rfftfreq(frame, 1 / sr)


def clip_measures(y: np.ndarray, sr: int) -> dict[str, float]:
    """The measures of one clip that the import does not store already.

    Parameters
    ----------
    y : ndarray, shape (n,) or (n, channels)
        Samples in [-1, 1]; channels are averaged.
    sr : int
        Sample rate in Hz.

    Returns
    -------
    dict
        ``pitch_hz``: :func:`analysis.pitch.median_pitch` (median YIN F0, 60-400 Hz, over frames
        within 25 dB of the loudest);
        ``centroid_hz``: centroid of the long-term power spectrum of those frames;
        ``low_band_db``: the share of that spectrum's energy below 300 Hz, in dB (a telephone line
        removes it: -15 dB on FSDD, where a pitch shift of two semitones moves it by about 1 dB);
        ``speaking_rate``: peaks of the smoothed energy envelope (syllable nuclei, at least 6 dB
        prominent and 100 ms apart) per second of non-silent audio;
        ``wada_snr_db``: :func:`speech_snr`, with ``wada_at_end`` 1.0 when it is censored (else 0.0)
        and ``digital_silence`` the share of samples in runs of exact zeros it left out. Each is NaN
        when undefined (a silent or too short clip).
    """
    x = np.asarray(y, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    out = {"pitch_hz": math.nan, "centroid_hz": math.nan, "low_band_db": math.nan, "speaking_rate": math.nan}
    snr = speech_snr(x, sr)
    out["wada_snr_db"] = snr.snr_db
    out["wada_at_end"] = float(snr.censored) if not math.isnan(snr.snr_db) else math.nan
    out["digital_silence"] = snr.digital_silence
    if x.size == 0 or not np.any(x):
        return out

    # Loud frames: within 25 dB of the clip's loudest 32 ms frame, 10 ms apart.
    frame, hop = next_pow2(0.032 * sr), max(1, round(0.010 * sr))
    padded = x if len(x) >= frame else np.pad(x, (0, frame - len(x)))
    every = _hop_frames(padded, frame, hop)
    rms = np.sqrt(np.einsum("ij,ij->i", every, every) / frame)
    loud = rms >= rms.max() * 10 ** (-25 / 20)

    # Spectral centroid of the power spectrum summed over loud frames.
    window, freqs = _hann_and_freqs(frame, sr)
    transformed = scipy.fft.rfft(every[loud] * window, axis=1)
    spectrum = (transformed.real**2 + transformed.imag**2).sum(axis=0)
    if spectrum.sum() > 0:
        out["centroid_hz"] = float((freqs * spectrum).sum() / spectrum.sum())
        low = spectrum[freqs < CHANNEL_LOW_HZ].sum()
        out["low_band_db"] = float(10 * np.log10(max(low / spectrum.sum(), 1e-12)))

    out["pitch_hz"] = median_pitch(x, sr)

    # Syllable nuclei: peaks of the 10 ms energy envelope smoothed over ~50 ms.
    # The envelope is padded with silence: trimmed clips start and end inside a syllable.
    level = 20 * np.log10(np.maximum(rms, 1e-10))
    env_db = np.full(level.size + 10, level.max() - 60.0)
    env_db[5:-5] = level
    smooth = np.convolve(env_db, np.ones(5) / 5, mode="same")
    peaks, _ = signal.find_peaks(
        smooth, prominence=6.0, distance=max(1, round(0.1 * sr / hop)), height=smooth.max() - 25.0
    )
    speech_s = loud.sum() * hop / sr
    if speech_s > 0:
        out["speaking_rate"] = float(max(1, len(peaks)) / max(speech_s, 0.1))
    return out


# ---------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class MeasureResult:
    """One measure's test: the statistic, its p-value against the threshold, and the effect size.

    ``change`` says what moved (for a drifted continuous measure, :meth:`analysis.shift.Change.to_dict`:
    the shift with its interval, quantiles, shares at bounds, spread and tails; for the WER test the
    difference and its bootstrap interval), and ``reason`` the same in words, empty when nothing
    drifted.
    """

    name: str
    family: str
    test: str
    statistic: float
    p_value: float
    threshold: float
    drift: bool
    effect: float
    effect_unit: str
    reference: dict[str, float] = field(default_factory=dict)
    batch: dict[str, float] = field(default_factory=dict)
    change: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self))


@dataclass(frozen=True)
class DriftReport:
    """A batch against a reference.

    ``level`` is ``"warning"`` when anything drifted, ``"too_small"`` when the batch is under the
    minimum size (then ``drift`` is False and ``reasons`` says so), else ``"none"``. ``measures`` lists
    drifted measures first, then by p-value. ``concept`` is the accuracy test when the frames carry a
    ``correct`` column, ``wer`` the word-error-rate test when they carry ``word_errors`` and
    ``ref_words`` (:func:`wer_drift`).
    """

    drift: bool
    level: str
    measures: list[MeasureResult]
    multivariate: MeasureResult | None
    reasons: list[str]
    n_reference: int
    n_batch: int
    min_p: float
    concept: MeasureResult | None = None
    wer: MeasureResult | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "drift": bool(self.drift),
            "level": self.level,
            "n_reference": int(self.n_reference),
            "n_batch": int(self.n_batch),
            "min_p": _json_float(self.min_p),
            "reasons": list(self.reasons),
            "measures": [m.to_dict() for m in self.measures],
            "multivariate": None if self.multivariate is None else self.multivariate.to_dict(),
            "concept": None if self.concept is None else self.concept.to_dict(),
            "wer": None if self.wer is None else self.wer.to_dict(),
        }


def _json_float(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _json_float(obj)
    return obj


# ---------------------------------------------------------------------------------------------------
# Tests


def _summary(x: np.ndarray) -> dict[str, float]:
    if x.size == 0:
        return {"n": 0}
    p5, p25, p50, p75, p95 = np.percentile(x, [5, 25, 50, 75, 95])
    return {
        "n": int(x.size),
        "mean": float(x.mean()),
        "median": float(p50),
        "p5": float(p5),
        "p25": float(p25),
        "p75": float(p75),
        "p95": float(p95),
    }


def _numeric(frame: pd.DataFrame, name: str) -> np.ndarray:
    values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
    return values[np.isfinite(values)]


def _ks(ref: np.ndarray, bat: np.ndarray) -> tuple[float, float]:
    res = stats.ks_2samp(ref, bat, method="auto")
    return float(res.statistic), float(res.pvalue)


def _continuous(spec: MeasureSpec, ref: np.ndarray, bat: np.ndarray) -> tuple[str, float, float, float]:
    """KS test (in two parts for a censored measure); effect = Hodges-Lehmann shift (difference of
    means in percentage points for the clipped fraction)."""
    if spec.name == "clipped_fraction":
        effect = 100.0 * float(bat.mean() - ref.mean())
    else:
        effect = hodges_lehmann(ref, bat, interval=False).estimate
    if spec.bounds is None:
        stat, p = _ks(ref, bat)
        return "Kolmogorov-Smirnov", stat, p, effect
    lo, hi = spec.bounds
    parts = []
    for at_r, at_b in ((ref <= lo, bat <= lo), (ref >= hi, bat >= hi)):
        k_r, k_b = int(at_r.sum()), int(at_b.sum())
        if k_r or k_b:
            parts.append(_fisher_p(k_r, ref.size, k_b, bat.size))
    inside_r, inside_b = ref[(ref > lo) & (ref < hi)], bat[(bat > lo) & (bat < hi)]
    if not parts:
        stat, p = _ks(ref, bat)
        return "Kolmogorov-Smirnov", stat, p, effect
    stat, p_ks = _ks(inside_r, inside_b) if inside_r.size and inside_b.size else (math.nan, 1.0)
    p = min(1.0, (len(parts) + 1) * min([p_ks, *parts]))
    return "Kolmogorov-Smirnov within the table, Fisher exact at its ends", stat, p, effect


def _fisher_p(k_ref: int, n_ref: int, k_bat: int, n_bat: int) -> float:
    table = np.array([[k_ref, n_ref - k_ref], [k_bat, n_bat - k_bat]])
    if table[:, 0].sum() == 0 or table[:, 1].sum() == 0:
        return 1.0
    return float(stats.fisher_exact(table).pvalue)


def _rate_values(frame: pd.DataFrame, name: str) -> np.ndarray:
    col = frame[name]
    if col.dtype == bool:
        return col.to_numpy(dtype=np.float64)
    values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
    return values[np.isfinite(values)]


def _rate(ref: tuple[int, int], bat: tuple[int, int]) -> tuple[str, float, float, float]:
    """Fisher's exact test on the 2x2 table of shares (``(ones, n)`` each); effect in points."""
    (a, n_a), (b, n_b) = ref, bat
    table = np.array([[a, n_a - a], [b, n_b - b]])
    if table[:, 0].sum() == 0 or table[:, 1].sum() == 0:
        p, stat = 1.0, 1.0
    else:
        stat, p = stats.fisher_exact(table)
    effect = 100.0 * (b / max(1, n_b) - a / max(1, n_a))
    return "Fisher exact", float(stat), float(p), float(effect)


def _class_counts(values: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in values.astype(str).value_counts().items()}


def _categorical(
    ref_counts: Mapping[str, int], bat_counts: Mapping[str, int]
) -> tuple[str, float, float, float, dict, dict]:
    """Chi-squared homogeneity test of the class mix; effect = total-variation distance."""
    classes = sorted(set(ref_counts) | set(bat_counts))
    table = np.array(
        [[ref_counts.get(c, 0) for c in classes], [bat_counts.get(c, 0) for c in classes]], dtype=float
    )
    ref_share, bat_share = table[0] / max(1.0, table[0].sum()), table[1] / max(1.0, table[1].sum())
    effect = 0.5 * float(np.abs(ref_share - bat_share).sum())
    if len(classes) < 2 or table[1].sum() == 0:
        stat, p = 0.0, 1.0
    else:
        res = stats.chi2_contingency(table, correction=False)
        stat, p = float(res.statistic), float(res.pvalue)
    ref_summary = {
        "n": int(table[0].sum()),
        **{f"share_{c}": float(s) for c, s in zip(classes, ref_share, strict=True)},
    }
    bat_summary = {
        "n": int(table[1].sum()),
        **{f"share_{c}": float(s) for c, s in zip(classes, bat_share, strict=True)},
    }
    return "chi-squared homogeneity", stat, p, effect, ref_summary, bat_summary


def _standardise(reference: np.ndarray, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardise both on the reference's mean and std; NaN to 0 (the reference mean)."""
    mean = np.nanmean(reference, axis=0)
    std = np.nanstd(reference, axis=0)
    keep = np.isfinite(std) & (std > 0)
    ref = (reference[:, keep] - mean[keep]) / std[keep]
    bat = (batch[:, keep] - mean[keep]) / std[keep]
    return np.nan_to_num(ref, nan=0.0, posinf=0.0, neginf=0.0), np.nan_to_num(
        bat, nan=0.0, posinf=0.0, neginf=0.0
    )


def mmd_test(
    reference: npt.ArrayLike,
    batch: npt.ArrayLike,
    *,
    n_permutations: int = 500,
    max_reference: int = MMD_MAX_REFERENCE,
    max_batch: int = MMD_MAX_BATCH,
    random_state: int | np.random.Generator | None = 0,
) -> tuple[float, float, float]:
    """Kernel two-sample test (biased MMD², Gaussian kernel, median-distance bandwidth).

    Both arrays are rows of already comparable features (e.g. standardised). Reference and batch are
    subsampled to at most ``max_reference`` and ``max_batch`` rows. Each permutation only needs the row sums
    and the block of the kernel over the smaller group: a gather for small groups, else one matrix
    product for all permutations.

    Returns
    -------
    (mmd2, p_value, bandwidth)
        ``p = (1 + #{permuted MMD² >= observed}) / (1 + n_permutations)``.
    """
    rng = np.random.default_rng(random_state)
    x = np.asarray(reference, dtype=np.float64)
    z = np.asarray(batch, dtype=np.float64)
    if x.ndim != 2 or z.ndim != 2 or x.shape[1] != z.shape[1]:
        raise ValueError("reference and batch must be 2-D with the same number of columns")
    if len(x) > max_reference:
        x = x[rng.choice(len(x), max_reference, replace=False)]
    if len(z) > max_batch:
        z = z[rng.choice(len(z), max_batch, replace=False)]
    nx, nz = len(x), len(z)
    if nx < 2 or nz < 2 or x.shape[1] == 0:
        return 0.0, 1.0, math.nan
    pooled = np.vstack([x, z])
    sq = np.einsum("ij,ij->i", pooled, pooled)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * pooled @ pooled.T, 0.0)
    upper = np.concatenate([d2[i, i + 1 :] for i in range(len(pooled) - 1)])
    med = float(np.median(upper))
    if med <= 0:
        med = float(np.mean(upper)) or 1.0
    kernel = np.exp(-d2 / (2.0 * med))
    n = nx + nz
    total = kernel.sum()
    row = kernel.sum(axis=1)

    # With the smaller group S (size m) and the rest R: MMD² = mean K_SS + mean K_RR - 2 mean K_SR, and
    # K_RR and K_SR follow from the total, the row sums over S and the block K_SS.
    m = min(nx, nz)
    r = n - m

    def mmd_of(chosen: np.ndarray) -> np.ndarray:  # chosen: (b, m) indices of the smaller group
        if m <= 100:  # gathering b blocks of m x m is cheaper than a product with the whole kernel
            ss = np.concatenate(
                [kernel[c[:, :, None], c[:, None, :]].sum(axis=(1, 2)) for c in np.array_split(chosen, 10)]
            )
        else:  # w' K w for every 0/1 column w at once: one matrix product
            member = np.zeros((n, len(chosen)))
            member[chosen.T, np.arange(len(chosen))[None, :]] = 1.0
            ss = np.einsum("ib,ib->b", member, kernel @ member)
        s_row = row[chosen].sum(axis=1)
        sr = s_row - ss
        rr = total - 2 * s_row + ss
        return ss / (m * m) + rr / (r * r) - 2 * sr / (m * r)

    small = np.arange(nx, n) if nz <= nx else np.arange(nx)
    observed = float(mmd_of(small[None, :])[0])
    # The m smallest of n random keys: a uniformly drawn group (their order does not matter).
    null = mmd_of(np.argpartition(rng.random((n_permutations, n)), m - 1, axis=1)[:, :m])
    p = (1.0 + float(np.sum(null >= observed - 1e-12))) / (1.0 + n_permutations)
    return observed, p, math.sqrt(med)


def concept_drift(
    reference_correct: npt.ArrayLike,
    batch_correct: npt.ArrayLike,
    *,
    alpha: float = 0.05,
    min_labels: int = 30,
) -> MeasureResult:
    """Did accuracy change? Fisher's exact test of the batch's labelled sample against the reference's
    own per-clip correctness (both boolean, NaN for unlabelled clips, which are dropped).

    The effect is the accuracy difference in percentage points; the batch summary carries a Wilson 95%
    interval. Under ``min_labels`` labelled batch clips there is no verdict (``drift`` False, p NaN).
    See :func:`concept_test` for the same test on counts.
    """
    ref = _labelled(reference_correct)
    bat = _labelled(batch_correct)
    return concept_test(
        int(ref.sum()), int(ref.size), int(bat.sum()), int(bat.size), alpha=alpha, min_labels=min_labels
    )


def concept_test(
    reference_correct: int,
    reference_n: int,
    batch_correct: int,
    batch_n: int,
    *,
    alpha: float = 0.05,
    min_labels: int = 30,
) -> MeasureResult:
    """:func:`concept_drift` on counts: ``*_correct`` right answers of ``*_n`` labelled clips.

    Both summaries carry ``n``, ``correct`` and ``accuracy`` (NaN without labels); the batch's also a
    Wilson 95% interval (``ci_low``, ``ci_high``).
    """
    if not (0 <= reference_correct <= reference_n and 0 <= batch_correct <= batch_n):
        raise ValueError("correct counts must lie between 0 and their n")
    ref_acc = reference_correct / reference_n if reference_n else math.nan
    bat_acc = batch_correct / batch_n if batch_n else math.nan
    ref_summary = {"n": int(reference_n), "correct": int(reference_correct), "accuracy": ref_acc}
    lo, hi = _wilson(batch_correct, batch_n)
    bat_summary = {
        "n": int(batch_n),
        "correct": int(batch_correct),
        "accuracy": bat_acc,
        "ci_low": lo,
        "ci_high": hi,
    }
    if batch_n < min_labels or reference_n == 0:
        return MeasureResult(
            "accuracy", "concept", "Fisher exact", math.nan, math.nan, alpha, False,
            math.nan, "pp", ref_summary, bat_summary,
        )  # fmt: skip
    table = np.array(
        [[reference_correct, reference_n - reference_correct], [batch_correct, batch_n - batch_correct]],
        dtype=int,
    )
    stat, p = stats.fisher_exact(table)
    effect = 100.0 * (bat_acc - ref_acc)
    return MeasureResult(
        "accuracy", "concept", "Fisher exact", float(stat), float(p), alpha, bool(p < alpha),
        float(effect), "pp", ref_summary, bat_summary,
    )  # fmt: skip


def concept_reason(
    concept: MeasureResult, *, min_labels: int = 30, sample: str = "labelled clips"
) -> str | None:
    """The accuracy of a :func:`concept_test` in words, with its counts (None without labels):
    the drop or rise when it drifted, "no change" when it did not, or why there is no verdict."""
    n, k = int(concept.batch.get("n") or 0), int(concept.batch.get("correct") or 0)
    if n == 0:
        return None
    ref = concept.reference.get("accuracy")
    ref_s = "" if ref is None or not math.isfinite(ref) else f"{100 * ref:.0f}%"
    counted = f"{k} of {n} {sample} right ({100 * k / n:.0f}%)"
    if concept.drift:
        return (
            f"accuracy {_signed(concept.effect, '.1f')} points: {counted} against {ref_s} on the "
            f"reference (Fisher {_p(concept.p_value)})"
        )
    if not math.isfinite(concept.p_value):
        against = f" against {ref_s} on the reference" if ref_s else ""
        return f"accuracy: {counted}{against}; too few for a verdict ({min_labels} needed)"
    return f"accuracy: {counted} against {ref_s} on the reference, no change (Fisher {_p(concept.p_value)})"


def _labelled(values: npt.ArrayLike) -> np.ndarray:
    arr = pd.to_numeric(pd.Series(np.asarray(values, dtype=object)), errors="coerce").to_numpy(float)
    return arr[np.isfinite(arr)] > 0.5


def _wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


# ---------------------------------------------------------------------------------------------------
# Transcripts: word error rate and transcript length

WER_PERMUTATIONS = 2000
WER_BOOTSTRAP = 2000


def transcript_words(texts: Sequence[Any] | pd.Series) -> np.ndarray:
    """Words (whitespace-separated tokens) in each transcript, the ``transcript_words`` measure:
    0 for an empty or blank one, NaN where there is none (None or NaN)."""
    out = np.full(len(texts), np.nan)
    for i, text in enumerate(texts):
        if isinstance(text, str):
            out[i] = len(text.split())
        elif text is not None and not (isinstance(text, float) and math.isnan(text)):
            out[i] = len(str(text).split())
    return out


def _wer_pairs(errors: npt.ArrayLike, words: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Labelled clips only: both counts finite; a clip whose reference has no words counts one word,
    as in :func:`analysis.text.wer`."""
    e = pd.to_numeric(pd.Series(np.asarray(errors, dtype=object)), errors="coerce").to_numpy(float)
    w = pd.to_numeric(pd.Series(np.asarray(words, dtype=object)), errors="coerce").to_numpy(float)
    if e.shape != w.shape:
        raise ValueError(f"got {e.size} error counts and {w.size} word counts")
    keep = np.isfinite(e) & np.isfinite(w)
    if np.any(e[keep] < 0) or np.any(w[keep] < 0):
        raise ValueError("error and word counts cannot be negative")
    return e[keep], np.maximum(w[keep], 1.0)


def _wer_boot(e: np.ndarray, w: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Corpus WER of ``n_boot`` resamples of the clips (in chunks, so a large reference stays small)."""
    if e.size == 0:
        return np.full(n_boot, np.nan)
    out = np.empty(n_boot)
    chunk = max(1, 2_000_000 // e.size)
    for start in range(0, n_boot, chunk):
        idx = rng.integers(0, e.size, (min(chunk, n_boot - start), e.size))
        out[start : start + len(idx)] = e[idx].sum(axis=1) / w[idx].sum(axis=1)
    return out


def _wer_permutation_p(
    ref_e: np.ndarray,
    ref_w: np.ndarray,
    bat_e: np.ndarray,
    bat_w: np.ndarray,
    n: int,
    rng: np.random.Generator,
) -> float:
    """Two-sided permutation p of the corpus-WER difference: clips shuffled between the groups."""
    pe, pw = np.concatenate([ref_e, bat_e]), np.concatenate([ref_w, bat_w])
    total_e, total_w, k = pe.sum(), pw.sum(), bat_e.size
    observed = abs(bat_e.sum() / bat_w.sum() - ref_e.sum() / ref_w.sum())
    hits = 0
    chunk = max(1, 2_000_000 // pe.size)
    for start in range(0, n, chunk):
        keys = rng.random((min(chunk, n - start), pe.size))
        chosen = np.argpartition(keys, k - 1, axis=1)[:, :k] if k < pe.size else np.argsort(keys, axis=1)
        se, sw = pe[chosen].sum(axis=1), pw[chosen].sum(axis=1)
        d = np.abs(se / sw - (total_e - se) / (total_w - sw))
        hits += int(np.sum(d >= observed - 1e-12))
    return (1.0 + hits) / (1.0 + n)


def wer_drift(
    reference_errors: npt.ArrayLike,
    reference_words: npt.ArrayLike,
    batch_errors: npt.ArrayLike,
    batch_words: npt.ArrayLike,
    *,
    alpha: float = 0.05,
    min_labels: int = 30,
    n_permutations: int = WER_PERMUTATIONS,
    n_boot: int = WER_BOOTSTRAP,
    random_state: int | None = 0,
) -> MeasureResult:
    """Did the word error rate change? The batch's labelled sample against the reference's.

    Per clip: word edit distance between the live model's transcript and the final transcript
    (``errors``) and the final transcript's word count (``words``), NaN for unlabelled clips (dropped);
    :func:`analysis.text.error_rates` gives both (``word_errors``, ``ref_words``). Rates are corpus
    rates (total errors over total words, as jiwer computes them).

    The verdict is a two-sided permutation test of the difference (clips shuffled between reference
    and batch, ``n_permutations`` times; drift when ``p < alpha``); ``change`` carries the difference
    in points with its percentile bootstrap interval at ``1 - alpha`` (``n_boot`` resamples of each
    side). Under ``min_labels`` labelled batch clips there is no verdict (``drift`` False, p NaN).
    """
    ref_e, ref_w = _wer_pairs(reference_errors, reference_words)
    rng = np.random.default_rng(random_state)
    ref_boot = _wer_boot(ref_e, ref_w, n_boot, rng)
    return _wer_test(
        ref_e, ref_w, ref_boot, batch_errors, batch_words, alpha=alpha, min_labels=min_labels,
        n_permutations=n_permutations, rng=rng,
    )  # fmt: skip


def _wer_test(
    ref_e: np.ndarray,
    ref_w: np.ndarray,
    ref_boot: np.ndarray,
    batch_errors: npt.ArrayLike,
    batch_words: npt.ArrayLike,
    *,
    alpha: float,
    min_labels: int,
    n_permutations: int,
    rng: np.random.Generator,
) -> MeasureResult:
    bat_e, bat_w = _wer_pairs(batch_errors, batch_words)

    def side(e: np.ndarray, w: np.ndarray) -> dict[str, float]:
        rate = float(e.sum() / w.sum()) if e.size else math.nan
        return {"n": int(e.size), "words": float(w.sum()), "errors": float(e.sum()), "wer": rate}

    ref_s, bat_s = side(ref_e, ref_w), side(bat_e, bat_w)
    test = f"permutation test of the WER difference ({n_permutations:,} shuffles)"
    if bat_e.size < min_labels or ref_e.size == 0 or bat_e.size == 0:
        return MeasureResult(
            "wer", "concept", test, math.nan, math.nan, alpha, False, math.nan, "pp", ref_s, bat_s
        )
    diff = bat_s["wer"] - ref_s["wer"]
    p = _wer_permutation_p(ref_e, ref_w, bat_e, bat_w, n_permutations, rng)
    boot = _wer_boot(bat_e, bat_w, ref_boot.size, rng) - ref_boot
    lo, hi = np.percentile(boot, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    change = {
        "difference": 100.0 * diff,
        "ci_low": 100.0 * float(lo),
        "ci_high": 100.0 * float(hi),
        "confidence": 1.0 - alpha,
        "n_boot": int(ref_boot.size),
    }
    result = MeasureResult(
        "wer", "concept", test, float(diff), float(p), alpha, bool(p < alpha), 100.0 * float(diff), "pp",
        ref_s, bat_s, change,
    )  # fmt: skip
    return replace(result, reason=wer_reason(result, min_labels=min_labels) or "")


def wer_reason(wer: MeasureResult, *, min_labels: int = 30, sample: str = "labelled clips") -> str | None:
    """A :func:`wer_drift` result in words (None without labels): the rise or fall with its interval
    when it drifted, "no change" when it did not, or why there is no verdict."""
    n = int(wer.batch.get("n") or 0)
    if n == 0:
        return None
    bat, ref = _float(wer.batch.get("wer")), _float(wer.reference.get("wer"))
    ref_s = f"{100 * ref:.1f}%" if math.isfinite(ref) else ""
    counted = f"WER {100 * bat:.1f}% on {n} {sample}"
    against = f" against {ref_s} on the reference" if ref_s else ""
    if not math.isfinite(wer.p_value):
        return f"{counted}{against}; too few for a verdict ({min_labels} needed)"
    if wer.drift:
        c = wer.change
        level = f"{100 * float(c.get('confidence', 0.95)):g}%"
        return (
            f"WER {_signed(wer.effect, '.1f')} points ({level} CI {_signed(c['ci_low'], '.1f')} to "
            f"{_signed(c['ci_high'], '.1f')}): {100 * bat:.1f}% on {n} {sample}{against} "
            f"(permutation {_p(wer.p_value)})"
        )
    return f"{counted}{against}, no change (permutation {_p(wer.p_value)})"


# ---------------------------------------------------------------------------------------------------
# The reference, summarised once

SUMMARY_FORMAT = 1


@dataclass(frozen=True)
class ReferenceSummary:
    """Everything :func:`drift_report` reads from a reference: make it with :func:`reference_summary`
    once per reference version, keep :meth:`to_bytes` (or :meth:`to_dict`), and check each batch
    against it.

    ``values`` holds each continuous measure's finite values, sorted (the KS tests and the shift need
    them all); ``stats`` their percentiles; ``shares`` each rate measure as ``(ones, n)``; ``counts``
    each categorical measure's clips per class. ``mmd_rows`` are at most 2,000 clips drawn with
    ``random_state``, standardised on the whole reference's ``mmd_mean`` and ``mmd_std`` (one column
    per name in ``mmd_columns``; missing values at the mean). ``correct`` is ``(right, labelled)``;
    ``wer_errors`` and ``wer_words`` the labelled clips' counts, ``wer_boot`` the corpus WER of
    bootstrap resamples of them. ``key`` is the caller's name for what was summarised (a reference
    version), ``measures_version`` the :data:`MEASURES_VERSION` of the measures it was made from.
    """

    n: int
    values: dict[str, np.ndarray]
    stats: dict[str, dict[str, float]]
    shares: dict[str, tuple[int, int]]
    counts: dict[str, dict[str, int]]
    mmd_columns: tuple[str, ...]
    mmd_mean: np.ndarray
    mmd_std: np.ndarray
    mmd_rows: np.ndarray
    correct: tuple[int, int] | None = None
    wer_errors: np.ndarray | None = None
    wer_words: np.ndarray | None = None
    wer_boot: np.ndarray | None = None
    random_state: int | None = 0
    key: str = ""
    measures_version: int = MEASURES_VERSION

    @property
    def columns(self) -> set[str]:
        """The measures the reference has (and ``correct``, ``word_errors`` when it has those)."""
        cols = set(self.values) | set(self.shares) | set(self.counts)
        if self.correct is not None:
            cols.add("correct")
        if self.wer_errors is not None:
            cols |= {"word_errors", "ref_words"}
        return cols

    def _header(self) -> dict[str, Any]:
        return {
            "format": SUMMARY_FORMAT,
            "n": self.n,
            "stats": self.stats,
            "shares": {k: list(v) for k, v in self.shares.items()},
            "counts": self.counts,
            "mmd_columns": list(self.mmd_columns),
            "correct": None if self.correct is None else list(self.correct),
            "random_state": self.random_state,
            "key": self.key,
            "measures_version": self.measures_version,
        }

    def _arrays(self) -> dict[str, np.ndarray | None]:
        return {
            **{f"values/{k}": v for k, v in self.values.items()},
            "mmd_mean": self.mmd_mean,
            "mmd_std": self.mmd_std,
            "mmd_rows": self.mmd_rows,
            "wer_errors": self.wer_errors,
            "wer_words": self.wer_words,
            "wer_boot": self.wer_boot,
        }

    @classmethod
    def _build(cls, header: Mapping[str, Any], arrays: Mapping[str, np.ndarray | None]) -> ReferenceSummary:
        if header.get("format") != SUMMARY_FORMAT:
            raise ValueError(
                f"reference summary of format {header.get('format')!r}; this version reads {SUMMARY_FORMAT}"
            )
        correct = header.get("correct")
        return cls(
            n=int(header["n"]),
            values={
                k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("values/") and v is not None
            },
            stats={k: {s: _float(x) for s, x in v.items()} for k, v in header["stats"].items()},
            shares={k: (int(v[0]), int(v[1])) for k, v in header["shares"].items()},
            counts={k: {c: int(n) for c, n in v.items()} for k, v in header["counts"].items()},
            mmd_columns=tuple(header["mmd_columns"]),
            mmd_mean=np.asarray(arrays["mmd_mean"], dtype=np.float64),
            mmd_std=np.asarray(arrays["mmd_std"], dtype=np.float64),
            mmd_rows=np.asarray(arrays["mmd_rows"], dtype=np.float64).reshape(-1, len(header["mmd_columns"])),
            correct=None if correct is None else (int(correct[0]), int(correct[1])),
            wer_errors=arrays.get("wer_errors"),
            wer_words=arrays.get("wer_words"),
            wer_boot=arrays.get("wer_boot"),
            random_state=header.get("random_state"),
            key=str(header.get("key") or ""),
            measures_version=int(header.get("measures_version") or 0),
        )

    def to_bytes(self) -> bytes:
        """The summary as a compressed ``.npz`` (no pickles), for :meth:`from_bytes`."""
        buffer = io.BytesIO()
        arrays: dict[str, Any] = {k: v for k, v in self._arrays().items() if v is not None}
        arrays["header"] = np.array(json.dumps(_json_safe(self._header())))
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceSummary:
        """A summary written by :meth:`to_bytes`; a clear ValueError for anything else."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays: dict[str, np.ndarray | None] = {k: npz[k] for k in npz.files if k != "header"}
                header = json.loads(str(npz["header"]))
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a reference summary: {exc}") from exc
        return cls._build(header, arrays)

    def to_dict(self) -> dict[str, Any]:
        """The summary as plain JSON types (lists of floats), for :meth:`from_dict`."""
        arrays = {k: None if v is None else v.tolist() for k, v in self._arrays().items()}
        return _json_safe({**self._header(), "arrays": arrays})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceSummary:
        """A summary from :meth:`to_dict` (after a JSON round trip)."""
        try:
            # JSON null (a NaN written out) comes back as NaN.
            arrays = {
                k: None if v is None else np.array(v, dtype=np.float64) for k, v in data["arrays"].items()
            }
            return cls._build(data, arrays)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a reference summary: {exc!r}") from exc


def _float(x: Any) -> float:
    return math.nan if x is None else float(x)


def _measure_stats(spec: MeasureSpec, values: np.ndarray) -> dict[str, float]:
    out = _summary(values)
    if spec.bounds is not None:
        ends = (values <= spec.bounds[0]) | (values >= spec.bounds[1])
        out["share_at_table_end"] = float(ends.mean()) if values.size else math.nan
    return out


def reference_summary(
    reference: pd.DataFrame,
    *,
    random_state: int | None = 0,
    key: str = "",
    n_boot: int = WER_BOOTSTRAP,
) -> ReferenceSummary:
    """Summarise a reference (one row per clip, the columns :func:`drift_report` reads) once.

    ``random_state`` draws the reference's clips for the MMD kernel (when there are more than 2,000)
    and its WER bootstrap; ``key`` names what was summarised, for the caller's cache.
    """
    if len(reference) == 0:
        raise ValueError("the reference is empty")
    rng = np.random.default_rng(random_state)
    values: dict[str, np.ndarray] = {}
    stats_: dict[str, dict[str, float]] = {}
    shares: dict[str, tuple[int, int]] = {}
    counts: dict[str, dict[str, int]] = {}
    present = [name for name in MEASURES if name in reference.columns]
    for name in present:
        spec = MEASURES[name]
        if spec.kind == "categorical":
            counts[name] = _class_counts(reference[name].dropna())
        elif spec.kind == "rate":
            v = _rate_values(reference, name)
            shares[name] = (round(float(v.sum())), int(v.size))
        else:
            values[name] = np.sort(_numeric(reference, name))
            stats_[name] = _measure_stats(spec, values[name])

    mmd_columns = tuple(
        n
        for n in present
        if MEASURES[n].family == "input" and MEASURES[n].tested and MEASURES[n].kind == "continuous"
    )
    x = reference[list(mmd_columns)].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    with np.errstate(all="ignore"):
        finite = np.isfinite(x)
        n_finite = finite.sum(axis=0)
        filled = np.where(finite, x, 0.0)
        mean = np.where(n_finite > 0, filled.sum(axis=0) / np.maximum(n_finite, 1), np.nan)
        var = np.where(finite, (x - mean) ** 2, 0.0).sum(axis=0) / np.maximum(n_finite, 1)
        std = np.where(n_finite > 0, np.sqrt(var), np.nan)
    if len(x) > MMD_MAX_REFERENCE:
        x = x[rng.choice(len(x), MMD_MAX_REFERENCE, replace=False)]
    with np.errstate(all="ignore"):
        rows = np.nan_to_num((x - mean) / std, nan=0.0, posinf=0.0, neginf=0.0)

    correct = None
    if "correct" in reference.columns:
        labelled = _labelled(reference["correct"])
        correct = (int(labelled.sum()), int(labelled.size))
    wer_e = wer_w = wer_boot = None
    if "word_errors" in reference.columns and "ref_words" in reference.columns:
        wer_e, wer_w = _wer_pairs(reference["word_errors"], reference["ref_words"])
        wer_boot = _wer_boot(wer_e, wer_w, n_boot, rng)
    return ReferenceSummary(
        n=len(reference), values=values, stats=stats_, shares=shares, counts=counts,
        mmd_columns=mmd_columns, mmd_mean=mean, mmd_std=std, mmd_rows=rows, correct=correct,
        wer_errors=wer_e, wer_words=wer_w, wer_boot=wer_boot, random_state=random_state, key=key,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# The report


def drift_report(
    reference: pd.DataFrame | ReferenceSummary,
    batch: pd.DataFrame,
    *,
    alpha: float = 0.05,
    min_batch: int = 50,
    n_permutations: int = 500,
    min_effect: Mapping[str, float] | None = None,
    random_state: int | None = 0,
    min_labels: int = 30,
    sample: str = "labelled clips",
) -> DriftReport:
    """Test a batch of clips against a reference.

    Parameters
    ----------
    reference : DataFrame or ReferenceSummary
        The reference's clips, or their :func:`reference_summary` (the same report, without the work
        on the reference; a frame is summarised with ``random_state``).
    batch : DataFrame
        One row per clip, with any of the :data:`MEASURES` columns (others are ignored; a measure
        missing from either side is skipped). A ``correct`` column (bool, NaN when unlabelled) adds
        the accuracy test; ``word_errors`` and ``ref_words`` columns (NaN when unlabelled) the
        word-error-rate test (:func:`wer_drift`).
    alpha : float
        Family-wise false-alarm rate of the whole report.
    min_batch : int
        Smallest batch that gets a verdict.
    n_permutations : int
        Permutations of the MMD test.
    min_effect : mapping, optional
        Per-measure minimum effects for batches of 1,000 clips or more, over the defaults in
        :data:`MEASURES`; ``"mmd"`` sets the multivariate one (MMD², default 0.01).
    random_state : int or None
        Seeds the MMD and WER permutations (and a frame's summary).
    min_labels : int
        Fewest labelled batch clips that get a concept-drift verdict.
    sample : str
        What the labelled clips are, for the reasons ("9 of 20 labelled clips right").

    Returns
    -------
    DriftReport
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    if isinstance(reference, ReferenceSummary):
        summary = reference
    else:
        if len(reference) == 0:
            raise ValueError("the reference is empty")
        summary = reference_summary(reference, random_state=random_state)
    if summary.measures_version != MEASURES_VERSION:
        raise ValueError(
            f"the reference summary was made from measures of version {summary.measures_version}; "
            f"this code measures version {MEASURES_VERSION}: summarise the reference again"
        )
    rng = np.random.default_rng(random_state)
    effects = {name: spec.min_effect for name, spec in MEASURES.items()} | {"mmd": 0.01}
    effects |= dict(min_effect or {})
    n_ref, n_bat = summary.n, len(batch)
    large = n_bat >= LARGE_BATCH
    present = [name for name in MEASURES if name in summary.columns and name in batch.columns]
    input_cont = [n for n in present if MEASURES[n].family == "input" and MEASURES[n].tested]
    outputs = [n for n in present if MEASURES[n].family == "output" and MEASURES[n].tested]
    mmd_cols = [n for n in input_cont if MEASURES[n].kind == "continuous" and n in summary.mmd_columns]
    groups = [g for g in (input_cont, mmd_cols if len(mmd_cols) >= 2 else [], outputs) if g]
    group_alpha = alpha / max(1, len(groups))

    results: list[MeasureResult] = []
    for name in present:
        spec = MEASURES[name]
        if spec.kind == "categorical":
            test, stat, p, effect, ref_s, bat_s = _categorical(
                summary.counts[name], _class_counts(batch[name].dropna())
            )
        elif spec.kind == "rate":
            ones, n_r = summary.shares[name]
            bat_v = _rate_values(batch, name)
            test, stat, p, effect = _rate((ones, n_r), (round(float(bat_v.sum())), int(bat_v.size)))
            ref_s = {"n": n_r, "share": ones / n_r if n_r else math.nan}
            bat_s = {"n": int(bat_v.size), "share": float(bat_v.mean()) if bat_v.size else math.nan}
        else:
            ref_v, bat_v = summary.values[name], _numeric(batch, name)
            ref_s, bat_s = dict(summary.stats[name]), _measure_stats(spec, bat_v)
            if not spec.tested or ref_v.size < 2 or bat_v.size < 2:
                test, stat, p = ("not tested" if not spec.tested else "too few values"), math.nan, math.nan
                effect = hodges_lehmann(ref_v, bat_v, interval=False).estimate
            else:
                test, stat, p, effect = _continuous(spec, ref_v, bat_v)
        group = input_cont if spec.family == "input" else outputs
        threshold = group_alpha / len(group) if spec.tested and group else math.nan
        drift = bool(
            spec.tested
            and n_bat >= min_batch
            and math.isfinite(p)
            and p < threshold
            and (not large or abs(effect) >= effects.get(name, 0.0))
        )
        result = MeasureResult(
            name, spec.family, test, stat, p, threshold, drift, effect, spec.unit, ref_s, bat_s
        )
        if drift:
            result = _explained(result, spec, summary.values.get(name), batch)
        results.append(result)

    multivariate = None
    if len(mmd_cols) >= 2 and n_bat >= 2:
        idx = [summary.mmd_columns.index(c) for c in mmd_cols]
        mean, std = summary.mmd_mean[idx], summary.mmd_std[idx]
        keep = np.isfinite(std) & (std > 0)
        bat_raw = batch[mmd_cols].apply(pd.to_numeric, errors="coerce").to_numpy(float)
        with np.errstate(all="ignore"):
            bat_x = np.nan_to_num((bat_raw - mean) / std, nan=0.0, posinf=0.0, neginf=0.0)[:, keep]
        ref_x = summary.mmd_rows[:, idx][:, keep]
        mmd2, p, bandwidth = mmd_test(
            ref_x, bat_x, n_permutations=n_permutations, max_reference=max(len(ref_x), 1), random_state=rng
        )
        drift = bool(n_bat >= min_batch and p < group_alpha and (not large or mmd2 >= effects["mmd"]))
        multivariate = MeasureResult(
            "mmd", "input", f"MMD, {n_permutations} permutations", mmd2, p, group_alpha, drift, mmd2,
            "MMD² (reference-standardised)", {"n": n_ref, "columns": len(mmd_cols)},
            {"n": n_bat, "bandwidth": bandwidth},
        )  # fmt: skip

    concept = None
    if summary.correct is not None and "correct" in batch.columns:
        bat_c = _labelled(batch["correct"])
        concept = concept_test(
            *summary.correct, int(bat_c.sum()), int(bat_c.size), alpha=alpha, min_labels=min_labels
        )
    wer = None
    if summary.wer_errors is not None and {"word_errors", "ref_words"} <= set(batch.columns):
        ref_boot = summary.wer_boot if summary.wer_boot is not None else np.full(WER_BOOTSTRAP, np.nan)
        wer = _wer_test(
            summary.wer_errors, np.asarray(summary.wer_words), ref_boot, batch["word_errors"],
            batch["ref_words"], alpha=alpha, min_labels=min_labels, n_permutations=WER_PERMUTATIONS,
            rng=rng,
        )  # fmt: skip
        wer = replace(wer, reason=wer_reason(wer, min_labels=min_labels, sample=sample) or "")

    results.sort(key=lambda r: (not r.drift, r.p_value if math.isfinite(r.p_value) else 2.0))
    drifted = [r for r in results if r.drift]
    any_drift = bool(drifted or (multivariate is not None and multivariate.drift))
    tested_p = [r.p_value for r in results if math.isfinite(r.p_value) and MEASURES[r.name].tested]
    if multivariate is not None:
        tested_p.append(multivariate.p_value)
    min_p = min(tested_p) if tested_p else math.nan

    if n_bat < min_batch:
        return DriftReport(
            False, "too_small", results, multivariate,
            [f"only {n_bat} clips in the batch; at least {min_batch} are needed for a verdict"],
            n_ref, n_bat, min_p, concept, wer,
        )  # fmt: skip
    reasons = _reasons(drifted, multivariate, results)
    if concept is not None and concept.drift:
        reasons.append(str(concept_reason(concept, min_labels=min_labels, sample=sample)))
    if wer is not None and wer.drift:
        reasons.append(wer.reason)
    return DriftReport(
        any_drift, "warning" if any_drift else "none", results, multivariate, reasons, n_ref, n_bat,
        min_p, concept, wer,
    )  # fmt: skip


def _explained(
    result: MeasureResult, spec: MeasureSpec, ref_v: np.ndarray | None, batch: pd.DataFrame
) -> MeasureResult:
    """A drifted measure with what changed (:func:`analysis.shift.describe_change`) and its reason."""
    if spec.kind == "categorical":
        reason = f"{spec.label} mix changed by {100 * result.effect:.0f}% of clips (χ² {_p(result.p_value)})"
        return replace(result, reason=reason)
    if spec.kind == "rate":
        reason = f"{spec.label} {_signed(result.effect, '.1f')} points (Fisher {_p(result.p_value)})"
        return replace(result, reason=reason)
    bat_v = _numeric(batch, spec.name)
    clipped = spec.name == "clipped_fraction"
    change = describe_change(
        ref_v if ref_v is not None else np.empty(0),
        bat_v,
        label=spec.label,
        unit="% of samples" if clipped else spec.unit,
        decimals=spec.decimals,
        bounds=spec.bounds,
        bound_names=(
            (
                f"at the table's bottom (≤ {spec.bounds[0]:g} {spec.unit})",
                f"at the table's top (≥ {spec.bounds[1]:g} {spec.unit})",
            )
            if spec.bounds is not None
            else ("", "")
        ),
        scale=100.0 if clipped else 1.0,
    )
    test = "KS/Fisher" if spec.bounds is not None and "Fisher" in result.test else "KS"
    reason = f"{change.sentence}, {test} {_p(result.p_value)}"
    return replace(result, change=change.to_dict(), reason=reason)


def _p(p: float) -> str:
    """``p = 0.0014``, or ``p < 0.001`` below that."""
    return f"p = {p:.2g}" if p >= 0.001 else ("p < 0.001" if p > 0 else "p = 0")


def _signed(x: float, fmt: str) -> str:
    return f"{'+' if x >= 0 else '−'}{abs(x):{fmt}}"


def _reasons(
    drifted: list[MeasureResult], multivariate: MeasureResult | None, results: list[MeasureResult]
) -> list[str]:
    by_name = {r.name: r for r in results}
    reasons = [r.reason for r in drifted]
    centroid, pitch, band = by_name.get("centroid_hz"), by_name.get("pitch_hz"), by_name.get("low_band_db")
    pitch_moved = pitch is not None and pitch.drift
    shift = (band.change.get("shift") or {}) if band is not None else {}
    low, high = shift.get("low", math.nan), shift.get("high", math.nan)
    # A channel only when the whole interval lies beyond the threshold: a new voice moves it by a few dB.
    channel = band is not None and band.drift and (high <= -CHANNEL_SHIFT_DB or low >= CHANNEL_SHIFT_DB)
    if channel and band is not None:
        also = " and the measured pitch" if pitch_moved else ""
        reasons.append(
            f"the recording channel changed: energy below {CHANNEL_LOW_HZ:.0f} Hz "
            f"{_signed(band.effect, '.0f')} dB "
            f"(a band limit such as a telephone line), which moves the spectral centroid{also}; "
            "this is not by itself a sign of new speakers"
        )
    elif band is None and pitch_moved and centroid is not None and centroid.drift:
        reasons.append(
            "pitch moved together with the spectral centroid: the recording channel may have changed "
            "(a telephone band also shifts measured pitch), not necessarily the speakers"
        )
    if multivariate is not None and multivariate.drift:
        reasons.append(f"joint distribution of input measures changed (MMD {_p(multivariate.p_value)})")
    return reasons


def alarm_level(reports: Sequence[DriftReport], *, alarm_p: float = ALARM_P) -> str:
    """The standing level of a series of reports, oldest to newest.

    ``"alarm"`` when the newest two reports with a verdict both drifted, or the newest drifted with a
    smallest p-value under ``alarm_p`` (0.001), or the newest has concept drift (accuracy or WER);
    ``"warning"`` when the newest drifted otherwise; else ``"none"``. Reports without a verdict (too
    small) are skipped.
    """
    judged = [r for r in reports if r.level != "too_small"]
    if not judged:
        return "none"
    last = judged[-1]
    if last.concept is not None and last.concept.drift:
        return "alarm"
    if last.wer is not None and last.wer.drift:
        return "alarm"
    if not last.drift:
        return "none"
    if len(judged) >= 2 and judged[-2].drift:
        return "alarm"
    if math.isfinite(last.min_p) and last.min_p < alarm_p:
        return "alarm"
    return "warning"
