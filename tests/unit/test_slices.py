"""Slice tables: the course's prioritisation example, and rates that pandas and sklearn agree with."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from analysis.slices import confusion_table, metadata_slices, per_class_metrics, slice_table

TAGS = ["clean", "car_noise", "people_noise", "low_bandwidth"]


def ng_speech_example() -> pd.DataFrame:
    """10,000 clips with the shares and accuracies of the course's speech example, one tag per clip."""
    shares = {"clean": 6000, "car_noise": 400, "people_noise": 3000, "low_bandwidth": 600}
    accuracy = {"clean": 0.94, "car_noise": 0.89, "people_noise": 0.87, "low_bandwidth": 0.70}
    rows = []
    for tag, n in shares.items():
        right = round(n * accuracy[tag])
        for i in range(n):
            rows.append({**{t: int(t == tag) for t in TAGS}, "correct": i < right})
    return pd.DataFrame(rows)


NG_HLP = {"clean": 0.95, "car_noise": 0.93, "people_noise": 0.89, "low_bandwidth": 0.70}


def test_course_example_priorities_are_gap_times_share():
    table = slice_table(ng_speech_example(), tag_cols=TAGS, hlp=NG_HLP).set_index("tag")
    points = (table["priority"] * 100).round(6)
    assert points.to_dict() == pytest.approx(
        {"clean": 0.6, "car_noise": 0.16, "people_noise": 0.6, "low_bandwidth": 0.0}
    )
    assert table["share"].to_dict() == pytest.approx(
        {"clean": 0.60, "car_noise": 0.04, "people_noise": 0.30, "low_bandwidth": 0.06}
    )
    assert table.loc["car_noise", "gap"] == pytest.approx(0.04)
    assert table.loc["people_noise", "accuracy"] == pytest.approx(0.87)


def test_course_example_ties_are_broken_by_share_of_errors():
    table = slice_table(ng_speech_example(), tag_cols=TAGS, hlp=NG_HLP)
    # Clean and people noise are both worth 0.6 points; people noise holds 390 of the 974 errors.
    assert list(table["tag"]) == ["people_noise", "clean", "car_noise", "low_bandwidth"]
    assert table.loc[0, "error_share"] == pytest.approx(390 / 974)


def random_predictions(n: int = 5000, *, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"tag{i}": (rng.random(n) < 0.05 + 0.1 * i).astype(int) for i in range(5)})
    risk = 0.05 + 0.2 * frame["tag1"] + 0.1 * frame["tag3"]
    frame["correct"] = rng.random(n) >= risk
    frame["accent"] = rng.choice(["scottish", "indian", "us", "irish"], size=n, p=[0.1, 0.2, 0.6, 0.1])
    frame["device"] = rng.choice(["phone", "laptop"], size=n)
    return frame


def test_overlapping_tags_match_pandas_filtering():
    preds = random_predictions()
    tags = [f"tag{i}" for i in range(5)]
    table = slice_table(preds, tag_cols=tags).set_index("tag")
    errors = (~preds["correct"]).sum()
    for tag in tags:
        rows = preds[preds[tag] == 1]
        assert table.loc[tag, "n"] == len(rows)
        assert table.loc[tag, "share"] == pytest.approx(len(rows) / len(preds))
        assert table.loc[tag, "accuracy"] == pytest.approx(rows["correct"].mean())
        assert table.loc[tag, "error_share"] == pytest.approx((~rows["correct"]).sum() / errors)
    assert table["share"].sum() > 1  # clips carry several tags
    assert table["priority"].isna().all()
    assert list(table["error_share"]) == sorted(table["error_share"], reverse=True)


def test_tags_may_be_booleans_or_nullable_and_unscored_clips_are_ignored():
    preds = random_predictions()
    as_int = slice_table(preds, tag_cols=["tag1", "tag3"])
    preds_bool = preds.assign(tag1=preds["tag1"].astype(bool), tag3=preds["tag3"].astype("boolean"))
    pd.testing.assert_frame_equal(slice_table(preds_bool, tag_cols=["tag1", "tag3"]), as_int)

    correct = preds["correct"].astype("boolean")
    correct[::7] = pd.NA
    with_na = preds.assign(correct=correct)
    table = slice_table(with_na, tag_cols=["tag1"], hlp=pd.Series({"tag1": 0.9})).set_index("tag")
    scored = with_na.dropna(subset=["correct"])
    rows = scored[scored["tag1"] == 1]
    assert table.loc["tag1", "n"] == len(rows)
    assert table.loc["tag1", "share"] == pytest.approx(len(rows) / len(scored))
    assert table.loc["tag1", "accuracy"] == pytest.approx(rows["correct"].astype(bool).mean())
    assert table.loc["tag1", "gap"] == pytest.approx(0.9 - rows["correct"].astype(bool).mean())


