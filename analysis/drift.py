"""Drift of a batch of production clips against a reference: call :func:`drift_report`.

Which function to call:

- :func:`clip_measures` -- the per-clip measures that the import does not already store: median pitch,
  spectral centroid, the energy below 300 Hz, a speaking-rate proxy and a reference-free SNR (WADA,
  stored as the ``snr_db`` measure; the import's own SNR is a percentile proxy).
- :func:`drift_report` -- one batch against a reference, both one row per clip with any of the
  :data:`MEASURES` columns; returns a :class:`DriftReport` with a verdict, a test and an effect size in
  real units per measure, and reasons in plain words.
- :func:`concept_drift` -- the batch's labelled sample against the reference's own correctness
  (:func:`concept_test` on counts, :func:`concept_reason` in words).
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

Every test reports an effect in the measure's own unit (difference of medians in dB, Hz, s, clips per
second; difference of shares in percentage points; total-variation distance of the class mix), and a
batch of 1,000 clips or more drifts on a measure only when that effect also reaches the measure's
minimum effect (:attr:`MeasureSpec.min_effect`, overridable per project), because at that size a test
finds differences that nobody would act on. Batches under ``min_batch`` (50) clips get no verdict.
Latency is summarised but never tested: a slower server is not a change in the data.

Concept drift is a separate test, once the batch has ``min_labels`` (30) labelled clips: Fisher's exact
test of the batch's correct/incorrect counts against the reference's own out-of-sample correctness,
never against the reference accuracy as a fixed number (that ignores the reference's own sampling
error).

One drifted batch is a warning. :func:`alarm_level` raises an alarm on two drifted batches in a row, on
a batch whose smallest p-value is below 0.001, or on concept drift.

A telephone channel shifts the pitch that YIN measures (the fundamental is filtered out below 300 Hz).
The energy below 300 Hz tells a channel from a voice: a band limit removes it (-15 dB on FSDD), a
pitch shift of two semitones barely moves it (about 1 dB). When it drifts by 6 dB or more the reasons
say the channel changed, and that the pitch and centroid moves follow from it; without that measure,
pitch moving together with the centroid is reported as a possible channel change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import signal, stats

from analysis.features import next_pow2, yin

__all__ = [
    "MEASURES",
    "DriftReport",
    "MeasureResult",
    "MeasureSpec",
    "alarm_level",
    "clip_measures",
    "concept_drift",
    "concept_reason",
    "concept_test",
    "drift_report",
    "mmd_test",
    "wada_snr",
]

Family = Literal["input", "output", "software"]
Kind = Literal["continuous", "categorical", "rate"]


@dataclass(frozen=True)
class MeasureSpec:
    """What a measure is: its family, the kind of test it gets, its unit and a label for people.

    ``min_effect`` is the smallest effect (in ``unit``, or percentage points for rates, or
    total-variation distance for categorical measures) that counts as drift in batches of 1,000 clips
    or more; ``tested`` is False for measures that are summarised but never tested (latency).
    """

    name: str
    family: Family
    kind: Kind
    unit: str
    label: str
    min_effect: float = 0.0
    tested: bool = True


def _spec(*args: Any, **kwargs: Any) -> tuple[str, MeasureSpec]:
    spec = MeasureSpec(*args, **kwargs)
    return spec.name, spec


MEASURES: Mapping[str, MeasureSpec] = dict(
    [
        _spec("duration_s", "input", "continuous", "s", "Duration", 0.1),
        _spec("rms_dbfs", "input", "continuous", "dB", "Loudness (RMS)", 2.0),
        _spec("peak_dbfs", "input", "continuous", "dB", "Peak level", 2.0),
        _spec("leading_silence_ms", "input", "continuous", "ms", "Leading silence", 50.0),
        _spec("trailing_silence_ms", "input", "continuous", "ms", "Trailing silence", 50.0),
        _spec("clipped_fraction", "input", "continuous", "pp", "Clipped samples", 0.1),
        _spec("snr_db", "input", "continuous", "dB", "SNR (WADA)", 3.0),
        _spec("pitch_hz", "input", "continuous", "Hz", "Pitch (median F0)", 10.0),
        _spec("centroid_hz", "input", "continuous", "Hz", "Spectral centroid", 100.0),
        _spec("low_band_db", "input", "continuous", "dB", "Energy below 300 Hz", 3.0),
        _spec("speaking_rate", "input", "continuous", "nuclei/s", "Speaking rate", 0.3),
        _spec("predicted", "output", "categorical", "TV distance", "Predicted class", 0.05),
        _spec("confidence", "output", "continuous", "", "Confidence", 0.03),
        _spec("low_confidence", "output", "rate", "pp", "Low-confidence share", 3.0),
        _spec("empty", "output", "rate", "pp", "Empty outputs", 1.0),
        _spec("latency_ms", "software", "continuous", "ms", "Latency", 0.0, tested=False),
    ]
)
"""Every measure :func:`drift_report` knows, by column name."""

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
WADA_RANGE_DB = (-20.0, 100.0)
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


def _frames_rms(y: np.ndarray, frame: int, hop: int) -> np.ndarray:
    if len(y) < frame:
        y = np.pad(y, (0, frame - len(y)))
    frames = np.lib.stride_tricks.sliding_window_view(y, frame)[::hop]
    return np.sqrt(np.mean(frames * frames, axis=1))


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
        ``pitch_hz``: median YIN F0 (60-400 Hz) over frames within 25 dB of the loudest;
        ``centroid_hz``: centroid of the long-term power spectrum of those frames;
        ``low_band_db``: the share of that spectrum's energy below 300 Hz, in dB (a telephone line
        removes it: -15 dB on FSDD, where a pitch shift of two semitones moves it by about 1 dB);
        ``speaking_rate``: peaks of the smoothed energy envelope (syllable nuclei, at least 6 dB
        prominent and 100 ms apart) per second of non-silent audio;
        ``wada_snr_db``: :func:`wada_snr`, and ``wada_at_end`` (1.0 when it is stuck at its table's
        ends, else 0.0). Each is NaN when undefined (a silent or too short clip).
    """
    x = np.asarray(y, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    out = {"pitch_hz": math.nan, "centroid_hz": math.nan, "low_band_db": math.nan, "speaking_rate": math.nan}
    snr, at_end = wada_snr(x)
    out["wada_snr_db"] = snr
    out["wada_at_end"] = float(at_end) if not math.isnan(snr) else math.nan
    if x.size == 0 or not np.any(x):
        return out

    # Loud frames: within 25 dB of the clip's loudest 32 ms frame, 10 ms apart.
    frame, hop = next_pow2(0.032 * sr), max(1, round(0.010 * sr))
    rms = _frames_rms(x, frame, hop)
    loud = rms >= rms.max() * 10 ** (-25 / 20)

    # Spectral centroid of the power spectrum summed over loud frames.
    padded = x if len(x) >= frame else np.pad(x, (0, frame - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame)[::hop][loud]
    power = np.abs(np.fft.rfft(frames * np.hanning(frame), axis=1)) ** 2
    spectrum = power.sum(axis=0)
    freqs = np.fft.rfftfreq(frame, 1 / sr)
    if spectrum.sum() > 0:
        out["centroid_hz"] = float((freqs * spectrum).sum() / spectrum.sum())
        low = spectrum[freqs < CHANNEL_LOW_HZ].sum()
        out["low_band_db"] = float(10 * np.log10(max(low / spectrum.sum(), 1e-12)))

    # Median F0 over loud frames; two periods of 60 Hz fit in the YIN frame.
    fmin, fmax = 60.0, min(400.0, sr / 4)
    pitch_frame = next_pow2(2 * math.ceil(sr / fmin) + 2)
    f0 = yin(
        np.pad(x, (0, max(0, pitch_frame - len(x)))),
        fmin=fmin,
        fmax=fmax,
        sr=sr,
        frame_length=pitch_frame,
        hop_length=hop,
    )
    prms = _frames_rms(np.pad(x, (pitch_frame // 2, pitch_frame // 2)), pitch_frame, hop)[: len(f0)]
    voiced = prms >= prms.max() * 10 ** (-25 / 20)
    if voiced.any():
        out["pitch_hz"] = float(np.median(f0[voiced]))

    # Syllable nuclei: peaks of the 10 ms energy envelope smoothed over ~50 ms.
    # The envelope is padded with silence: trimmed clips start and end inside a syllable.
    env_db = 20 * np.log10(np.maximum(rms, 1e-10))
    env_db = np.pad(env_db, 5, constant_values=env_db.max() - 60.0)
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
    """One measure's test: the statistic, its p-value against the threshold, and the effect size."""

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

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self))


@dataclass(frozen=True)
class DriftReport:
    """A batch against a reference.

    ``level`` is ``"warning"`` when anything drifted, ``"too_small"`` when the batch is under the
    minimum size (then ``drift`` is False and ``reasons`` says so), else ``"none"``. ``measures`` lists
    drifted measures first, then by p-value. ``concept`` is the concept-drift test when the frames carry
    a ``correct`` column with enough labels.
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


def _continuous(spec: MeasureSpec, ref: np.ndarray, bat: np.ndarray) -> tuple[str, float, float, float]:
    """KS test; effect = difference of medians (of means for the clipped fraction, in percent)."""
    res = stats.ks_2samp(ref, bat, method="auto")
    if spec.name == "clipped_fraction":
        effect = 100.0 * (bat.mean() - ref.mean())
    else:
        effect = float(np.median(bat) - np.median(ref))
    return "Kolmogorov-Smirnov", float(res.statistic), float(res.pvalue), float(effect)


def _rate_values(frame: pd.DataFrame, name: str) -> np.ndarray:
    col = frame[name]
    if col.dtype == bool:
        return col.to_numpy(dtype=np.float64)
    values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
    return values[np.isfinite(values)]


def _rate(ref: np.ndarray, bat: np.ndarray) -> tuple[str, float, float, float]:
    """Fisher's exact test on the 2x2 table of shares; effect in percentage points."""
    a, b = round(float(ref.sum())), round(float(bat.sum()))
    table = np.array([[a, len(ref) - a], [b, len(bat) - b]])
    if table[:, 0].sum() == 0 or table[:, 1].sum() == 0:
        p, stat = 1.0, 1.0
    else:
        stat, p = stats.fisher_exact(table)
    effect = 100.0 * (b / max(1, len(bat)) - a / max(1, len(ref)))
    return "Fisher exact", float(stat), float(p), float(effect)


def _categorical(ref: pd.Series, bat: pd.Series) -> tuple[str, float, float, float, dict, dict]:
    """Chi-squared homogeneity test of the class mix; effect = total-variation distance."""
    ref_counts = ref.astype(str).value_counts()
    bat_counts = bat.astype(str).value_counts()
    classes = sorted(set(ref_counts.index) | set(bat_counts.index))
    table = np.array(
        [[ref_counts.get(c, 0) for c in classes], [bat_counts.get(c, 0) for c in classes]], dtype=float
    )
    ref_share, bat_share = table[0] / table[0].sum(), table[1] / table[1].sum()
    effect = 0.5 * float(np.abs(ref_share - bat_share).sum())
    if len(classes) < 2:
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
    iu = np.triu_indices(len(pooled), k=1)
    med = float(np.median(d2[iu]))
    if med <= 0:
        med = float(np.mean(d2[iu])) or 1.0
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
            ss = np.array([kernel[c][:, c].sum() for c in chosen])
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
    null = mmd_of(np.argsort(rng.random((n_permutations, n)), axis=1)[:, :m])
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


def drift_report(
    reference: pd.DataFrame,
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
    reference, batch : DataFrame
        One row per clip, with any of the :data:`MEASURES` columns (others are ignored; a measure
        missing from either frame is skipped). A ``correct`` column (bool, NaN when unlabelled) adds
        a concept-drift test.
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
        Seeds the MMD subsampling and permutations.
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
    if len(reference) == 0:
        raise ValueError("the reference is empty")
    effects = {name: spec.min_effect for name, spec in MEASURES.items()} | {"mmd": 0.01}
    effects |= dict(min_effect or {})
    n_ref, n_bat = len(reference), len(batch)
    large = n_bat >= LARGE_BATCH
    present = [name for name in MEASURES if name in reference.columns and name in batch.columns]
    input_cont = [n for n in present if MEASURES[n].family == "input" and MEASURES[n].tested]
    outputs = [n for n in present if MEASURES[n].family == "output" and MEASURES[n].tested]
    mmd_cols = [n for n in input_cont if MEASURES[n].kind == "continuous"]
    groups = [g for g in (input_cont, mmd_cols if len(mmd_cols) >= 2 else [], outputs) if g]
    group_alpha = alpha / max(1, len(groups))

    results: list[MeasureResult] = []
    for name in present:
        spec = MEASURES[name]
        if spec.kind == "categorical":
            test, stat, p, effect, ref_s, bat_s = _categorical(reference[name].dropna(), batch[name].dropna())
        elif spec.kind == "rate":
            ref_v, bat_v = _rate_values(reference, name), _rate_values(batch, name)
            test, stat, p, effect = _rate(ref_v, bat_v)
            ref_s = {"n": int(ref_v.size), "share": float(ref_v.mean()) if ref_v.size else math.nan}
            bat_s = {"n": int(bat_v.size), "share": float(bat_v.mean()) if bat_v.size else math.nan}
        else:
            ref_v, bat_v = _numeric(reference, name), _numeric(batch, name)
            ref_s, bat_s = _summary(ref_v), _summary(bat_v)
            if name == "snr_db":  # WADA estimates pinned to its table's ends are bounds, not values
                for values, summary in ((ref_v, ref_s), (bat_v, bat_s)):
                    ends = (values <= WADA_RANGE_DB[0]) | (values >= WADA_RANGE_DB[1])
                    summary["share_at_table_end"] = float(ends.mean()) if values.size else math.nan
            if not spec.tested or ref_v.size < 2 or bat_v.size < 2:
                test, stat, p = ("not tested" if not spec.tested else "too few values"), math.nan, math.nan
                effect = float(np.median(bat_v) - np.median(ref_v)) if ref_v.size and bat_v.size else math.nan
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
        results.append(
            MeasureResult(name, spec.family, test, stat, p, threshold, drift, effect, spec.unit, ref_s, bat_s)
        )

    multivariate = None
    if len(mmd_cols) >= 2 and n_bat >= 2:
        ref_x, bat_x = _standardise(
            reference[mmd_cols].apply(pd.to_numeric, errors="coerce").to_numpy(float),
            batch[mmd_cols].apply(pd.to_numeric, errors="coerce").to_numpy(float),
        )
        mmd2, p, bandwidth = mmd_test(ref_x, bat_x, n_permutations=n_permutations, random_state=random_state)
        drift = bool(n_bat >= min_batch and p < group_alpha and (not large or mmd2 >= effects["mmd"]))
        multivariate = MeasureResult(
            "mmd", "input", f"MMD, {n_permutations} permutations", mmd2, p, group_alpha, drift, mmd2,
            "MMD² (reference-standardised)", {"n": n_ref, "columns": len(mmd_cols)},
            {"n": n_bat, "bandwidth": bandwidth},
        )  # fmt: skip

    concept = None
    if "correct" in reference.columns and "correct" in batch.columns:
        concept = concept_drift(reference["correct"], batch["correct"], alpha=alpha, min_labels=min_labels)

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
            n_ref, n_bat, min_p, concept,
        )  # fmt: skip
    reasons = _reasons(drifted, multivariate, results)
    if concept is not None and concept.drift:
        reasons.append(str(concept_reason(concept, min_labels=min_labels, sample=sample)))
    return DriftReport(
        any_drift, "warning" if any_drift else "none", results, multivariate, reasons, n_ref, n_bat,
        min_p, concept,
    )  # fmt: skip


def _p(p: float) -> str:
    """``p = 0.0014``, or ``p < 0.001`` below that."""
    return f"p = {p:.2g}" if p >= 0.001 else ("p < 0.001" if p > 0 else "p = 0")


def _signed(x: float, fmt: str) -> str:
    return f"{'+' if x >= 0 else '−'}{abs(x):{fmt}}"


def _reasons(
    drifted: list[MeasureResult], multivariate: MeasureResult | None, results: list[MeasureResult]
) -> list[str]:
    by_name = {r.name: r for r in results}
    reasons = []
    for r in drifted:
        spec = MEASURES[r.name]
        if spec.kind == "categorical":
            text = f"{spec.label} mix changed by {100 * r.effect:.0f}% of clips (χ² {_p(r.p_value)})"
        elif spec.kind == "rate":
            text = f"{spec.label} {_signed(r.effect, '.1f')} points (Fisher {_p(r.p_value)})"
        elif r.name == "clipped_fraction":
            text = f"{spec.label} {_signed(r.effect, '.2f')} points of samples (KS {_p(r.p_value)})"
        else:
            fmt = ".2f" if abs(r.effect) < 10 else ".0f"
            unit = f" {r.effect_unit}" if r.effect_unit else ""
            text = f"{spec.label} median {_signed(r.effect, fmt)}{unit} (KS {_p(r.p_value)})"
        reasons.append(text)
    centroid, pitch, band = by_name.get("centroid_hz"), by_name.get("pitch_hz"), by_name.get("low_band_db")
    pitch_moved = pitch is not None and pitch.drift
    if band is not None and band.drift and abs(band.effect) >= CHANNEL_SHIFT_DB:
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
    smallest p-value under ``alarm_p`` (0.001), or the newest has concept drift; ``"warning"`` when the
    newest drifted otherwise; else ``"none"``. Reports without a verdict (too small) are skipped.
    """
    judged = [r for r in reports if r.level != "too_small"]
    if not judged:
        return "none"
    last = judged[-1]
    if last.concept is not None and last.concept.drift:
        return "alarm"
    if not last.drift:
        return "none"
    if len(judged) >= 2 and judged[-2].drift:
        return "alarm"
    if math.isfinite(last.min_p) and last.min_p < alarm_p:
        return "alarm"
    return "warning"
