"""Slice discovery: a planted bad slice comes first, and every figure matches pandas on the same rows."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from analysis.discovery import discover_slices, slice_mask

FEATURES = ["noise", "accent", "device", "duration_s", "snr_db"]


def clips(n: int = 20000, *, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "noise": rng.choice(["none", "car", "people"], size=n),
            "accent": rng.choice(["us", "scottish", "indian", "irish"], size=n),
            "device": rng.choice(["phone", "laptop"], size=n),
            "duration_s": rng.uniform(0.3, 3.0, size=n),
            "snr_db": rng.normal(20, 5, size=n),
        }
    )


def planted(n: int = 20000, *, seed: int = 0) -> pd.DataFrame:
    frame = clips(n, seed=seed)
    rng = np.random.default_rng(seed + 100)
    bad = (frame["noise"] == "car") & (frame["accent"] == "scottish")
    frame["error"] = rng.random(n) < np.where(bad, 0.6, 0.05)
    return frame


def pandas_rows(frame: pd.DataFrame, predicates) -> pd.Series:
    """The slice's rows selected with plain pandas comparisons."""
    rows = pd.Series(True, index=frame.index)
    for column, op, value in predicates:
        if op == "==":
            rows &= frame[column] == value
        else:
            low, high = value
            rows &= (frame[column] >= low) & (frame[column] < high)
    return rows


def sliceline_score(rate: float, size: int, *, mean: float, total: int, alpha: float) -> float:
    return alpha * (rate / mean - 1) - (1 - alpha) * (total / size - 1)


def test_planted_error_prone_conjunction_is_found_first():
    frame = planted()
    found = discover_slices(frame, feature_cols=FEATURES)
    top = found.iloc[0]
    assert top["slice"] == "noise=car AND accent=scottish"
    assert top["order"] == 2
    rows = (frame["noise"] == "car") & (frame["accent"] == "scottish")
    assert top["n"] == rows.sum()
    assert top["error_rate"] == pytest.approx(frame.loc[rows, "error"].mean())
    assert top["lift"] == pytest.approx(frame.loc[rows, "error"].mean() / frame["error"].mean())
    assert list(found["score"]) == sorted(found["score"], reverse=True)


def test_every_reported_figure_matches_pandas_on_the_same_rows():
    frame = planted(8000, seed=3)
    total, mean = len(frame), frame["error"].mean()
    found = discover_slices(frame, feature_cols=FEATURES, max_order=3, drop_refinements=False, top_k=40)
    assert len(found) >= 20
    for _, row in found.iterrows():
        rows = pandas_rows(frame, row["predicates"])
        assert row["n"] == rows.sum()
        assert row["share"] == pytest.approx(rows.mean())
        assert row["error_rate"] == pytest.approx(frame.loc[rows, "error"].mean())
        expected = sliceline_score(row["error_rate"], row["n"], mean=mean, total=total, alpha=0.95)
        assert row["score"] == pytest.approx(expected)
        np.testing.assert_array_equal(slice_mask(frame, row["predicates"]), rows.to_numpy())
        assert row["order"] == len(row["predicates"]) == row["slice"].count(" AND ") + 1


def test_minimum_support_is_respected():
    frame = planted()
    found = discover_slices(
        frame, feature_cols=FEATURES, min_support=0.1, max_order=3, drop_refinements=False
    )
    assert (found["n"] >= 0.1 * len(frame)).all()
    assert "noise=car AND accent=scottish" not in set(found["slice"])  # only 8% of the clips
    by_size = discover_slices(frame, feature_cols=FEATURES, min_support=0.0, min_size=3000)
    assert (by_size["n"] >= 3000).all()
    assert len(by_size) > 0


