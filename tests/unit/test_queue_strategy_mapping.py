"""From a project's setting and a run's probabilities to the clips' queue priorities, on hand-made
tables whose orders are worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.active import STRATEGIES, clip_priorities
from labeling.data.queue_order import (
    QUEUE_ORDERS,
    SCORED_ORDERS,
    check_overlap,
    overlap_settings,
    queue_caption,
    queue_strategy,
    random_share,
)

#: P(yes), P(no) of five clips, keyed by clip id as a run stores them.
PROBA = pd.DataFrame(
    {"yes": [0.95, 0.55, 0.7, 0.5, 0.2], "no": [0.05, 0.45, 0.3, 0.5, 0.8]},
    index=pd.Index([11, 12, 13, 14, 15], name="clip_id"),
)


def _order(priority: pd.Series) -> list[int]:
    return priority.sort_values(ascending=False).index.tolist()


def test_every_model_strategy_is_a_queue_order_and_random_is_the_existing_one():
    assert set(SCORED_ORDERS) == set(STRATEGIES) - {"random"}
    assert QUEUE_ORDERS["random"].strategy is None  # the fixed hash shuffle, no scoring needed
    for name in SCORED_ORDERS:
        assert QUEUE_ORDERS[name].strategy == name


def test_margin_ranks_closest_tie_first():
    # 1 - |p_yes - p_no|: 14 → 1.0, 12 → 0.9, 13 → 0.6, 15 → 0.4, 11 → 0.1.
    priority, lane = clip_priorities([11, 12, 13, 14, 15], STRATEGIES["margin"], proba=PROBA, random_state=0)
    assert _order(priority) == [14, 12, 13, 15, 11]
    assert sorted(priority.tolist()) == [1, 2, 3, 4, 5]
    assert not lane.any()


def test_entropy_and_least_confidence_agree_with_hand_computed_values_on_two_classes():
    # With two classes every uncertainty measure is a decreasing function of max(p): same order.
    for name in ("entropy", "least_confidence"):
        priority, _ = clip_priorities(PROBA.index, STRATEGIES[name], proba=PROBA, random_state=0)
        assert _order(priority) == [14, 12, 13, 15, 11]


def test_clips_the_run_never_scored_count_as_most_uncertain():
    # Clip 16 came after the run: uniform probabilities, tied with 14 (both 0.5/0.5) at the top.
    priority, _ = clip_priorities([11, 12, 16, 14], STRATEGIES["margin"], proba=PROBA, random_state=0)
    assert set(_order(priority)[:2]) == {14, 16}
    assert _order(priority)[2:] == [12, 11]


def test_without_probabilities_the_order_is_a_seeded_shuffle():
    a, lane = clip_priorities(PROBA.index, STRATEGIES["margin"], proba=None, random_state=3)
    b, _ = clip_priorities(PROBA.index, STRATEGIES["margin"], proba=None, random_state=3)
    assert a.equals(b)
    assert lane.all()  # every clip placed at random: estimates from them stay unbiased


def test_random_share_puts_the_random_lane_through_the_queue():
    ids = np.arange(1, 201)
    rng = np.random.default_rng(0)
    p = rng.random(200)
    proba = pd.DataFrame({"a": p, "b": 1 - p}, index=pd.Index(ids, name="clip_id"))
    priority, lane = clip_priorities(
        ids, STRATEGIES["margin"].with_random_share(0.25), proba=proba, random_state=1
    )
    assert 25 < lane.sum() < 75  # about a quarter
    first_half = _order(priority)[:100]
    assert 5 < lane.loc[first_half].sum() < 45  # spread through the queue, not all at its end


def test_a_committee_of_hand_made_members_ranks_by_their_disagreement():
    # Two members: they agree on clip 1 (both "a"), split on clip 2, agree on "b" for clip 3.
    committee = np.array(
        [
            [[0.9, 0.1], [0.8, 0.2], [0.2, 0.8]],
            [[0.8, 0.2], [0.3, 0.7], [0.1, 0.9]],
        ]
    )
    priority, _ = clip_priorities([1, 2, 3], STRATEGIES["vote_entropy"], committee=committee, random_state=0)
    assert _order(priority)[0] == 2


def test_diversity_needs_features_and_spreads_its_picks():
    ids = [1, 2, 3, 4]
    proba = pd.DataFrame({"a": [0.5, 0.5, 0.5, 0.9], "b": [0.5, 0.5, 0.5, 0.1]}, index=ids)
    with pytest.raises(ValueError, match="features"):
        clip_priorities(ids, STRATEGIES["margin_diversity"], proba=proba)
    # Clips 1, 2 and 3 are equally uncertain; 1 and 2 are the same point and 3 is far away. Whichever of
    # them the tie-break picks first, the second pick is far from it: never both copies of one point.
    features = pd.DataFrame({"x": [0.0, 0.0, 10.0, 5.0]}, index=ids)
    for seed in range(20):
        priority, _ = clip_priorities(
            ids, STRATEGIES["margin_diversity"], proba=proba, features=features, random_state=seed
        )
        assert set(_order(priority)[:2]) in ({1, 3}, {2, 3}), seed


def test_the_setting_maps_to_a_strategy_with_its_random_share_and_a_caption():
    assert queue_strategy({}) is None
    assert queue_strategy({"queue_order": "priority"}) is None
    s = queue_strategy({"queue_order": "entropy", "queue_random_share": 0.2})
    assert s is not None
    assert (s.measure, s.random_share, s.name) == ("entropy", 0.2, "entropy+random20")
    assert queue_caption({"queue_order": "entropy", "queue_random_share": 0.2}) == (
        "uncertainty (entropy), 20% random"
    )
    assert queue_caption({"queue_order": "random"}) == "random"
    assert random_share({"queue_random_share": "lots"}) == 0.1  # unreadable: the default


def test_adaptive_overlap_setting_is_checked():
    assert overlap_settings({}) is None
    assert overlap_settings({"adaptive_overlap": {"min_k": 1, "max_k": 4, "target": 0.9}}).max_k == 4
    assert check_overlap({}) == {}
    for bad, words in (
        ({"min_k": 3, "max_k": 2}, "min_k <= max_k"),
        ({"target": 1.0}, "target"),
        ({"max_k": 2.5}, "whole number"),
        ({"mink": 1}, "not mink"),
    ):
        with pytest.raises(ValueError, match=words):
            check_overlap(bad)
