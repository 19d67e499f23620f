"""What changed between two samples of one measure, in words: call :func:`describe_change`.

- :func:`hodges_lehmann` -- the Hodges-Lehmann shift (the median of all batch-minus-reference
  differences) with its distribution-free confidence interval (Lehmann 1963; Hollander & Wolfe,
  *Nonparametric Statistical Methods*, section 4.3); large samples never form all the differences.
- :func:`describe_change` -- the shift, and when the shift does not explain a change, the change of
  spread, of a tail or of the share of clips at zero or at a bound (no silence at all, an estimate
  stuck at the end of its table), each with its own test, as one sentence a person can act on.

Why not the difference of medians: with a two-humped distribution (FSDD's loudness: one quiet speaker
and three loud ones) the median sits between the humps and jumps from one to the other with the luck
of the draw, so a -10 dB gain read anywhere from -6 to -18 dB. Every batch-reference pair votes in the
Hodges-Lehmann estimate, which recovers a pure shift whatever the shape. And a Kolmogorov-Smirnov
test fires on any change of shape: when the medians do not move, saying "median +0.02 Hz" names the
wrong thing, so the description then says which part of the distribution moved.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

__all__ = ["Change", "Shift", "describe_change", "hodges_lehmann"]

MAX_POINTS = 2000
"""Samples longer than this enter the pairwise differences as this many evenly spaced order
statistics: the shift and its interval move by far less than their own uncertainty."""

DIRECT_PAIRS = 1 << 20
"""Up to this many differences are formed and selected from directly."""

ATOM_SHARE = 0.05
"""Zeros (or values at a bound) holding at least this share of either sample are described as a
share of their own."""

DESCRIBE_ALPHA = 0.05
"""Level of each test behind a part of a description (spread, a tail, a share at a bound)."""

SECONDARY_ALPHA = 0.01
"""Level of the spread and tail tests when the shift already explains the change: a change of shape
is then said only on strong evidence (at 0.05 a pure shift was also called a spread change 5% of the
time)."""


@dataclass(frozen=True)
class Shift:
    """A Hodges-Lehmann shift (batch minus reference) and its confidence interval."""

    estimate: float
    low: float
    high: float
    confidence: float

    @property
    def moved(self) -> bool:
        """The interval excludes zero."""
        return bool(self.low > 0 or self.high < 0)


def _thin(sorted_values: np.ndarray, max_points: int) -> np.ndarray:
    n = sorted_values.size
    if n <= max_points:
        return sorted_values
    return sorted_values[((np.arange(max_points) + 0.5) * n / max_points).astype(int)]


def _difference_order_stats(r: np.ndarray, b: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """The ``ks``-th smallest (1-based) of the differences ``b_i - r_j`` (``r`` and ``b`` sorted):
    by selection among all of them when they are few, else by bisection on the count of differences
    at or below a value, snapped to a difference."""
    m = r.size
    if m * b.size <= DIRECT_PAIRS:
        diffs = np.subtract.outer(b, r).ravel()
        return np.asarray(np.partition(diffs, ks - 1)[ks - 1], dtype=np.float64)

    def count(d: np.ndarray) -> np.ndarray:  # #{b_i - r_j <= d} for each d
        idx = np.searchsorted(r, (b[:, None] - d[None, :]).ravel(), side="left")
        return (m - idx).reshape(b.size, d.size).sum(axis=0)

    lo = np.full(ks.size, b[0] - r[-1], dtype=np.float64)
    hi = np.full(ks.size, b[-1] - r[0], dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(np.concatenate([lo, hi])))))
    for _ in range(200):
        if np.all(hi - lo <= 1e-12 * scale):
            break
        mid = lo + (hi - lo) / 2
        enough = count(mid) >= ks
        hi = np.where(enough, mid, hi)
        lo = np.where(enough, lo, mid)
    # The answer is the largest difference at or below hi.
    idx = np.searchsorted(r, b[:, None] - hi[None, :], side="left")  # first r_j >= b_i - hi
    valid = idx < m
    diffs = np.where(valid, b[:, None] - r[np.minimum(idx, m - 1)], -np.inf)
    return np.asarray(diffs.max(axis=0), dtype=np.float64)


def _placements(sorted_values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Share of ``sorted_values`` below each ``x``, ties counting half."""
    below = np.searchsorted(sorted_values, x, side="left")
    at_or_below = np.searchsorted(sorted_values, x, side="right")
    return (below + at_or_below) / (2.0 * sorted_values.size)


