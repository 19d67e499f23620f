"""Data checks against the labeling conventions, and the signal fixes for what they find.

Call :func:`data_check_findings` with a clip table (as :func:`labeling.data.clips.clip_frame` returns it),
the convention's rules and, optionally, decoded-audio hashes (:func:`pcm_hash`) and per-clip features;
it returns one row per (check, clip). :func:`findings_summary` counts them per check. The fixes are
:func:`fit_silence` (trim or pad the edges to the margins) and :func:`normalize_loudness`.

Checks (``check`` column):

- ``leading_silence`` / ``trailing_silence``: outside the convention's ``silence_margin_ms`` min-max;
- ``loudness``: RMS level further than ``tolerance`` dB from the ``loudness_dbfs`` target;
- ``clipping``: more than ``max_clipped_fraction`` of samples at full scale;
- ``sample_rate``: not the project's majority rate;
- ``duration``: modified z-score of the duration above ``duration_z`` (Iglewicz and Hoaglin's
  ``0.6745 (x - median) / MAD``, robust to the outliers it looks for);
- ``exact_duplicate``: the same decoded samples as another clip (e.g. one WAV and one FLAC of a
  recording, which the byte hash cannot see);
- ``near_duplicate``: cosine similarity >= ``near_threshold`` of the standardised MFCC means without
  c0 (so a louder copy of a clip is still its duplicate).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from analysis.quality import audio_quality

DEFAULT_RULES: dict[str, Any] = {
    "silence_margin_ms": {"min": 50.0, "max": 500.0},
    "loudness_dbfs": {"target": -23.0, "tolerance": 6.0},
}
FINDING_COLUMNS = ("check", "clip_id", "value", "expected", "group")
CHECKS = (
    "leading_silence",
    "trailing_silence",
    "loudness",
    "clipping",
    "sample_rate",
    "duration",
    "exact_duplicate",
    "near_duplicate",
)


def pcm_hash(y: np.ndarray) -> str:
    """SHA-256 of the samples as 16-bit integers (mono): equal for equal audio in any container."""
    samples = np.asarray(y, dtype=np.float64)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    pcm = np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2")
    return hashlib.sha256(pcm.tobytes()).hexdigest()


def _rows(check: str, ids: pd.Series, values: pd.Series, expected: str, group: Any = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "check": check,
            "clip_id": ids.to_numpy(),
            "value": pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64),
            "expected": expected,
            "group": group if group is not None else pd.array([pd.NA] * len(ids), dtype="Int64"),
        }
    )


def modified_z(values: pd.Series) -> pd.Series:
    """Iglewicz-Hoaglin modified z-scores; with a MAD of 0, scaled by the mean absolute deviation instead."""
    x = pd.to_numeric(values, errors="coerce").astype(np.float64)
    median = x.median()
    mad = (x - median).abs().median()
    if np.isfinite(mad) and mad > 0:
        return 0.6745 * (x - median) / mad
    # More than half the values equal: the mean absolute deviation still sees the outliers.
    mean_ad = (x - median).abs().mean()
    if not np.isfinite(mean_ad) or mean_ad == 0:
        return pd.Series(0.0, index=x.index)
    return (x - median) / (1.253314 * mean_ad)


def near_duplicate_pairs(
    features: pd.DataFrame, *, threshold: float = 0.995, block: int = 2048
) -> pd.DataFrame:
    """Pairs of rows whose standardised MFCC means (c1 upwards) have cosine similarity >= ``threshold``.

    Parameters
    ----------
    features
        Indexed by clip id, with ``mfcc_mean_01`` … columns (as :func:`analysis.features.feature_frame`).

    Returns
    -------
    pandas.DataFrame
        ``clip_a, clip_b, similarity`` with ``clip_a < clip_b`` in index order.
    """
    cols = [c for c in features.columns if str(c).startswith("mfcc_mean_") and str(c) != "mfcc_mean_00"]
    if not cols or len(features) < 2:
        return pd.DataFrame(columns=["clip_a", "clip_b", "similarity"])
    x = features[cols].to_numpy(dtype=np.float64)
    x = np.nan_to_num(
        (x - np.nanmean(x, axis=0)) / np.where(np.nanstd(x, axis=0) > 0, np.nanstd(x, axis=0), 1.0)
    )
    norms = np.linalg.norm(x, axis=1)
    x = x / np.where(norms > 0, norms, 1.0)[:, None]
    ids = features.index.to_numpy()
    found = []
    # Blocks keep the similarity matrix small however many clips there are.
    for start in range(0, len(x), block):
        sim = x[start : start + block] @ x.T
        rows, cols_ = np.nonzero(sim >= threshold)
        keep = cols_ > rows + start
        for r, c in zip(rows[keep], cols_[keep], strict=True):
            found.append((ids[start + r], ids[c], float(sim[r, c])))
    return pd.DataFrame(found, columns=["clip_a", "clip_b", "similarity"])


def _groups_of_pairs(pairs: pd.DataFrame) -> dict[Any, int]:
    """Connected components of the pairs: clip id → group number (from 1, by smallest member)."""
    parent: dict[Any, Any] = {}

    def find(a: Any) -> Any:
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in zip(pairs["clip_a"], pairs["clip_b"], strict=True):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = sorted({find(a) for a in parent})
    number = {r: i for i, r in enumerate(roots, 1)}
    return {a: number[find(a)] for a in parent}


def data_check_findings(
    clips: pd.DataFrame,
    *,
    rules: Mapping[str, Any] | None = None,
    pcm_hashes: pd.Series | None = None,
    features: pd.DataFrame | None = None,
    max_clipped_fraction: float = 0.001,
    duration_z: float = 3.5,
    near_threshold: float = 0.995,
) -> pd.DataFrame:
    """Every finding of the checks, one row per (check, clip).

    Parameters
    ----------
    clips
        ``clip_id, duration_s, sample_rate, rms_dbfs, leading_silence_ms, trailing_silence_ms,
        clipped_fraction``; optional ``parent_clip_id`` (a clip made from another is not reported as
        a near duplicate of it, or of its siblings).
    rules
        A convention's rules (``silence_margin_ms``, ``loudness_dbfs``); missing parts fall back to
        :data:`DEFAULT_RULES`.
    pcm_hashes
        :func:`pcm_hash` per clip id, for exact duplicates (skipped when None).
    features
        Per-clip features indexed by clip id, for near duplicates (skipped when None).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`FINDING_COLUMNS`: ``check`` (one of :data:`CHECKS`), ``clip_id``, ``value``
        (the measurement; similarity for near duplicates), ``expected`` (text) and ``group`` (the
        duplicate group, else NA).
    """
    merged = {**DEFAULT_RULES, **{k: v for k, v in (rules or {}).items() if v is not None}}
    parts = []
    ids = clips["clip_id"]
    lo, hi = float(merged["silence_margin_ms"]["min"]), float(merged["silence_margin_ms"]["max"])
    for col, check in (
        ("leading_silence_ms", "leading_silence"),
        ("trailing_silence_ms", "trailing_silence"),
    ):
        v = pd.to_numeric(clips[col], errors="coerce")
        bad = (v < lo) | (v > hi)
        parts.append(_rows(check, ids[bad], v[bad], f"{lo:g}–{hi:g} ms"))
    target = float(merged["loudness_dbfs"]["target"])
    tol = float(merged["loudness_dbfs"].get("tolerance", 3.0))
    level = pd.to_numeric(clips["rms_dbfs"], errors="coerce")
    bad = (level - target).abs() > tol
    parts.append(_rows("loudness", ids[bad], level[bad], f"{target:g} ± {tol:g} dBFS"))
    clipped = pd.to_numeric(clips["clipped_fraction"], errors="coerce")
    bad = clipped > max_clipped_fraction
    parts.append(_rows("clipping", ids[bad], clipped[bad], f"≤ {max_clipped_fraction:g} of samples"))
    rates = pd.to_numeric(clips["sample_rate"], errors="coerce")
    if rates.notna().any():
        majority = int(rates.mode().min())
        bad = rates != majority
        parts.append(_rows("sample_rate", ids[bad], rates[bad], f"{majority} Hz (the project's majority)"))
    duration = pd.to_numeric(clips["duration_s"], errors="coerce")
    z = modified_z(duration)
    bad = z.abs() > duration_z
    median = duration.median()
    parts.append(
        _rows("duration", ids[bad], duration[bad], f"near the median {median:.2f} s (|z| ≤ {duration_z:g})")
    )
    if pcm_hashes is not None and len(pcm_hashes):
        hashes = pcm_hashes.reindex(ids.to_numpy())
        dupes = hashes[hashes.notna() & hashes.duplicated(keep=False)]
        group = dupes.map(
            {
                h: i
                for i, h in enumerate(sorted(dupes.unique(), key=lambda h: dupes[dupes == h].index.min()), 1)
            }
        )
        parts.append(
            _rows(
                "exact_duplicate",
                pd.Series(dupes.index),
                pd.Series(np.ones(len(dupes))),
                "unique decoded audio",
                pd.array(group.to_numpy(), dtype="Int64"),
            )
        )
    if features is not None and len(features) > 1:
        pairs = near_duplicate_pairs(
            features.reindex(ids.to_numpy()).dropna(how="all"), threshold=near_threshold
        )
        if "parent_clip_id" in clips.columns and len(pairs):
            # A derived clip (a fix or an augmented copy) resembles its original by design.
            parents = pd.to_numeric(clips["parent_clip_id"], errors="coerce")
            family = pd.Series(parents.fillna(ids).to_numpy(), index=ids.to_numpy())
            pairs = pairs[
                family.reindex(pairs["clip_a"]).to_numpy() != family.reindex(pairs["clip_b"]).to_numpy()
            ]
        if pcm_hashes is not None and len(pairs):
            same = (
                pcm_hashes.reindex(pairs["clip_a"]).to_numpy()
                == pcm_hashes.reindex(pairs["clip_b"]).to_numpy()
            )
            pairs = pairs[~same]  # exact duplicates are reported as such
        if len(pairs):
            groups = _groups_of_pairs(pairs)
            best = (
                pd.concat(
                    [
                        pairs[["clip_a", "similarity"]].set_axis(["clip_id", "s"], axis=1),
                        pairs[["clip_b", "similarity"]].set_axis(["clip_id", "s"], axis=1),
                    ]
                )
                .groupby("clip_id")["s"]
                .max()
            )
            parts.append(
                _rows(
                    "near_duplicate",
                    pd.Series(best.index),
                    best.reset_index(drop=True),
                    f"MFCC cosine similarity < {near_threshold:g}",
                    pd.array([groups[c] for c in best.index], dtype="Int64"),
                )
            )
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(
            {
                c: pd.Series(dtype=t)
                for c, t in zip(FINDING_COLUMNS, ("str", "int64", "float64", "str", "Int64"), strict=True)
            }
        )
    out = pd.concat(parts, ignore_index=True)
    order = {c: i for i, c in enumerate(CHECKS)}
    return out.sort_values(
        ["check", "clip_id"], key=lambda s: s.map(order) if s.name == "check" else s, ignore_index=True
    )


def findings_summary(findings: pd.DataFrame) -> pd.DataFrame:
    """``check, n_clips, clip_ids`` (list), one row per check of :data:`CHECKS` (zero rows included)."""
    grouped = findings.groupby("check")["clip_id"].agg(lambda s: sorted(set(s)))
    return pd.DataFrame(
        {
            "check": list(CHECKS),
            "n_clips": [len(grouped.get(c, [])) for c in CHECKS],
            "clip_ids": [list(grouped.get(c, [])) for c in CHECKS],
        }
    )


# --- fixes --------------------------------------------------------------------------------------------


def fit_silence(
    y: np.ndarray, sr: int, *, min_ms: float, max_ms: float
) -> tuple[np.ndarray, dict[str, float]]:
    """Trim or pad (with digital silence) each edge of ``y`` so its silence lies within ``min_ms``-``max_ms``.

    Silence is measured as :func:`analysis.quality.audio_quality` measures it, so the fixed clip passes
    the same check that flagged the original. Returns the new signal and ``{"leading_ms_before",
    "leading_ms_after", "trailing_ms_before", "trailing_ms_after"}``.
    """
    y = np.asarray(y, dtype=np.float64)
    q = audio_quality(y, sr)
    lead, trail = q.leading_silence_ms, q.trailing_silence_ms
    total_ms = 1000.0 * len(y) / sr
    if lead >= total_ms:  # all silence: nothing to align to
        return y.copy(), {
            "leading_ms_before": lead,
            "leading_ms_after": lead,
            "trailing_ms_before": trail,
            "trailing_ms_after": trail,
        }
    # Aim one 10 ms measuring frame inside the margins, so frame alignment cannot tip the fixed clip out.
    slack = min(10.0, (max_ms - min_ms) / 4)

    def fitted(ms: float) -> float:
        if ms < min_ms:
            return min_ms + slack
        return max_ms - slack if ms > max_ms else ms

    new_lead, new_trail = fitted(lead), fitted(trail)
    speech = y[round(lead * sr / 1000) : len(y) - round(trail * sr / 1000)]
    head = (
        y[round((lead - new_lead) * sr / 1000) : round(lead * sr / 1000)]
        if new_lead <= lead
        else np.concatenate([np.zeros(round((new_lead - lead) * sr / 1000)), y[: round(lead * sr / 1000)]])
    )
    end = len(y) - round(trail * sr / 1000)
    tail = (
        y[end : end + round(new_trail * sr / 1000)]
        if new_trail <= trail
        else np.concatenate([y[end:], np.zeros(round((new_trail - trail) * sr / 1000))])
    )
    out = np.concatenate([head, speech, tail])
    return out, {
        "leading_ms_before": lead,
        "leading_ms_after": new_lead,
        "trailing_ms_before": trail,
        "trailing_ms_after": new_trail,
    }


def normalize_loudness(
    y: np.ndarray, *, target_dbfs: float, peak_limit_dbfs: float = -1.0
) -> tuple[np.ndarray, dict[str, float]]:
    """Scale ``y`` to an RMS level of ``target_dbfs``, but never past a peak of ``peak_limit_dbfs``.

    Returns the new signal and ``{"rms_dbfs_before", "gain_db", "peak_limited"}``; a silent input is
    returned unchanged with gain 0.
    """
    y = np.asarray(y, dtype=np.float64)
    rms = float(np.sqrt(np.mean(np.square(y))))
    peak = float(np.max(np.abs(y), initial=0.0))
    if rms == 0:
        return y.copy(), {"rms_dbfs_before": -120.0, "gain_db": 0.0, "peak_limited": False}
    before = 20 * np.log10(rms)
    gain_db = target_dbfs - before
    limit = peak_limit_dbfs - 20 * np.log10(peak)
    limited = gain_db > limit
    gain_db = min(gain_db, limit)
    return y * 10 ** (gain_db / 20), {
        "rms_dbfs_before": float(before),
        "gain_db": float(gain_db),
        "peak_limited": bool(limited),
    }
