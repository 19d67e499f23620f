"""Agreement metrics against published worked examples and independent libraries.

References: Krippendorff (2011) "Computing Krippendorff's Alpha-Reliability" (the 4 observers x 12 units
reliability data and the binary two-observer example), Fleiss (1971) as reproduced in Wikipedia's
"Fleiss' kappa" article, and the `krippendorff`, `statsmodels`, `scikit-learn`, `scipy` and `cleanlab`
packages.
"""

from __future__ import annotations

import itertools
import json
import math
from functools import partial

import krippendorff
import numpy as np
import pandas as pd
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from analysis.agreement import (
    LEVELS,
    agreement_by,
    agreement_report,
    annotator_table,
    bootstrap_ci,
    cohen_kappa_matrix,
    cohen_kappa_pairs,
    fleiss_kappa,
    human_level_performance,
    krippendorff_alpha,
    majority_consensus,
    per_class_agreement,
    percent_agreement,
    rater_confusion,
    weighted_consensus,
)

nan = np.nan

# Krippendorff (2011), section C: 4 observers x 12 units, values 1-5, missing data.
KRIPPENDORFF_2011 = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    ]
)
PUBLISHED_ALPHA = {"nominal": 0.743, "ordinal": 0.815, "interval": 0.849, "ratio": 0.797}

