import pandas as pd
import pytest

from analysis.splits import assign_splits


def test_no_group_straddles_two_splits_and_shares_are_near_target():
    groups = pd.Series([f"spk{i % 50}" for i in range(5000)])
    splits = assign_splits(groups)
    assert groups.groupby(splits.to_numpy()).nunique().sum() == 50  # each speaker counted once
    assert pd.crosstab(groups, splits).gt(0).sum(axis=1).eq(1).all()
    shares = splits.value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.8, abs=0.05)
    assert shares["dev"] == pytest.approx(0.1, abs=0.05)
    assert shares["test"] == pytest.approx(0.1, abs=0.05)


def test_assignment_does_not_depend_on_arrival_order():
    groups = pd.Series([f"spk{i % 20}" for i in range(400)])
    a = pd.Series(assign_splits(groups).to_numpy(), index=groups).groupby(level=0).first()
    shuffled = groups.sample(frac=1.0, random_state=1).reset_index(drop=True)
    b = pd.Series(assign_splits(shuffled).to_numpy(), index=shuffled).groupby(level=0).first()
    assert a.sort_index().equals(b.sort_index())


def test_groups_already_placed_keep_their_split():
    groups = pd.Series(["alice"] * 10 + ["bob"] * 10)
    splits = assign_splits(groups, existing={"alice": "test", "bob": "dev"})
    assert set(splits[groups == "alice"]) == {"test"}
    assert set(splits[groups == "bob"]) == {"dev"}


def test_few_speakers_still_get_a_test_split():
    groups = pd.Series(["a"] * 500 + ["b"] * 500 + ["c"] * 500 + ["d"] * 500)
    assert set(assign_splits(groups)) == {"train", "test"}


def test_fractions_must_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        assign_splits(pd.Series(["a"]), fractions={"train": 0.5, "test": 0.2})
