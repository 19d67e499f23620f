"""Active-learning scores and queue orders on small hand-made tables; references from scipy and by hand."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist
from scipy.stats import entropy
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from analysis.active import (
    STRATEGIES,
    Strategy,
    bucketed_priorities,
    clip_priorities,
    committee_probabilities,
    diverse_pick,
    entropy_scores,
    k_center_greedy,
    least_confidence_scores,
    margin_scores,
    mean_kl_divergence,
    mix_with_random,
    probability_matrix,
    queue_priorities,
    select_batch,
    top_candidates,
    uncertainty_table,
    vote_entropy,
)

# Three clips, three classes: a coin flip between two classes, a sure thing, a lean.
TABLE = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.8, 0.15, 0.05]])


def test_margin_entropy_and_least_confidence_of_a_hand_made_table():
    assert margin_scores(TABLE) == pytest.approx([1.0, 0.0, 0.35])
    assert least_confidence_scores(TABLE) == pytest.approx([0.5, 0.0, 0.2])
    expected = [entropy(row) / np.log(3) for row in TABLE]
    assert entropy_scores(TABLE) == pytest.approx(expected)
    assert entropy_scores(np.full((1, 4), 0.25)) == pytest.approx([1.0])


def test_every_uncertainty_measure_puts_the_coin_flip_first_and_the_sure_thing_last():
    for name in ("margin", "entropy", "least_confidence"):
        plan = queue_priorities(STRATEGIES[name], proba=TABLE, random_state=0)
        assert plan.order.tolist() == [0, 2, 1], name
        assert plan.priority.tolist() == [3, 1, 2], name


def test_vote_entropy_and_mean_kl_against_scipy():
    committee = np.array(
        [
            [[0.9, 0.1, 0.0], [0.7, 0.2, 0.1], [0.2, 0.3, 0.5]],
            [[0.8, 0.2, 0.0], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1]],
            [[0.7, 0.2, 0.1], [0.2, 0.2, 0.6], [0.6, 0.3, 0.1]],
        ]
    )
    # Clip 0: all three vote class 0; clip 1: three different votes; clip 2: votes 2, 0, 0.
    assert vote_entropy(committee) == pytest.approx(
        [0.0, entropy([1, 1, 1]) / np.log(3), entropy([2, 1]) / np.log(3)]
    )
    consensus = committee.mean(axis=0)
    expected = [np.mean([entropy(committee[m, i], consensus[i]) for m in range(3)]) for i in range(3)]
    assert mean_kl_divergence(committee) == pytest.approx(expected)


def test_a_committee_in_full_agreement_has_no_disagreement():
    same = np.repeat(TABLE[None], 4, axis=0)
    assert vote_entropy(same) == pytest.approx([0.0, 0.0, 0.0])
    assert mean_kl_divergence(same) == pytest.approx([0.0, 0.0, 0.0])


def test_bad_probabilities_are_refused_with_a_message():
    with pytest.raises(ValueError, match="at least two classes"):
        margin_scores(np.ones((3, 1)))
    with pytest.raises(ValueError, match="NaN"):
        entropy_scores(np.array([[0.5, np.nan]]))
    with pytest.raises(ValueError, match="members"):
        vote_entropy(TABLE)


def test_k_center_greedy_on_a_line_takes_the_farthest_point_each_time():
    points = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    assert k_center_greedy(points, k=3).tolist() == [0, 4, 2]
    # Already covering 0 and 11, the first pick is the middle of the largest gap.
    assert k_center_greedy(points, k=1, centres=np.array([[0.0], [11.0]])).tolist() == [2]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_k_center_greedy_is_within_twice_the_optimal_radius(seed):
    """Gonzalez (1985): farthest-first traversal is a 2-approximation of the k-center problem."""
    points = np.random.default_rng(seed).normal(size=(14, 2))
    k = 3
    first = 0
    greedy = k_center_greedy(points, k=k, first=first)
    radius = cdist(points, points[greedy]).min(axis=1).max()
    optimal = min(
        cdist(points, points[list(centres)]).min(axis=1).max()
        for centres in itertools.combinations(range(len(points)), k)
    )
    assert optimal <= radius <= 2 * optimal + 1e-12
    assert len(set(greedy.tolist())) == k


def test_diverse_pick_covers_both_confusing_regions_where_top_k_takes_one():
    rng = np.random.default_rng(0)
    # Two tight clusters of near-duplicates, both uncertain; cluster A slightly more so.
    a = rng.normal(0.0, 0.01, size=(30, 2))
    b = rng.normal(5.0, 0.01, size=(30, 2))
    far = rng.normal(-5.0, 1.0, size=(100, 2))
    features = np.vstack([a, b, far])
    scores = np.concatenate([np.full(30, 0.9), np.full(30, 0.8), np.full(100, 0.1)])
    top = top_candidates(scores, 4, random_state=0)
    assert set(top.tolist()) <= set(range(30))
    picked = diverse_pick(scores, features, n=4, candidates=60, random_state=0)
    assert any(i < 30 for i in picked)
    assert any(30 <= i < 60 for i in picked)
    assert set(picked.tolist()) <= set(range(60)), "only the most uncertain candidates are considered"
    again = diverse_pick(scores, features, n=4, candidates=60, random_state=0)
    assert picked.tolist() == again.tolist()


def test_diverse_pick_avoids_what_is_already_labelled():
    features = np.array([[0.0, 0.0], [0.1, 0.0], [4.0, 4.0], [4.1, 4.0]])
    scores = np.array([0.9, 0.9, 0.5, 0.5])
    picked = diverse_pick(
        scores, features, n=1, candidates=4, labelled_features=np.array([[0.0, 0.05]]), random_state=1
    )
    assert picked[0] in (2, 3)


def test_top_candidates_breaks_ties_by_the_seed_and_puts_nan_last():
    scores = np.array([0.5, np.nan, 0.5, 0.9, 0.5])
    first = top_candidates(scores, 5, random_state=0)
    assert first[0] == 3
    assert first[-1] == 1
    orders = {tuple(top_candidates(scores, 2, random_state=s).tolist()) for s in range(20)}
    assert len(orders) > 1, "ties follow the seed"
    assert all(o[0] == 3 for o in orders)


def test_a_random_share_is_a_random_sample_and_the_rest_keeps_the_strategy_order():
    n = 20_000
    scores = np.random.default_rng(5).random(n)
    order = np.argsort(-scores)
    plan = mix_with_random(order, random_share=0.2, random_state=3)
    head = plan.order[:2000]
    lane = plan.random_lane[head]
    assert lane.mean() == pytest.approx(0.2, abs=0.03)
    # The random lane's clips look like the whole pool; the strategy lane's are the top scores.
    assert scores[head[lane]].mean() == pytest.approx(scores.mean(), abs=0.03)
    assert scores[head[~lane]].min() > 0.9
    strategy_part = plan.order[~plan.random_lane[plan.order]]
    assert np.all(np.diff(scores[strategy_part]) <= 0)
    assert np.array_equal(np.argsort(-plan.priority, kind="stable"), plan.order)
    unchanged = mix_with_random(order, random_share=0.0, random_state=3)
    assert unchanged.order.tolist() == order.tolist()
    assert not unchanged.random_lane.any()


def test_select_batch_takes_the_random_share_and_the_most_uncertain_rest():
    proba = np.column_stack([np.linspace(0.5, 1.0, 100), 1 - np.linspace(0.5, 1.0, 100)])
    mixed = STRATEGIES["margin"].with_random_share(0.3)
    batch = select_batch(mixed, 10, proba=proba, random_state=0)
    assert len(set(batch.tolist())) == 10
    most_uncertain = set(range(7))
    assert len(most_uncertain & set(batch.tolist())) >= 7
    assert select_batch(STRATEGIES["random"], 5, n_clips=100, random_state=0).size == 5
    assert select_batch(STRATEGIES["margin"], 500, proba=proba, random_state=0).size == 100


def test_queue_priorities_for_every_strategy_rank_every_clip_once():
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(4), size=300)
    committee = rng.dirichlet(np.ones(4), size=(3, 300))
    features = rng.normal(size=(300, 5))
    for strategy in [*STRATEGIES.values(), STRATEGIES["margin_diversity"].with_random_share(0.25)]:
        plan = queue_priorities(
            strategy,
            proba=proba,
            committee=committee,
            features=features,
            labelled_features=features[:10],
            n_clips=300,
            lead=50,
            random_state=4,
        )
        assert sorted(plan.priority.tolist()) == list(range(1, 301)), strategy.name
        again = queue_priorities(
            strategy,
            proba=proba,
            committee=committee,
            features=features,
            labelled_features=features[:10],
            n_clips=300,
            lead=50,
            random_state=4,
        )
        assert np.array_equal(plan.priority, again.priority), f"{strategy.name} is not deterministic"


def test_strategies_say_what_they_need():
    with pytest.raises(ValueError, match="probabilities"):
        queue_priorities(STRATEGIES["entropy"], n_clips=3)
    with pytest.raises(ValueError, match="committee"):
        select_batch(STRATEGIES["vote_entropy"], 2, proba=TABLE)
    with pytest.raises(ValueError, match="features"):
        select_batch(STRATEGIES["margin_diversity"], 2, proba=TABLE)
    with pytest.raises(ValueError, match="unknown measure"):
        Strategy("x", "x", "loudness")
    with pytest.raises(ValueError, match="random_share"):
        STRATEGIES["margin"].with_random_share(1.5)


def test_committee_of_cross_validation_folds_on_iris():
    X, y = load_iris(return_X_y=True)
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    rng = np.random.default_rng(0)
    rows = rng.permutation(len(y))
    labelled, pool = rows[:60], rows[60:]
    with threadpool_limits(limits=1, user_api="blas"):  # small fits: BLAS threads only spin
        committee, classes = committee_probabilities(
            LogisticRegression(max_iter=500),
            X[labelled],
            labels[labelled],
            X[pool],
            n_folds=4,
            random_state=0,
        )
    assert committee.shape == (4, len(pool), 3)
    assert classes.tolist() == ["setosa", "versicolor", "virginica"]
    assert np.allclose(committee.sum(axis=2), 1.0)
    # Setosa is easy: the committee agrees on it; the disagreement sits between the other two.
    disagreement = mean_kl_divergence(committee)
    setosa = labels[pool] == "setosa"
    assert disagreement[setosa].mean() < disagreement[~setosa].mean()


def test_probability_matrix_and_uncertainty_table_read_a_runs_predictions():
    predictions = pd.DataFrame(
        {"key": ["a", "b", "c"], "y_pred": ["0", "0", "0"], "proba_0": TABLE[:, 0], "proba_1": TABLE[:, 1]}
        | {"proba_2": TABLE[:, 2]}
    )
    proba, classes = probability_matrix(predictions)
    assert classes == ["0", "1", "2"]
    assert proba.shape == (3, 3)
    table = uncertainty_table(pd.DataFrame(proba, index=predictions["key"], columns=classes))
    assert table.loc["a", "margin"] == pytest.approx(1.0)
    assert table.loc["b", "confidence"] == pytest.approx(1.0)
    assert table["predicted"].tolist() == ["0", "0", "0"]


def test_stored_steps_keep_the_queue_order_and_stay_put_when_its_head_is_labelled():
    rng = np.random.default_rng(3)
    n = 50_000
    ids = np.arange(n) * 7 + 100
    proba = pd.DataFrame(rng.dirichlet([0.5, 0.5, 0.5], size=n), index=pd.Index(ids, name="clip_id"))
    strategy = STRATEGIES["margin"].with_random_share(0.1)
    ranks, lane = clip_priorities(ids, strategy, proba=proba, random_state=1)
    steps = pd.Series(bucketed_priorities(ranks.to_numpy()), index=ids)
    # 50,000 clips: steps of 32 (the largest power of two at most 50,000 / 1,024), in queue order.
    assert steps.nunique() == -(-n // 32)
    by_rank = steps[ranks.sort_values(ascending=False).index].to_numpy()
    assert (np.diff(by_rank) <= 0).all()
    # A short queue keeps its exact ranks.
    assert (bucketed_priorities(np.arange(1, 2048)) == np.arange(1, 2048)).all()
    # Label the 500 clips at the head of the queue: nearly every other clip keeps its step and its lane.
    rest = ranks.sort_values(ascending=False).index[500:]
    again, lane_again = clip_priorities(rest.to_numpy(), strategy, proba=proba, random_state=1)
    moved = (bucketed_priorities(again.to_numpy()) != steps[rest].to_numpy()).mean()
    assert moved < 0.02
    assert (lane_again.to_numpy() == lane[rest].to_numpy()).all()


def test_labelling_and_queue_commands_do_not_import_scikit_learn():
    # Every annotator request and CLI command reads the queue's settings through this package; the
    # committee's scikit-learn import (seconds on a busy machine) belongs to the scoring job alone.
    code = (
        "import sys\n"
        "import labeling.annotate.annotations, labeling.annotate.queue, labeling.data.queue_order\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    ).stdout
    assert out.strip() == "[]"