# Fleiss (1971) via Wikipedia: 10 subjects, 14 raters, 5 categories; n_ij raters put subject i in j.
FLEISS_1971 = np.array(
    [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
)


def to_long(reliability: np.ndarray, *, raters: list[str] | None = None) -> pd.DataFrame:
    """raters x units matrix with NaN for missing -> long annotations."""
    r, u = np.nonzero(~pd.isna(reliability))
    names = raters or [f"coder{i}" for i in range(reliability.shape[0])]
    return pd.DataFrame({"clip_id": u, "annotator": [names[i] for i in r], "label": reliability[r, u]})


def to_wide(df: pd.DataFrame) -> pd.DataFrame:
    """Long annotations -> items x annotators, NaN where an annotator did not rate an item."""
    return df.pivot_table(index="clip_id", columns="annotator", values="label", aggfunc="first")


def to_reliability(df: pd.DataFrame) -> np.ndarray:
    """Long annotations -> the raters x units matrix the krippendorff package takes."""
    return to_wide(df).T.to_numpy(dtype=float)


def from_counts(table: np.ndarray) -> pd.DataFrame:
    """Item x category counts -> long annotations (rater ids are arbitrary, as in Fleiss)."""
    rows = []
    for i, row in enumerate(table):
        labels = np.repeat(np.arange(1, table.shape[1] + 1), row)
        rows += [(i, f"r{j}", int(label)) for j, label in enumerate(labels)]
    return pd.DataFrame(rows, columns=["clip_id", "annotator", "label"])


def random_annotations(
    seed: int, *, n_items: int = 200, n_raters: int = 4, n_classes: int = 5, missing: float = 0.25
) -> pd.DataFrame:
    """Ratings that agree more than chance: each rater copies a latent label with probability 0.6."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, n_classes, n_items)
    copy = rng.random((n_raters, n_items)) < 0.6
    values = np.where(copy, truth, rng.integers(0, n_classes, (n_raters, n_items))).astype(float)
    values[rng.random(values.shape) < missing] = nan
    return to_long(values)


# ---------------------------------------------------------------------------------------- alpha


@pytest.mark.parametrize("level", LEVELS)
def test_alpha_reproduces_krippendorff_2011_worked_example(level):
    df = to_long(KRIPPENDORFF_2011)
    alpha = krippendorff_alpha(df, level=level)
    assert round(alpha, 3) == PUBLISHED_ALPHA[level]
    assert alpha == pytest.approx(
        krippendorff.alpha(KRIPPENDORFF_2011, level_of_measurement=level), abs=1e-12
    )


def test_alpha_reproduces_binary_two_observer_example():
    a = [0, 1, 0, 0, 0, 0, 0, 0, 1, 0]
    b = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    alpha = krippendorff_alpha(to_long(np.array([a, b], dtype=float)))
    assert round(alpha, 3) == 0.095


def test_coincidence_matrix_matches_krippendorff_2011_table():
    o = rater_confusion(to_long(KRIPPENDORFF_2011), weighting="coincidence")
    third, four_thirds = 1 / 3, 4 / 3
    published = np.array(
        [
            [7, four_thirds, third, third, 0],
            [four_thirds, 10, four_thirds, third, 0],
            [third, four_thirds, 8, third, 0],
            [third, third, third, 4, 0],
            [0, 0, 0, 0, 3],
        ]
    )
    np.testing.assert_allclose(o.to_numpy(), published, atol=1e-12)
    assert o.sum(axis=1).tolist() == pytest.approx([9, 13, 10, 5, 3])


def test_ordinal_alpha_on_words_follows_the_categorical_order():
    words = np.array(["very low", "low", "mid", "high", "very high"], dtype=object)
    coded = np.where(
        np.isnan(KRIPPENDORFF_2011), None, words[np.nan_to_num(KRIPPENDORFF_2011).astype(int) - 1]
    )
    df = to_long(coded)
    df["label"] = pd.Categorical(df["label"], categories=list(words), ordered=True)
    assert round(krippendorff_alpha(df, level="ordinal"), 3) == 0.815
    assert round(krippendorff_alpha(df, level="nominal"), 3) == 0.743
    with pytest.raises(ValueError, match="ordered Categorical"):
        krippendorff_alpha(df.assign(label=df["label"].astype(str)), level="ordinal")
    with pytest.raises(ValueError, match="interval agreement needs numbers"):
        krippendorff_alpha(df.assign(label=df["label"].astype(str)), level="interval")


def krippendorff_or_nan(reliability: np.ndarray, level: str) -> float:
    with np.errstate(all="ignore"):
        try:
            return float(krippendorff.alpha(reliability, level_of_measurement=level))
        except ValueError:  # the package refuses data without two values or a pairable unit
            return nan


@settings(max_examples=80, deadline=None)
@given(
    values=hnp.arrays(
        np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=12), elements=st.integers(0, 5)
    ),
    level=st.sampled_from(LEVELS),
    data=st.data(),
)
def test_alpha_equals_krippendorff_package_on_random_data(values, level, data):
    missing = data.draw(hnp.arrays(np.bool_, values.shape))
    reliability = np.where(missing, nan, values)
    if np.isnan(reliability).all():
        return
    expected = krippendorff_or_nan(reliability, level)
    ours = krippendorff_alpha(to_long(reliability), level=level)
    if math.isnan(expected):
        assert math.isnan(ours)
    else:
        assert ours == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("level", LEVELS)
def test_alpha_equals_krippendorff_package_on_larger_data_with_missing_ratings(level):
    df = random_annotations(7, n_items=3000, n_raters=5, n_classes=8, missing=0.3)
    df["label"] = df["label"] + 1  # ratio data are positive
    expected = krippendorff.alpha(to_reliability(df), level_of_measurement=level)
    assert krippendorff_alpha(df, level=level) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    ("n_raters", "n_classes"),
    [(3, 4), (6, 10), (14, 20)],
    ids=["few-patterns", "many-patterns", "dense-counts"],
)
def test_alpha_is_exact_however_items_are_grouped_internally(n_raters, n_classes):
    df = random_annotations(21, n_items=400, n_raters=n_raters, n_classes=n_classes, missing=0.3)
    df["label"] = df["label"] + 1
    reliability = to_reliability(df)
    for level in LEVELS:
        expected = krippendorff.alpha(reliability, level_of_measurement=level)
        assert krippendorff_alpha(df, level=level) == pytest.approx(expected, abs=1e-9)


def test_alpha_does_not_depend_on_how_clips_are_identified():
    df = to_long(KRIPPENDORFF_2011)
    expected = krippendorff_alpha(df)
    as_text = df.assign(clip_id="clip-" + df["clip_id"].astype(str))
    sparse = df.assign(clip_id=df["clip_id"] * 10**12 - 5)
    assert krippendorff_alpha(as_text) == pytest.approx(expected, abs=1e-15)
    assert krippendorff_alpha(sparse) == pytest.approx(expected, abs=1e-15)
    assert agreement_report(sparse, n_boot=0).n_items == 12


def test_missing_values_are_missing_ratings_and_lone_ratings_drop_out():
    df = to_long(KRIPPENDORFF_2011)
    with_gaps = pd.concat(
        [df, pd.DataFrame({"clip_id": [0, 20], "annotator": ["coder2", "coder0"], "label": [nan, 4.0]})]
    )
    assert krippendorff_alpha(with_gaps) == pytest.approx(krippendorff_alpha(df), abs=1e-15)


def test_alpha_is_nan_when_nothing_is_pairable_or_nothing_varies():
    single = pd.DataFrame({"clip_id": [1, 2], "annotator": ["a", "b"], "label": ["x", "y"]})
    same = pd.DataFrame({"clip_id": [1, 1, 2, 2], "annotator": ["a", "b", "a", "b"], "label": ["x"] * 4})
    assert math.isnan(krippendorff_alpha(single))
    assert math.isnan(krippendorff_alpha(same))


def test_bad_input_gets_a_clear_message():
    df = to_long(KRIPPENDORFF_2011)
    with pytest.raises(ValueError, match=r"need the column\(s\) \['rating'\]"):
        krippendorff_alpha(df, value="rating")
    with pytest.raises(ValueError, match="level must be one of"):
        krippendorff_alpha(df, level="cardinal")
    with pytest.raises(ValueError, match="more than one rating"):
        cohen_kappa_pairs(pd.concat([df, df.head(1)]))


# ---------------------------------------------------------------------------------------- kappas


def test_fleiss_kappa_reproduces_the_1971_worked_example():
    kappa = fleiss_kappa(from_counts(FLEISS_1971))
    assert round(kappa, 3) == 0.210
    assert kappa == pytest.approx(sm_fleiss_kappa(FLEISS_1971), abs=1e-12)


def test_fleiss_kappa_equals_statsmodels_on_random_complete_data():
    df = random_annotations(3, n_items=150, n_raters=6, n_classes=4, missing=0.0)
    table = pd.crosstab(df["clip_id"], df["label"]).to_numpy()
    assert fleiss_kappa(df) == pytest.approx(sm_fleiss_kappa(table), abs=1e-12)


def test_fleiss_kappa_refuses_items_with_different_numbers_of_ratings():
    with pytest.raises(ValueError, match="same number of ratings"):
        fleiss_kappa(to_long(KRIPPENDORFF_2011))


def test_cohen_kappa_of_every_pair_equals_sklearn_on_shared_items():
    df = random_annotations(11, n_items=120, n_raters=4, missing=0.3)
    df["label"] = df["label"].map(lambda v: f"class {int(v)}")
    pairs = cohen_kappa_pairs(df)
    wide = to_wide(df)
    assert len(pairs) == 6
    for row in pairs.itertuples():
        shared = wide[[row.rater_a, row.rater_b]].dropna()
        assert row.n == len(shared)
        assert row.kappa == pytest.approx(
            cohen_kappa_score(shared[row.rater_a], shared[row.rater_b]), abs=1e-12
        )


@pytest.mark.parametrize("weights", ["linear", "quadratic"])
def test_weighted_cohen_kappa_equals_sklearn_with_the_project_label_order(weights):
    df = random_annotations(5, n_items=100, n_raters=3, missing=0.2)
    domain = sorted(df["label"].unique())
    wide = to_wide(df)
    for row in cohen_kappa_pairs(df, weights=weights).itertuples():
        shared = wide[[row.rater_a, row.rater_b]].dropna()
        expected = cohen_kappa_score(shared[row.rater_a], shared[row.rater_b], labels=domain, weights=weights)
        assert row.kappa == pytest.approx(expected, abs=1e-12)


def test_cohen_kappa_matrix_is_symmetric_and_nan_without_two_shared_items():
    df = pd.DataFrame(
        {
            "clip_id": [1, 1, 2, 2, 3, 3, 4, 5],
            "annotator": ["a", "b", "a", "b", "a", "b", "a", "c"],
            "label": ["x", "x", "y", "y", "x", "y", "x", "x"],
        }
    )
    matrix = cohen_kappa_matrix(df)
    assert list(matrix.index) == ["a", "b", "c"]
    expected = cohen_kappa_score(["x", "y", "x"], ["x", "y", "y"])
    assert matrix.loc["a", "b"] == pytest.approx(expected)
    assert matrix.loc["b", "a"] == pytest.approx(expected)
    assert np.isnan(matrix.loc["a", "c"])
    assert np.isnan(np.diag(matrix.to_numpy())).all()


def test_percent_agreement_is_the_mean_pairwise_agreement_of_complete_data():
    df = random_annotations(2, n_items=90, n_raters=3, missing=0.0)
    wide = to_wide(df)
    pairwise = [accuracy_score(wide[a], wide[b]) for a, b in itertools.combinations(wide.columns, 2)]
    assert percent_agreement(df) == pytest.approx(np.mean(pairwise), abs=1e-12)


# ------------------------------------------------------------------------------ classes, confusion


def test_specific_agreement_matches_the_two_rater_formula():
    # 2x2 table: both "yes" 40, A yes/B no 10, A no/B yes 5, both "no" 45.
    a = ["yes"] * 40 + ["yes"] * 10 + ["no"] * 5 + ["no"] * 45
    b = ["yes"] * 40 + ["no"] * 10 + ["yes"] * 5 + ["no"] * 45
    df = to_long(np.array([a, b], dtype=object))
    table = per_class_agreement(df).set_index("label")
    assert table.loc["yes", "specific_agreement"] == pytest.approx(2 * 40 / (2 * 40 + 10 + 5))
    assert table.loc["no", "specific_agreement"] == pytest.approx(2 * 45 / (2 * 45 + 10 + 5))
    assert table.loc["yes", "n"] == 95


def test_per_class_alpha_is_one_versus_rest_alpha():
    df = random_annotations(4, n_items=300, n_raters=4, n_classes=4, missing=0.3)
    table = per_class_agreement(df).set_index("label")
    reliability = to_reliability(df)
    for label in table.index:
        binary = np.where(np.isnan(reliability), nan, (reliability == label).astype(float))
        expected = krippendorff.alpha(binary, level_of_measurement="nominal")
        assert table.loc[label, "alpha"] == pytest.approx(expected, abs=1e-12)


def test_rater_confusion_counts_pairs_like_a_symmetrised_confusion_matrix():
    df = random_annotations(6, n_items=150, n_raters=2, missing=0.0)
    wide = to_wide(df)
    cm = confusion_matrix(wide["coder0"], wide["coder1"], labels=sorted(df["label"].unique()))
    confusion = rater_confusion(df)
    np.testing.assert_array_equal(confusion.to_numpy(), cm + cm.T)
    rows = rater_confusion(df, normalize="row").to_numpy()
    assert rows.sum(axis=1) == pytest.approx(np.ones(len(rows)))


# -------------------------------------------------------------------------------------- bootstrap


def test_alpha_bootstrap_interval_agrees_with_scipy_bootstrap_of_the_krippendorff_package():
    df = random_annotations(8, n_items=60, n_raters=4, missing=0.2)
    reliability = to_reliability(df)

    def statistic(units):
        return krippendorff.alpha(reliability[:, units.astype(int)], level_of_measurement="nominal")

    reference = scipy.stats.bootstrap(
        (np.arange(reliability.shape[1]),),
        statistic,
        n_resamples=2000,
        method="percentile",
        vectorized=False,
        rng=np.random.default_rng(0),
    ).confidence_interval
    lo, hi = bootstrap_ci(df, krippendorff_alpha, n_boot=4000, random_state=1)
    assert lo == pytest.approx(reference.low, abs=0.03)
    assert hi == pytest.approx(reference.high, abs=0.03)
    assert lo < krippendorff_alpha(df) < hi


def test_bootstrap_of_any_metric_resamples_items_and_is_reproducible():
    df = random_annotations(9, n_items=50, n_raters=3, missing=0.2)
    fast = bootstrap_ci(df, partial(krippendorff_alpha, level="nominal"), n_boot=1500, random_state=3)
    generic = bootstrap_ci(df, lambda d: krippendorff_alpha(d), n_boot=400, random_state=3)
    assert generic == pytest.approx(fast, abs=0.05)
    again = bootstrap_ci(df, lambda d: percent_agreement(d), n_boot=50, random_state=4)
    assert again == bootstrap_ci(df, lambda d: percent_agreement(d), n_boot=50, random_state=4)
    assert again[0] <= percent_agreement(df) <= again[1]


# ---------------------------------------------------------------------------------------- report


REQUIRED_KEYS = {
    "krippendorff_alpha",
    "krippendorff_alpha_ci",
    "fleiss_kappa",
    "percent_agreement",
    "cohen_kappa_pairs",
    "n_items",
    "n_raters",
    "n_ratings",
    "per_class",
}


def test_report_is_json_ready_and_says_null_where_fleiss_does_not_apply():
    df = to_long(KRIPPENDORFF_2011)
    report = agreement_report(df, level="ordinal", n_boot=200, random_state=0).to_dict()
    assert set(report) >= REQUIRED_KEYS
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text) == report
    assert report["fleiss_kappa"] is None
    assert report["krippendorff_alpha"] == pytest.approx(0.8153875, abs=1e-6)
    lo, hi = report["krippendorff_alpha_ci"]
    assert lo < report["krippendorff_alpha"] <= hi
    assert (report["n_items"], report["n_raters"], report["n_ratings"]) == (12, 4, 41)
    assert {"rater_a", "rater_b", "kappa", "n"} == set(report["cohen_kappa_pairs"][0])
    assert [row["label"] for row in report["per_class"]] == [1, 2, 3, 4, 5]


def test_report_on_complete_data_gives_fleiss_kappa():
    report = agreement_report(from_counts(FLEISS_1971), n_boot=0).to_dict()
    assert report["fleiss_kappa"] == pytest.approx(sm_fleiss_kappa(FLEISS_1971), abs=1e-12)
    assert report["krippendorff_alpha_ci"] == [None, None]


def test_report_without_any_rating_is_null_rather_than_an_error():
    df = pd.DataFrame({"clip_id": [1, 1, 2], "annotator": ["a", "b", "a"], "label": [None, None, None]})
    report = agreement_report(df, n_boot=20).to_dict()
    assert report["krippendorff_alpha"] is None
    assert report["krippendorff_alpha_ci"] == [None, None]
    assert (report["n_items"], report["n_ratings"], report["per_class"]) == (0, 0, [])
    assert majority_consensus(df).empty


# ---------------------------------------------------------------------- consensus and annotators


def test_majority_consensus_names_unanimous_majority_and_tie():
    df = pd.DataFrame(
        {
            "clip_id": [1, 1, 1, 2, 2, 2, 3, 3, 4],
            "annotator": ["a", "b", "c", "a", "b", "c", "a", "b", "a"],
            "label": ["cat", "cat", "cat", "cat", "dog", "dog", "cat", "dog", "dog"],
        }
    )
    out = majority_consensus(df).set_index("clip_id")
    assert out["method"].tolist() == ["unanimous", "majority", "tie", "unanimous"]
    assert out.loc[2, "label"] == "dog"
    assert out.loc[2, "votes"] == 2
    assert out.loc[2, "agreement"] == pytest.approx(2 / 3)
    assert pd.isna(out.loc[3, "label"])


def test_majority_consensus_equals_cleanlab_majority_vote_where_there_is_no_tie():
    from cleanlab.multiannotator import get_majority_vote_label

    df = random_annotations(12, n_items=200, n_raters=5, n_classes=4, missing=0.3)
    df["label"] = df["label"].astype(int)
    wide = to_wide(df)
    theirs = get_majority_vote_label(wide, verbose=False)
    ours = majority_consensus(df).set_index("clip_id")
    decided = (ours["method"] != "tie").to_numpy()
    assert decided.mean() > 0.7
    np.testing.assert_array_equal(ours["label"].to_numpy(dtype=float)[decided], theirs[decided])


def crowd_with_a_bad_annotator(seed: int, n_items: int = 600, n_classes: int = 4):
    """Five good annotators (70-80% right), one who answers at random; three annotators per item,
    and a model that is right about 70% of the time."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, n_classes, n_items)
    skill = {"ann0": 0.8, "ann1": 0.75, "ann2": 0.7, "ann3": 0.8, "ann4": 0.75, "bad": None}
    rows = []
    for u in range(n_items):
        for name in rng.choice(list(skill), 3, replace=False):
            p = skill[name]
            if p is None:
                label = rng.integers(0, n_classes)
            elif rng.random() < p:
                label = truth[u]
            else:
                label = rng.choice([k for k in range(n_classes) if k != truth[u]])
            rows.append((u, str(name), int(label)))
    df = pd.DataFrame(rows, columns=["clip_id", "annotator", "label"])
    logits = rng.normal(0.0, 1.0, (n_items, n_classes))
    logits[np.arange(n_items), truth] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return df, truth, probs


def test_weighted_consensus_agrees_with_cleanlab_crowdlab_and_beats_plain_majority():
    from cleanlab.multiannotator import get_label_quality_multiannotator

    df, truth, probs = crowd_with_a_bad_annotator(0)
    wide = to_wide(df)
    theirs = get_label_quality_multiannotator(wide, probs, consensus_method="best_quality", verbose=False)
    cleanlab_labels = theirs["label_quality"]["consensus_label"].to_numpy()
    ours, weights = weighted_consensus(
        df, pred_probs=pd.DataFrame(probs, columns=range(probs.shape[1])), return_weights=True
    )
    our_labels = ours["label"].to_numpy(dtype=int)
    plain = coin_flip_majority(df)

    assert (our_labels == cleanlab_labels).mean() >= 0.88
    plain_accuracy = (plain == truth).mean()
    assert (our_labels == truth).mean() >= plain_accuracy + 0.05
    assert (cleanlab_labels == truth).mean() >= plain_accuracy + 0.05
    assert weights.annotators.idxmin() == "bad"
    assert weights.annotators["bad"] < 0.5 * weights.annotators.drop("bad").min()
    assert ((ours["quality"] > 0) & (ours["quality"] <= 1)).all()


def coin_flip_majority(df: pd.DataFrame, seed: int = 1) -> np.ndarray:
    """Plain plurality vote with ties broken by a coin, as a person without a model would."""
    counts = pd.crosstab(df["clip_id"], df["label"]).to_numpy()
    return np.argmax(counts + 0.5 * np.random.default_rng(seed).random(counts.shape), axis=1)


def test_weighted_consensus_without_a_model_discounts_the_bad_annotator():
    df, truth, _ = crowd_with_a_bad_annotator(2)
    ours = weighted_consensus(df)["label"].to_numpy(dtype=int)
    assert (ours == truth).mean() >= (coin_flip_majority(df) == truth).mean() + 0.01


def test_annotator_table_scores_against_the_others_and_gold():
    df, truth, _ = crowd_with_a_bad_annotator(1, n_items=300)
    gold = pd.Series(truth[:100], index=range(100))
    table = annotator_table(df, gold=gold).set_index("annotator")
    assert table["agreement_with_consensus"].idxmin() == "bad"
    assert table["kappa_vs_consensus"].idxmin() == "bad"

    # Reference: the plurality of the other two labels of each item, skipping ties.
    labels = df.groupby("clip_id")["label"].apply(list)
    own, consensus, who = [], [], []
    for row in df.itertuples():
        others = list(labels[row.clip_id])
        others.remove(row.label)
        counts = pd.Series(others).value_counts()
        if len(counts) and (len(counts) == 1 or counts.iloc[0] > counts.iloc[1]):
            own.append(row.label)
            consensus.append(counts.index[0])
            who.append(row.annotator)
    ref = pd.DataFrame({"annotator": who, "own": own, "consensus": consensus})
    for name, part in ref.groupby("annotator"):
        assert table.loc[name, "n_consensus"] == len(part)
        assert table.loc[name, "agreement_with_consensus"] == pytest.approx(
            accuracy_score(part["consensus"], part["own"])
        )
        assert table.loc[name, "kappa_vs_consensus"] == pytest.approx(
            cohen_kappa_score(part["own"], part["consensus"]), abs=1e-12
        )
        with_gold = df[(df["annotator"] == name) & (df["clip_id"] < 100)]
        assert table.loc[name, "n_gold"] == len(with_gold)
        assert table.loc[name, "agreement_with_gold"] == pytest.approx(
            accuracy_score(truth[with_gold["clip_id"]], with_gold["label"])
        )


# -------------------------------------------------------------------------------------- slices


def test_agreement_by_group_equals_alpha_of_each_group_alone():
    df = random_annotations(13, n_items=240, n_raters=4, missing=0.2)
    df["convention_version"] = np.where(df["clip_id"] < 100, 1, 2)
    df.loc[df.index % 7 == 0, "convention_version"] = 3  # one version splits items across groups
    out = agreement_by(df, by="convention_version", level="ordinal").set_index("convention_version")
    assert list(out.index) == [1, 2, 3]
    for version, part in df.groupby("convention_version"):
        expected = krippendorff.alpha(to_reliability(part), level_of_measurement="ordinal")
        assert out.loc[version, "krippendorff_alpha"] == pytest.approx(expected, abs=1e-9)
        assert out.loc[version, "n_ratings"] == len(part)
        assert out.loc[version, "n_items"] == part["clip_id"].nunique()


def test_human_level_performance_per_slice():
    annotations = pd.DataFrame(
        {
            "clip_id": [1, 1, 2, 2, 3, 3, 4, 4],
            "annotator": ["a", "b"] * 4,
            "label": ["yes", "yes", "yes", "no", "no", "no", "no", "yes"],
        }
    )
    resolved = pd.DataFrame(
        {
            "clip_id": [1, 2, 3, 4],
            "label": ["yes", "yes", "no", None],
            "noise": ["car", "car", "none", "car"],
            "tags": [["teen"], ["teen", "accent"], [], ["accent"]],
        }
    )
    out = human_level_performance(annotations, resolved, slice_cols=["noise", "tags"])
    got = {(r.slice, r.value): (r.hlp, r.n) for r in out.itertuples()}
    # Clip 4 has no resolved label. Clips 1-3: 6 annotations, 5 agree with the resolution.
    assert got[("all", "all")] == (pytest.approx(5 / 6), 6)
    assert got[("noise", "car")] == (pytest.approx(3 / 4), 4)
    assert got[("noise", "none")] == (pytest.approx(1.0), 2)
    assert got[("tags", "teen")] == (pytest.approx(3 / 4), 4)
    assert got[("tags", "accent")] == (pytest.approx(1 / 2), 2)
    assert list(out.columns) == ["slice", "value", "hlp", "n", "n_items"]


def test_hlp_accepts_string_dtype_slices_with_missing_values():
    ann = pd.DataFrame(
        {"clip_id": [1, 1, 2, 2], "annotator": ["a", "b", "a", "b"], "label": ["x", "y", "x", "x"]}
    )
    resolved = pd.DataFrame(
        {"clip_id": [1, 2], "label": ["x", "x"], "accent": pd.array([None, "us"], dtype="string")}
    )
    table = human_level_performance(ann, resolved, slice_cols=["accent"]).set_index(["slice", "value"])
    assert table.loc[("all", "all"), "hlp"] == 0.75  # 3 of 4 ratings match the final label
    assert table.loc[("accent", "us"), "hlp"] == 1.0


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_agreement_by_many_slices_at_once_equals_the_krippendorff_package_per_slice(level):
    # Clips sliced by a clip attribute with many values (and one value whose clips were rated once
    # only), as the Agreement page slices by tag and metadata: every slice is computed in one pass.
    df = random_annotations(29, n_items=600, n_raters=5, n_classes=4, missing=0.3)
    rng = np.random.default_rng(5)
    speaker = pd.Series(rng.choice([f"s{i:02d}" for i in range(23)], 600), index=np.arange(600))
    df["speaker"] = df["clip_id"].map(speaker)
    single = df[df["speaker"] == "s00"].drop_duplicates("clip_id")
    df = pd.concat([df[df["speaker"] != "s00"], single], ignore_index=True)
    out = agreement_by(df, by="speaker", level=level).set_index("speaker")
    assert list(out.index) == sorted(df["speaker"].unique())
    for value, part in df.groupby("speaker"):
        pairable = part.groupby("clip_id").filter(lambda g: len(g) >= 2)
        row = out.loc[value]
        assert row["n_ratings"] == len(part)
        assert row["n_items"] == part["clip_id"].nunique()
        assert row["n_pairable"] == pairable["clip_id"].nunique()
        if pairable.empty:
            assert np.isnan(row["krippendorff_alpha"])
            continue
        expected = krippendorff.alpha(to_reliability(part), level_of_measurement=level)
        assert row["krippendorff_alpha"] == pytest.approx(expected, abs=1e-9)
        shares = [
            sum(n * (n - 1) for n in g["label"].value_counts()) / (len(g) * (len(g) - 1))
            for _, g in pairable.groupby("clip_id")
        ]
        assert row["percent_agreement"] == pytest.approx(np.mean(shares))


def test_agreement_by_keeps_a_group_whose_ratings_are_all_missing():
    df = random_annotations(3, n_items=40, n_raters=3, missing=0.0)
    df["week"] = np.where(df["clip_id"] < 20, "2026-01-05", "2026-01-12")
    df.loc[df["week"] == "2026-01-12", "label"] = nan
    out = agreement_by(df, by="week").set_index("week")
    assert list(out.index) == ["2026-01-05", "2026-01-12"]
    assert out.loc["2026-01-12", "n_ratings"] == 0
    assert out.loc["2026-01-12", "n_items"] == 0
    assert np.isnan(out.loc["2026-01-12", "krippendorff_alpha"])