def test_pruned_search_returns_the_same_top_slices_as_brute_force():
    frame = clips(3000, seed=7)[["noise", "accent", "device"]]
    rng = np.random.default_rng(8)
    risk = (
        0.1
        + 0.3 * (frame["device"] == "phone") * (frame["noise"] != "none")
        + 0.2 * (frame["accent"] == "irish")
    )
    frame["error"] = rng.random(len(frame)) * risk  # continuous, like a per-clip WER
    total, mean, alpha, sigma = len(frame), frame["error"].mean(), 0.9, 60
    scores = []
    for order in (1, 2):
        for cols in itertools.combinations(["noise", "accent", "device"], order):
            stats = frame.groupby(list(cols))["error"].agg(["size", "mean"])
            stats = stats[stats["size"] >= sigma]
            scores += [
                sliceline_score(m, s, mean=mean, total=total, alpha=alpha)
                for s, m in zip(stats["size"], stats["mean"], strict=True)
            ]
    expected = sorted((s for s in scores if s > 0), reverse=True)[:10]
    found = discover_slices(
        frame,
        feature_cols=["noise", "accent", "device"],
        min_support=sigma / total,
        alpha=alpha,
        top_k=10,
        drop_refinements=False,
    )
    np.testing.assert_allclose(found["score"], expected)


def test_numeric_measures_are_cut_at_quantiles():
    frame = clips(10000, seed=2)
    rng = np.random.default_rng(5)
    short = frame["duration_s"] < frame["duration_s"].quantile(0.25)
    frame["error"] = rng.random(len(frame)) < np.where(short, 0.4, 0.05)
    top = discover_slices(frame, feature_cols=FEATURES).iloc[0]
    ((column, op, (low, high)),) = top["predicates"]
    assert (column, op, low) == ("duration_s", "in", -math.inf)
    assert high == pytest.approx(np.quantile(frame["duration_s"], 0.25))
    assert top["slice"] == f"duration_s < {high:.4g}"


def test_refinements_of_a_better_slice_are_left_out_unless_asked_for():
    frame = planted()
    compact = discover_slices(frame, feature_cols=FEATURES, max_order=3)
    assert not any(s.startswith("noise=car AND accent=scottish AND") for s in compact["slice"])
    full = discover_slices(frame, feature_cols=FEATURES, max_order=3, drop_refinements=False)
    assert any(s.startswith("noise=car AND accent=scottish AND") for s in full["slice"])
    assert full.iloc[0]["slice"] == compact.iloc[0]["slice"]


def test_missing_errors_and_missing_values_are_left_out():
    frame = planted(5000, seed=4)
    frame["error"] = frame["error"].astype("float64")
    frame.loc[::10, "error"] = np.nan
    frame.loc[1::10, "accent"] = None
    found = discover_slices(frame, feature_cols=["noise", "accent"], drop_refinements=False)
    scored = frame.dropna(subset=["error"])
    for _, row in found.iterrows():
        rows = pandas_rows(scored, row["predicates"])
        assert row["n"] == rows.sum()
        assert row["error_rate"] == pytest.approx(scored.loc[rows, "error"].mean())
        assert row["share"] == pytest.approx(rows.sum() / len(scored))


def test_tags_and_booleans_become_predicates():
    frame = planted(6000, seed=6)
    frame["low_bandwidth"] = (frame["noise"] == "car").astype(int)
    found = discover_slices(frame, feature_cols=["low_bandwidth", "accent"])
    assert found.iloc[0]["slice"] == "low_bandwidth=1 AND accent=scottish"


def test_no_errors_means_no_slices():
    frame = clips(500).assign(error=False)
    found = discover_slices(frame, feature_cols=FEATURES)
    assert found.empty
    assert list(found.columns) == [
        "slice",
        "n",
        "share",
        "error_rate",
        "lift",
        "score",
        "order",
        "predicates",
    ]


def test_bad_parameters_are_refused():
    frame = planted(500)
    with pytest.raises(ValueError, match="alpha"):
        discover_slices(frame, feature_cols=FEATURES, alpha=0)
    with pytest.raises(ValueError, match="negative"):
        discover_slices(frame.assign(error=-1.0), feature_cols=FEATURES)