def hodges_lehmann(
    reference: npt.ArrayLike,
    batch: npt.ArrayLike,
    *,
    confidence: float = 0.95,
    max_points: int = MAX_POINTS,
    interval: bool = True,
) -> Shift:
    """Hodges-Lehmann shift of ``batch`` against ``reference`` with a confidence interval (NaN
    bounds with ``interval=False``, which saves half the work).

    The estimate is the median of the ``m * n`` differences ``batch_i - reference_j``. The interval
    runs between the differences at shares ``1/2 -+ z se`` of all of them, ``z`` the two-sided normal
    quantile and ``se`` the standard error of the Mann-Whitney share ``P(batch - shift > reference)``
    estimated from placements (``se² = var(F_ref(b_i - shift)) / n + var(F_bat(r_j + shift)) / m``, the
    Brunner-Munzel variance): under a pure shift it equals the textbook ``(m + n + 1) / (12 mn)``
    (Lehmann 1963), and it stays right when the spreads differ, where the textbook interval is too
    narrow. Ties are allowed. Non-finite values are dropped; NaN without values on either side.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    r = np.sort(np.asarray(reference, dtype=np.float64).ravel())
    b = np.sort(np.asarray(batch, dtype=np.float64).ravel())
    r, b = r[np.isfinite(r)], b[np.isfinite(b)]
    m, n = r.size, b.size
    if m == 0 or n == 0:
        return Shift(math.nan, math.nan, math.nan, confidence)
    rt, bt = _thin(r, max_points), _thin(b, max_points)
    total = rt.size * bt.size
    mids = [(total + 1) // 2] * 2 if total % 2 else [total // 2, total // 2 + 1]
    mid1, mid2 = _difference_order_stats(rt, bt, np.array(mids, dtype=np.int64))
    estimate = float((mid1 + mid2) / 2)
    if not interval:
        return Shift(estimate, math.nan, math.nan, confidence)
    pooled = (m + n + 1) / (12.0 * m * n)
    if m > 1 and n > 1:
        var_b = float(np.var(_placements(r, b - estimate), ddof=1))
        var_r = float(np.var(_placements(b, r + estimate), ddof=1))
        se2 = max(var_b / n + var_r / m, pooled if var_b + var_r == 0 else 0.0)
    else:
        se2 = pooled
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    share = max(0.0, 0.5 - z * math.sqrt(se2))
    k_low = max(1, min(total, math.floor(share * total + 1e-9)))
    low, high = _difference_order_stats(rt, bt, np.array([k_low, total + 1 - k_low], dtype=np.int64))
    return Shift(estimate, float(low), float(high), confidence)


@dataclass(frozen=True)
class Change:
    """How a batch's values of one measure differ from the reference's.

    - ``shift``: the Hodges-Lehmann shift of the values away from the bounds;
    - ``atoms``: the shares at a bound, or of zeros when there are no bounds (``value``,
      ``reference`` and ``batch`` shares, Fisher's ``p``), when either sample holds 5% there;
    - ``spread``: the shares outside the reference's interquartile range once the shift is removed
      (``direction`` wider or narrower, ``p``);
    - ``tails``: the shares beyond the reference's 5th and 95th percentiles once the shift is removed;
    - ``reference``, ``batch``: the 5th, 25th, 50th, 75th and 95th percentiles and the IQR;
    - ``sentence``: the parts whose tests pass, after the measure's label.
    """

    shift: Shift
    reference: dict[str, float]
    batch: dict[str, float]
    atoms: list[dict[str, Any]] = field(default_factory=list)
    spread: dict[str, Any] = field(default_factory=dict)
    tails: dict[str, dict[str, float]] = field(default_factory=dict)
    sentence: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shift"]["moved"] = self.shift.moved
        return d


def _quantiles(x: np.ndarray) -> dict[str, float]:
    if x.size == 0:
        return {}
    p5, p25, p50, p75, p95 = np.percentile(x, [5, 25, 50, 75, 95])
    return {
        "p5": float(p5),
        "p25": float(p25),
        "p50": float(p50),
        "p75": float(p75),
        "p95": float(p95),
        "iqr": float(p75 - p25),
    }


def _fisher(k_ref: int, n_ref: int, k_bat: int, n_bat: int) -> float:
    table = np.array([[k_ref, n_ref - k_ref], [k_bat, n_bat - k_bat]])
    if table[:, 0].sum() == 0 or table[:, 1].sum() == 0:
        return 1.0
    return float(stats.fisher_exact(table).pvalue)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _signed(x: float, decimals: int) -> str:
    text = f"{abs(x):.{decimals}f}"
    if float(text) == 0:
        return text
    return ("+" if x > 0 else "−") + text


def _plain(x: float, decimals: int) -> str:
    text = f"{x:.{decimals}f}"
    return text.replace("-", "−") if float(text) != 0 else f"{0:.{decimals}f}"


def describe_change(
    reference: npt.ArrayLike,
    batch: npt.ArrayLike,
    *,
    label: str,
    unit: str = "",
    decimals: int = 1,
    bounds: tuple[float, float] | None = None,
    bound_names: tuple[str, str] = ("below the table", "at the table's top"),
    scale: float = 1.0,
    confidence: float = 0.95,
) -> Change:
    """Describe how ``batch`` differs from ``reference`` (two samples of one measure).

    Parameters
    ----------
    reference, batch : array-like
        Values; non-finite ones are dropped.
    label, unit, decimals
        How the measure is named and printed ("Loudness (RMS)", "dB", 1).
    bounds : (low, high), optional
        Values at or beyond these are censored (an estimate stuck at the end of its table): they are
        described as shares only, with ``bound_names`` saying what they mean. Without bounds, exact
        zeros are described as a share of their own ("none in 10% → 45% of clips") when either
        sample holds at least 5% of its values there (clips with no silence at all, no clipping).
    scale : float
        Values are multiplied by this for printing (100 for a fraction shown in points).
    confidence : float
        Of the shift's interval.

    Returns
    -------
    Change
        With ``sentence`` such as "Loudness (RMS) −10.2 dB (95% CI −11.0 to −9.4)" or
        "Pitch (median F0) spread wider (IQR 38 → 61 Hz), median unchanged".
    """
    r = np.asarray(reference, dtype=np.float64).ravel()
    b = np.asarray(batch, dtype=np.float64).ravel()
    r, b = r[np.isfinite(r)] * scale, b[np.isfinite(b)] * scale
    u = unit if unit.startswith("%") else f" {unit}" if unit else ""

    def fmt(x: float) -> str:
        return _plain(x, decimals)

    atoms: list[dict[str, Any]] = []
    inside_r, inside_b = r, b
    if r.size and b.size:
        if bounds is not None:
            lo, hi = bounds[0] * scale, bounds[1] * scale
            sides = [(lo, r <= lo, b <= lo, bound_names[0]), (hi, r >= hi, b >= hi, bound_names[1])]
        else:
            # Zero is the one value a continuous measure piles up on (no silence, no clipping).
            sides = [(0.0, r == 0, b == 0, "none")]
        keep_r, keep_b = np.ones(r.size, bool), np.ones(b.size, bool)
        for value, at_r, at_b, name in sides:
            share_r, share_b = float(at_r.mean()), float(at_b.mean())
            if bounds is None and max(share_r, share_b) < ATOM_SHARE:
                continue
            if bounds is not None and not (at_r.any() or at_b.any()):
                continue
            p = _fisher(int(at_r.sum()), r.size, int(at_b.sum()), b.size)
            atoms.append({"value": value, "name": name, "reference": share_r, "batch": share_b, "p": p})
            keep_r &= ~at_r
            keep_b &= ~at_b
        inside_r, inside_b = r[keep_r], b[keep_b]

    shift = hodges_lehmann(inside_r, inside_b, confidence=confidence)
    ref_q, bat_q = _quantiles(inside_r), _quantiles(inside_b)
    spread: dict[str, Any] = {}
    tails: dict[str, dict[str, float]] = {}
    if inside_r.size >= 4 and inside_b.size >= 4 and math.isfinite(shift.estimate):
        aligned = inside_b - (shift.estimate if shift.moved else 0.0)
        p25, p75, p5, p95 = ref_q["p25"], ref_q["p75"], ref_q["p5"], ref_q["p95"]

        def share_test(inside_ref: Callable[[np.ndarray], np.ndarray]) -> tuple[float, float, float]:
            k_r, k_b = int(inside_ref(inside_r).sum()), int(inside_ref(aligned).sum())
            return k_r / inside_r.size, k_b / aligned.size, _fisher(k_r, inside_r.size, k_b, aligned.size)

        out_r, out_b, p_out = share_test(lambda x: (x < p25) | (x > p75))
        if ref_q["iqr"] > 0:
            spread = {
                "direction": "wider" if out_b > out_r else "narrower",
                "reference_outside_iqr": out_r,
                "batch_outside_iqr": out_b,
                "p": p_out,
            }
        for side, test in (("upper", lambda x: x > p95), ("lower", lambda x: x < p5)):
            s_r, s_b, p_t = share_test(test)
            tails[side] = {"reference": s_r, "batch": s_b, "p": p_t}

    parts: list[str] = []
    for atom in atoms:
        if atom["p"] < DESCRIBE_ALPHA:
            parts.append(f"{atom['name']} in {_pct(atom['reference'])} → {_pct(atom['batch'])} of clips")
    # Which values the shift is of: those within the table when values are censored, the non-zero
    # ones when the share of zeros is said.
    said = any(a["p"] < DESCRIBE_ALPHA for a in atoms)
    others = " within the table" if bounds is not None and atoms else " of the others" if said else ""
    level = f"{100 * confidence:g}%"
    described_shape = False
    if shift.moved:
        interval = f"{level} CI {fmt(shift.low)} to {fmt(shift.high)}"
        parts.append(f"{_signed(shift.estimate, decimals)}{u}{others} ({interval})")
    shape_alpha = SECONDARY_ALPHA if shift.moved else DESCRIBE_ALPHA
    if spread and spread["p"] < shape_alpha:
        parts.append(f"spread {spread['direction']} (IQR {fmt(ref_q['iqr'])} → {fmt(bat_q['iqr'])}{u})")
        described_shape = True
    else:
        for side, name, q in (("upper", "95th", "p95"), ("lower", "5th", "p5")):
            t = tails.get(side)
            if t and t["p"] < shape_alpha:
                heavier = "heavier" if t["batch"] > t["reference"] else "lighter"
                where = "above" if side == "upper" else "below"
                parts.append(
                    f"{side} tail {heavier} ({_pct(t['batch'])} of clips {where} the reference's {name} "
                    f"percentile of {fmt(ref_q[q])}{u}, against {_pct(t['reference'])})"
                )
                described_shape = True
    if not parts and ref_q and bat_q:
        parts.append(
            f"shape changed (5th/50th/95th percentiles {fmt(ref_q['p5'])}/{fmt(ref_q['p50'])}/"
            f"{fmt(ref_q['p95'])} → {fmt(bat_q['p5'])}/{fmt(bat_q['p50'])}/{fmt(bat_q['p95'])}{u})"
        )
        described_shape = True
    if (described_shape or said) and not shift.moved:
        parts.append(f"median{others} unchanged")
    sentence = f"{label} {'; '.join(parts)}".replace("; median", ", median") if parts else label
    return Change(shift, ref_q, bat_q, atoms, spread, tails, sentence)