def test_input_frame_is_left_untouched():
    preds = random_predictions().astype({"tag1": bool, "correct": "boolean"})
    preds.loc[::3, "correct"] = pd.NA
    before = preds.copy()
    slice_table(preds, tag_cols=["tag1", "tag2"])
    metadata_slices(preds, cols=["accent"])
    pd.testing.assert_frame_equal(preds, before)


def test_text_tag_column_is_refused_with_a_pointer_to_metadata_slices():
    with pytest.raises(ValueError, match="metadata_slices"):
        slice_table(random_predictions(), tag_cols=["accent"])


def test_metadata_values_become_slices_matching_groupby():
    preds = random_predictions()
    preds.loc[::50, "accent"] = None
    table = metadata_slices(preds, cols=["accent", "device"], hlp={"accent=scottish": 0.99}).set_index("tag")
    assert set(table.index) == {f"accent={a}" for a in ["scottish", "indian", "us", "irish"]} | {
        "device=phone",
        "device=laptop",
    }
    for col in ["accent", "device"]:
        by_value = preds.groupby(col)["correct"].agg(["size", "mean"])
        for value, row in by_value.iterrows():
            assert table.loc[f"{col}={value}", "n"] == row["size"]
            assert table.loc[f"{col}={value}", "accuracy"] == pytest.approx(row["mean"])
    assert table.loc["accent=scottish", "gap"] == pytest.approx(
        0.99 - table.loc["accent=scottish", "accuracy"]
    )
    assert table["share"].filter(like="accent=").sum() == pytest.approx(1 - 100 / len(preds))


def test_word_error_rate_slices_report_mean_wer_and_human_gap():
    jiwer = pytest.importorskip("jiwer")
    refs = ["turn the lights on", "call mum", "play some jazz", "stop", "set a timer for ten minutes"] * 40
    hyps = ["turn the light on", "call mom", "play some jazz", "stop", "set timer for ten minutes"] * 40
    rng = np.random.default_rng(3)
    preds = pd.DataFrame(
        {
            "wer": [jiwer.wer(r, h) for r, h in zip(refs, hyps, strict=True)],
            "noisy": rng.integers(0, 2, size=len(refs)),
            "accent": rng.choice(["a", "b"], size=len(refs)),
        }
    )
    table = slice_table(preds, tag_cols=["noisy"], metric="wer", hlp={"noisy": 0.05}).set_index("tag")
    rows = preds[preds["noisy"] == 1]
    assert "accuracy" not in table.columns
    assert table.loc["noisy", "wer"] == pytest.approx(rows["wer"].mean())
    assert table.loc["noisy", "error_share"] == pytest.approx(rows["wer"].sum() / preds["wer"].sum())
    assert table.loc["noisy", "gap"] == pytest.approx(rows["wer"].mean() - 0.05)
    assert table.loc["noisy", "priority"] == pytest.approx(
        (rows["wer"].mean() - 0.05) * len(rows) / len(preds)
    )
    by_accent = metadata_slices(preds, cols=["accent"], metric="wer").set_index("tag")["wer"]
    expected = preds.groupby("accent")["wer"].mean()
    assert by_accent["accent=a"] == pytest.approx(expected["a"])


def test_unknown_metric_is_refused():
    with pytest.raises(ValueError, match="metric"):
        slice_table(random_predictions(), tag_cols=["tag1"], metric="f1")


@pytest.mark.parametrize("labels", [["cat", "dog", "owl"], ["owl", "cat"], ["cat", "dog", "owl", "yak"]])
def test_confusion_table_matches_sklearn(labels):
    rng = np.random.default_rng(4)
    y_true = rng.choice(["cat", "dog", "owl"], size=300)
    y_pred = np.where(rng.random(300) < 0.7, y_true, rng.choice(["cat", "dog", "owl", "emu"], size=300))
    table = confusion_table(y_true, y_pred, labels=labels)
    np.testing.assert_array_equal(table.to_numpy(), confusion_matrix(y_true, y_pred, labels=labels))
    assert list(table.index) == labels
    assert table.index.name == "true"
    assert table.columns.name == "predicted"


@pytest.mark.parametrize("labels", [[0, 1, 2, 3], [3, 1], [0, 1, 2, 3, 4]])
def test_per_class_metrics_match_sklearn(labels):
    rng = np.random.default_rng(5)
    y_true = pd.Series(rng.integers(0, 4, size=400))
    # Class 2 is never predicted: its precision is 0 by convention.
    y_pred = pd.Series(np.where(rng.random(400) < 0.6, y_true, rng.choice([0, 1, 3, 9], size=400)))
    table = per_class_metrics(y_true, y_pred, labels=labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    np.testing.assert_allclose(table["precision"], precision)
    np.testing.assert_allclose(table["recall"], recall)
    np.testing.assert_allclose(table["f1"], f1)
    np.testing.assert_array_equal(table["support"], support)
    assert list(table.index) == labels


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="entries"):
        confusion_table([1, 2, 3], [1, 2], labels=[1, 2, 3])
