"""Active learning: which unlabelled clips to label next, from the fixed model's probabilities.

Call :func:`queue_priorities` with a :class:`Strategy` (one of :data:`STRATEGIES`, optionally with a
random share) and the model's probabilities of the unlabelled clips: it returns an integer priority per
clip (higher is labelled sooner) that the queue can sort by, and which of the clips were placed by the
random share. :func:`select_batch` picks the next ``n`` clips the same way, for a replay or a batch job.

The building blocks, each vectorised over clips (a million clips take seconds):

- uncertainty of one model, from class probabilities of shape ``(n_clips, n_classes)``:
  :func:`margin_scores`, :func:`entropy_scores`, :func:`least_confidence_scores`;
- disagreement of a committee, from probabilities of shape ``(n_members, n_clips, n_classes)`` (the
  fixed model fitted on each cross-validation fold, :func:`committee_probabilities`):
  :func:`vote_entropy` and :func:`mean_kl_divergence`;
- diversity: :func:`k_center_greedy` (the core-set pick of Sener & Savarese, ICLR 2018) and
  :func:`diverse_pick`, which runs it among the most uncertain candidates only, so its cost depends on
  the batch, not on the number of unlabelled clips;
- a random share (:func:`mix_with_random`), so that part of what is labelled is a simple random sample
  of the unlabelled clips and estimates made from it (accuracy, class shares) stay unbiased.

Every score is "higher means more worth labelling". Everything here is pure: arrays in, arrays out,
randomness only through ``random_state``.

A queue-scoring job would: take the latest run's predictions of the unlabelled clips
(:func:`probability_matrix` reads the ``proba_<class>`` columns of
:attr:`analysis.model.RunResult.predictions`); for a committee strategy, fit
:func:`committee_probabilities` with ``analysis.model.build_pipeline`` of the run's parameters on
the labelled clips; call :func:`queue_priorities`; and store ``plan.priority`` as the clips'
priorities (and ``plan.random_lane`` if estimates should use only the random share).
:func:`uncertainty_table` is the per-clip view of every score, for a page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

#: Clips scored per block, so a million clips never need more than a few block-sized temporaries.
BLOCK = 131_072


# --- uncertainty of one model ----------------------------------------------------------------------


def _proba(proba: Any) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(
            f"probabilities need shape (clips, classes) with at least two classes, got {p.shape}"
        )
    if not np.all(np.isfinite(p)):
        raise ValueError("probabilities contain NaN or infinite values")
    if (p < 0).any():
        raise ValueError("probabilities must not be negative")
    return p


def _blocks(n: int) -> range:
    return range(0, n, BLOCK)


def margin_scores(proba: Any) -> np.ndarray:
    """``1 - (p_first - p_second)``: 1 when the two likeliest classes tie, 0 when one class is certain.

    Parameters
    ----------
    proba
        Class probabilities, shape ``(n_clips, n_classes)``; rows should sum to 1.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_clips,)``, in ``[0, 1]``.
    """
    p = _proba(proba)
    out = np.empty(len(p))
    for start in _blocks(len(p)):
        top2 = np.partition(p[start : start + BLOCK], -2, axis=1)[:, -2:]
        out[start : start + BLOCK] = 1.0 - (top2[:, 1] - top2[:, 0])
    return out


def _entropy_rows(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=1)


def entropy_scores(proba: Any) -> np.ndarray:
    """Shannon entropy of each row divided by ``log(n_classes)``: 0 when certain, 1 when uniform.

    Rows are normalised to sum to 1 first.

    Parameters
    ----------
    proba
        Class probabilities, shape ``(n_clips, n_classes)``.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_clips,)``, in ``[0, 1]``.
    """
    p = _proba(proba)
    out = np.empty(len(p))
    for start in _blocks(len(p)):
        block = p[start : start + BLOCK]
        total = block.sum(axis=1, keepdims=True)
        block = block / np.where(total > 0, total, 1.0)
        out[start : start + BLOCK] = _entropy_rows(block)
    return out / np.log(p.shape[1])


def least_confidence_scores(proba: Any) -> np.ndarray:
    """``1 - max_c p_c``: how far the model's best guess is from certain.

    Parameters
    ----------
    proba
        Class probabilities, shape ``(n_clips, n_classes)``.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_clips,)``, in ``[0, 1 - 1/n_classes]`` for rows that sum to 1.
    """
    return 1.0 - _proba(proba).max(axis=1)


UNCERTAINTY: dict[str, Callable[[Any], np.ndarray]] = {
    "margin": margin_scores,
    "entropy": entropy_scores,
    "least_confidence": least_confidence_scores,
}
"""Uncertainty measures of one model by name."""


# --- disagreement of a committee -------------------------------------------------------------------


def _committee(committee: Any) -> np.ndarray:
    c = np.asarray(committee, dtype=np.float64)
    if c.ndim != 3 or c.shape[0] < 2 or c.shape[2] < 2:
        raise ValueError(
            "committee probabilities need shape (members, clips, classes) with at least two members "
            f"and two classes, got {c.shape}"
        )
    if not np.all(np.isfinite(c)) or (c < 0).any():
        raise ValueError("committee probabilities must be finite and not negative")
    return c


def vote_entropy(committee: Any) -> np.ndarray:
    """Entropy of the members' votes (each member votes its likeliest class), Dagan & Engelson (1995).

    ``-sum_c (V_c / M) log(V_c / M)`` with ``V_c`` the members voting ``c`` out of ``M``, divided by
    ``log(min(M, n_classes))`` so it lies in ``[0, 1]``: 0 when all members agree, 1 when the votes
    spread as evenly as they can.

    Parameters
    ----------
    committee
        Probabilities of each member, shape ``(n_members, n_clips, n_classes)``.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_clips,)``.
    """
    c = _committee(committee)
    m, n, k = c.shape
    out = np.empty(n)
    for start in _blocks(n):
        votes = c[:, start : start + BLOCK].argmax(axis=2)  # (members, block)
        rows = votes.shape[1]
        flat = (np.arange(rows)[None, :] * k + votes).ravel()
        share = np.bincount(flat, minlength=rows * k).reshape(rows, k) / m
        out[start : start + BLOCK] = _entropy_rows(share)
    return out / np.log(min(m, k))


def mean_kl_divergence(committee: Any) -> np.ndarray:
    """Mean over members of ``KL(p_member || p_consensus)``, McCallum & Nigam (1998), in nats.

    The consensus is the members' mean distribution; 0 when every member says the same, larger the
    more they differ (at most ``log(n_members)``).

    Parameters
    ----------
    committee
        Probabilities of each member, shape ``(n_members, n_clips, n_classes)``; rows sum to 1.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_clips,)``.
    """
    c = _committee(committee)
    n = c.shape[1]
    out = np.empty(n)
    for start in _blocks(n):
        block = c[:, start : start + BLOCK]
        consensus = block.mean(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(block > 0, block * np.log(block / consensus[None]), 0.0)
        out[start : start + BLOCK] = terms.sum(axis=2).mean(axis=0)
    return np.maximum(out, 0.0)


DISAGREEMENT: dict[str, Callable[[Any], np.ndarray]] = {
    "vote_entropy": vote_entropy,
    "mean_kl": mean_kl_divergence,
}
"""Committee disagreement measures by name."""


def committee_probabilities(
    model: Any,
    X_labelled: Any,
    y_labelled: Any,
    X_pool: Any,
    *,
    n_folds: int = 5,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The committee of the fixed model: one copy fitted on each cross-validation training part.

    Folds are ``StratifiedKFold(n_splits, shuffle=True, random_state)`` over the labelled clips (the
    model's own cross-validation, so no extra design choices enter), with ``n_splits`` lowered to the
    size of the smallest class, and further, one at a time, while some member cannot be fitted (a
    ValueError from ``fit``: a class too small for the model's own internal folds).

    Parameters
    ----------
    model
        An unfitted scikit-learn classifier (e.g. :func:`analysis.model.build_pipeline`); each member is
        ``clone(model).fit(...)``.
    X_labelled, y_labelled
        Features and labels of the labelled clips.
    X_pool
        Features of the clips to score.
    n_folds, random_state
        Cross-validation of the labelled clips.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Probabilities of shape ``(n_members, n_pool, n_classes)`` with columns in the order of the
        sorted labelled classes (a class missing from a member's training part gets probability 0),
        and those classes.

    Raises
    ------
    ValueError
        If fewer than two classes are labelled, the smallest class has a single clip, or not even a
        two-member committee can be fitted.
    """
    y = np.asarray(y_labelled)
    classes, counts = np.unique(y, return_counts=True)
    if classes.size < 2:
        raise ValueError(f"a committee needs at least two labelled classes, found {classes.size}")
    most = min(int(n_folds), int(counts.min()))
    if most < 2:
        raise ValueError("a committee needs at least two labelled clips of every class")
    # Imported here: the queue's settings read this module on every command, and scikit-learn is
    # the slowest import of the app by far.
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold

    X = X_labelled.to_numpy() if isinstance(X_labelled, pd.DataFrame) else np.asarray(X_labelled)
    pool = X_pool.to_numpy() if isinstance(X_pool, pd.DataFrame) else np.asarray(X_pool)
    failure: ValueError | None = None
    # A model with its own internal cross-validation (the calibrated SVM) needs several clips of each
    # class in every training part: with few labels, fewer and larger parts are what it can fit.
    for splits in range(most, 1, -1):
        folds = StratifiedKFold(n_splits=splits, shuffle=True, random_state=random_state)
        out = np.zeros((splits, len(pool), classes.size))
        try:
            for member, (fit_rows, _) in enumerate(folds.split(X, y)):
                fitted = clone(model).fit(X[fit_rows], y[fit_rows])
                out[member][:, np.searchsorted(classes, fitted.classes_)] = fitted.predict_proba(pool)
        except ValueError as exc:
            failure = exc
            continue
        return out, classes
    raise ValueError(f"no committee of two or more members can be fitted: {failure}")


# --- diversity -------------------------------------------------------------------------------------


def standardized(points: Any, *, reference: Any | None = None) -> np.ndarray:
    """Columns centred and scaled by the mean and standard deviation of ``reference`` (default: the
    points themselves); NaN becomes the column mean, constant columns stay 0. The model standardises
    its features the same way, so distances here weigh every feature as the model does."""
    x = np.asarray(points, dtype=np.float64)
    ref = x if reference is None else np.asarray(reference, dtype=np.float64)
    if x.ndim != 2 or ref.ndim != 2 or ref.shape[1] != x.shape[1]:
        raise ValueError("features need shape (clips, features), the same number of columns everywhere")
    with np.errstate(all="ignore"):
        mean = np.nanmean(ref, axis=0) if len(ref) else np.zeros(x.shape[1])
        std = np.nanstd(ref, axis=0) if len(ref) else np.ones(x.shape[1])
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    z = (x - mean) / std
    return np.where(np.isfinite(z), z, 0.0)


def _sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances, shape ``(len(a), len(b))``, never negative."""
    d = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def k_center_greedy(
    points: Any,
    *,
    k: int,
    centres: Any | None = None,
    first: int = 0,
) -> np.ndarray:
    """Greedy k-center (core-set) pick: each new point is the one farthest from every point chosen so
    far and from ``centres``.

    This is the 2-approximation of the k-center problem used as the core-set strategy by Sener &
    Savarese (ICLR 2018). Its cost is ``O(k · n · d)`` time and ``O(n)`` memory beyond the points.

    Parameters
    ----------
    points
        Candidates, shape ``(n, d)``, already scaled as distances should be measured.
    k
        How many to pick (at most ``n``).
    centres
        Points already covered (the labelled clips), shape ``(m, d)``; None or empty for none, in which
        case the first pick is ``first``.
    first
        Index of the first pick when there are no centres.

    Returns
    -------
    numpy.ndarray
        ``k`` distinct indices into ``points``, in the order picked. Ties go to the lowest index, so
        the result is a function of the inputs alone.
    """
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"points need shape (n, d), got {x.shape}")
    n = len(x)
    if not 0 <= k <= n:
        raise ValueError(f"k must be between 0 and the number of points ({n}), got {k}")
    picked = np.empty(k, dtype=np.int64)
    if k == 0:
        return picked
    nearest = np.full(n, np.inf)
    c = None if centres is None else np.asarray(centres, dtype=np.float64)
    if c is not None and len(c):
        for start in range(0, len(c), 4096):
            nearest = np.minimum(nearest, _sq_distances(x, c[start : start + 4096]).min(axis=1))
        start_at = 0
    else:
        if not 0 <= first < n:
            raise ValueError(f"first must index the points, got {first}")
        picked[0] = first
        nearest = _sq_distances(x, x[first : first + 1])[:, 0]
        nearest[first] = -1.0  # as for every later pick: a duplicate of it may still be picked
        start_at = 1
    norms = (x * x).sum(axis=1)
    for i in range(start_at, k):
        nxt = int(np.argmax(nearest))
        picked[i] = nxt
        d = norms + norms[nxt] - 2.0 * (x @ x[nxt])
        np.minimum(nearest, np.maximum(d, 0.0), out=nearest)
        nearest[nxt] = -1.0  # never picked twice, even among duplicates
    return picked


def top_candidates(scores: Any, n: int, *, random_state: int | None = None) -> np.ndarray:
    """Indices of the ``n`` highest scores, highest first; equal scores in a seeded random order.

    NaN scores count as lowest. ``O(len(scores))`` plus a sort of the ``n`` chosen.
    """
    s = np.asarray(scores, dtype=np.float64)
    n = min(int(n), len(s))
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    rng = np.random.default_rng(random_state)
    tiebreak = rng.random(len(s))
    key = np.where(np.isnan(s), -np.inf, s)
    if n < len(s):
        # Everything strictly above the n-th largest score, plus enough of those equal to it.
        threshold = np.partition(key, len(s) - n)[len(s) - n]
        above = np.flatnonzero(key > threshold)
        equal = np.flatnonzero(key == threshold)
        equal = equal[np.argsort(-tiebreak[equal], kind="stable")][: n - above.size]
        chosen = np.concatenate([above, equal])
    else:
        chosen = np.arange(len(s))
    order = np.lexsort((-tiebreak[chosen], -key[chosen]))
    return chosen[order]


def diverse_pick(
    scores: Any,
    features: Any,
    *,
    n: int,
    candidates: int | None = None,
    labelled_features: Any | None = None,
    max_centres: int = 20_000,
    random_state: int | None = None,
) -> np.ndarray:
    """Uncertainty + diversity: a k-center pick of ``n`` clips among the most uncertain ``candidates``.

    The candidates (``10 · n`` by default) are the highest ``scores``; within them each pick is the
    clip farthest, in standardised feature space, from every labelled clip and every clip picked
    before it, so a batch does not spend labels on near-duplicates of one confusing region. With no
    labelled clips the first pick is the most uncertain candidate.

    Parameters
    ----------
    scores
        Uncertainty per unlabelled clip, shape ``(n_clips,)`` (higher = more uncertain).
    features
        Features of the same clips, shape ``(n_clips, d)``; NaN allowed.
    n
        Clips to pick.
    candidates
        Size of the candidate pool; at least ``n``.
    labelled_features
        Features of the labelled clips, shape ``(m, d)``, or None. At most ``max_centres`` of them are
        used (a seeded random subset), which bounds the cost on large projects.
    random_state
        Breaks ties in the scores and draws the subset of labelled clips; the pick is a function of
        the inputs and this seed.

    Returns
    -------
    numpy.ndarray
        ``min(n, n_clips)`` distinct indices into ``scores``, in the order picked.
    """
    s = np.asarray(scores, dtype=np.float64)
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) != len(s):
        raise ValueError(f"features need one row per score: {f.shape} for {len(s)} scores")
    n = min(int(n), len(s))
    pool = top_candidates(
        s, max(n, candidates if candidates is not None else 10 * n), random_state=random_state
    )
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    centres = None
    if labelled_features is not None and len(labelled_features):
        lab = np.asarray(labelled_features, dtype=np.float64)
        if len(lab) > max_centres:
            rng = np.random.default_rng([0 if random_state is None else random_state, 1])
            lab = lab[np.sort(rng.choice(len(lab), max_centres, replace=False))]
        reference = np.concatenate([f[pool], lab])
        centres = standardized(lab, reference=reference)
        points = standardized(f[pool], reference=reference)
    else:
        points = standardized(f[pool])
    return pool[k_center_greedy(points, k=n, centres=centres, first=0)]


# --- random share and queue order ------------------------------------------------------------------


@dataclass(frozen=True)
class QueuePlan:
    """An order of clips to label, and what it means for the queue.

    Attributes
    ----------
    order
        Indices of the clips, first to label first.
    priority
        Per clip (aligned with the input, not with ``order``): ``n_clips - position``, so the first clip
        has priority ``n_clips``, the last 1, and sorting by priority descending gives ``order``.
    random_lane
        Per clip: True if the random share placed it. Those clips are a simple random sample of all
        the clips (chosen independently of their scores), so statistics over the labelled ones among
        them estimate the whole pool without the bias the strategy's choices bring.
    """

    order: np.ndarray
    priority: np.ndarray
    random_lane: np.ndarray


def id_draws(ids: Any, *, random_state: int | None = None) -> np.ndarray:
    """Two uniform numbers in ``[0, 1)`` per integer id, a fixed function of the id and the seed
    (the SplitMix64 finaliser over ``id`` mixed with the seed): ``(len(ids), 2)``.

    A clip draws the same numbers in every scoring, whatever other clips the pool holds."""
    x = np.asarray(ids, dtype=np.int64).astype(np.uint64)
    seed = np.uint64((random_state or 0) & 0xFFFFFFFFFFFFFFFF)
    out = np.empty((len(x), 2), dtype=np.float64)
    with np.errstate(over="ignore"):
        for j in range(2):
            z = x * np.uint64(2) + np.uint64(j) + seed * np.uint64(0x9E3779B97F4A7C15)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z = z ^ (z >> np.uint64(31))
            out[:, j] = (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return out


def mix_with_random(
    order: Any, *, random_share: float, random_state: int | None = None, draws: Any | None = None
) -> QueuePlan:
    """Give a share of the queue to a random sample of the clips, spread evenly through it.

    Each clip joins the random lane independently with probability ``random_share``; the random lane
    is shuffled, the strategy lane keeps its order, and the two are interleaved so that, at any point
    of the queue, about ``random_share`` of the clips so far came from the random lane.

    Parameters
    ----------
    order
        A permutation of ``range(n_clips)``: the strategy's order, first to label first.
    random_share
        In ``[0, 1]``; 0 returns ``order`` unchanged, 1 a random order.
    random_state
        Seed of the lane draw and shuffle.
    draws
        Optional ``(n_clips, 2)`` uniform numbers in ``[0, 1)`` per clip, used instead of the seed: a
        clip is in the random lane if its first is below ``random_share``, and the lane is ordered by
        the second. Drawn from the clips' ids (:func:`id_draws`), a clip keeps its lane and its place
        in it when other clips come or go.

    Returns
    -------
    QueuePlan
    """
    if not 0.0 <= random_share <= 1.0:
        raise ValueError(f"random_share must be between 0 and 1, got {random_share}")
    o = np.asarray(order, dtype=np.int64)
    n = len(o)
    if n and not np.array_equal(np.sort(o), np.arange(n)):
        raise ValueError("order must be a permutation of the clip indices")
    if draws is not None:
        d = np.asarray(draws, dtype=np.float64)
        in_random = d[:, 0] < random_share
        lane = np.flatnonzero(in_random)
        random_part = lane[np.argsort(d[lane, 1], kind="stable")]
        strategy_part = o[~in_random[o]]
        return _plan(_interleave(strategy_part, random_part), in_random)
    rng = np.random.default_rng(random_state)
    in_random = rng.random(n) < random_share
    lane_of_position = in_random[o]
    strategy_part = o[~lane_of_position]
    random_part = rng.permutation(o[lane_of_position])
    return _plan(_interleave(strategy_part, random_part), in_random)


def _interleave(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Two disjoint index arrays merged evenly, each keeping its order: the j-th of a lane of size m
    sits at ``(j + 0.5) / m`` of the way through."""
    keys = np.concatenate(
        [
            (np.arange(first.size) + 0.5) / max(first.size, 1),
            (np.arange(second.size) + 0.5) / max(second.size, 1),
        ]
    )
    return np.concatenate([first, second]).astype(np.int64)[np.argsort(keys, kind="stable")]


def _plan(order: np.ndarray, random_lane: np.ndarray) -> QueuePlan:
    n = len(order)
    priority = np.empty(n, dtype=np.int64)
    priority[order] = n - np.arange(n)
    return QueuePlan(order=order, priority=priority, random_lane=random_lane)


# --- strategies ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Strategy:
    """How to choose clips to label.

    Attributes
    ----------
    name
        Identifier (the project setting's value).
    title
        What people call it.
    measure
        ``"random"``, an :data:`UNCERTAINTY` name (needs the model's probabilities) or a
        :data:`DISAGREEMENT` name (needs the committee's probabilities).
    diversity
        Pick each batch with :func:`diverse_pick` among the most uncertain (needs features).
    random_share
        Share of clips taken at random (:func:`mix_with_random`).
    candidates_per_pick
        Size of the diversity candidate pool per clip picked.
    """

    name: str
    title: str
    measure: str
    diversity: bool = False
    random_share: float = 0.0
    candidates_per_pick: int = 10

    def __post_init__(self) -> None:
        if self.measure != "random" and self.measure not in UNCERTAINTY and self.measure not in DISAGREEMENT:
            known = ", ".join(["random", *UNCERTAINTY, *DISAGREEMENT])
            raise ValueError(f"unknown measure {self.measure!r}; expected one of {known}")
        if not 0.0 <= self.random_share <= 1.0:
            raise ValueError(f"random_share must be between 0 and 1, got {self.random_share}")
        if self.diversity and self.measure == "random":
            raise ValueError(
                "diversity picks among the most uncertain clips; it needs an uncertainty measure"
            )
        if self.candidates_per_pick < 1:
            raise ValueError("candidates_per_pick must be at least 1")

    @property
    def needs_model(self) -> bool:
        """Whether the model's probabilities of the unlabelled clips are needed."""
        return self.measure in UNCERTAINTY

    @property
    def needs_committee(self) -> bool:
        """Whether the committee's probabilities are needed (:func:`committee_probabilities`)."""
        return self.measure in DISAGREEMENT

    def with_random_share(self, share: float) -> Strategy:
        """The same strategy with ``share`` of the clips taken at random (a new name says so)."""
        return Strategy(
            name=f"{self.name}+random{round(100 * share)}" if share else self.name,
            title=f"{self.title}, {100 * share:.0f}% random" if share else self.title,
            measure=self.measure,
            diversity=self.diversity,
            random_share=share,
            candidates_per_pick=self.candidates_per_pick,
        )


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("random", "random", "random"),
        Strategy("margin", "uncertainty (margin)", "margin"),
        Strategy("entropy", "uncertainty (entropy)", "entropy"),
        Strategy("least_confidence", "uncertainty (least confidence)", "least_confidence"),
        Strategy("vote_entropy", "committee disagreement (vote entropy)", "vote_entropy"),
        Strategy("mean_kl", "committee disagreement (mean KL divergence)", "mean_kl"),
        Strategy("margin_diversity", "uncertainty + diversity (margin, k-center)", "margin", diversity=True),
    )
}
"""The strategies by name; ``STRATEGIES["margin"].with_random_share(0.2)`` mixes in a random share."""


def strategy_scores(
    strategy: Strategy, *, proba: Any | None = None, committee: Any | None = None, n_clips: int | None = None
) -> np.ndarray:
    """The score per clip that ``strategy`` ranks by (higher first); zeros for ``random``.

    Raises
    ------
    ValueError
        If the probabilities the strategy needs are missing.
    """
    if strategy.needs_model:
        if proba is None:
            raise ValueError(f"strategy {strategy.name!r} needs the model's probabilities")
        return UNCERTAINTY[strategy.measure](proba)
    if strategy.needs_committee:
        if committee is None:
            raise ValueError(f"strategy {strategy.name!r} needs the committee's probabilities")
        return DISAGREEMENT[strategy.measure](committee)
    size = n_clips if n_clips is not None else _size(proba, committee)
    return np.zeros(size)


def _size(proba: Any | None, committee: Any | None) -> int:
    if proba is not None:
        return len(proba)
    if committee is not None:
        return int(np.shape(committee)[1])
    raise ValueError("the number of clips is unknown: give n_clips, proba or committee")


def select_batch(
    strategy: Strategy,
    n: int,
    *,
    proba: Any | None = None,
    committee: Any | None = None,
    features: Any | None = None,
    labelled_features: Any | None = None,
    n_clips: int | None = None,
    random_state: int | None = None,
) -> np.ndarray:
    """The next ``n`` unlabelled clips to label under ``strategy``.

    ``round(random_share · n)`` of them are a uniform random sample; the rest are the highest scores
    (or, with diversity, a k-center pick among the most uncertain) of the clips not already drawn.

    Parameters
    ----------
    strategy
        One of :data:`STRATEGIES` or a variant.
    n
        Batch size; fewer are returned when fewer clips are left.
    proba
        Model probabilities of the unlabelled clips, ``(n_clips, n_classes)``.
    committee
        Committee probabilities, ``(n_members, n_clips, n_classes)``.
    features, labelled_features
        Features of the unlabelled and labelled clips (diversity only).
    n_clips
        Number of unlabelled clips when the strategy needs no probabilities (``random``).
    random_state
        Seed of the random share, the ties and the diversity pick.

    Returns
    -------
    numpy.ndarray
        Distinct indices into the unlabelled clips, in the order to label them.
    """
    scores = strategy_scores(strategy, proba=proba, committee=committee, n_clips=n_clips)
    total = len(scores)
    n = min(int(n), total)
    rng = np.random.default_rng(random_state)
    n_random = n if strategy.measure == "random" else round(strategy.random_share * n)
    random_pick = rng.choice(total, size=n_random, replace=False) if n_random else np.empty(0, np.int64)
    rest = n - n_random
    if rest == 0:
        return random_pick.astype(np.int64)
    remaining = np.setdiff1d(np.arange(total), random_pick)
    seed = int(rng.integers(2**31))
    if strategy.diversity:
        if features is None:
            raise ValueError(f"strategy {strategy.name!r} needs the clips' features")
        f = np.asarray(features, dtype=np.float64)
        chosen = remaining[
            diverse_pick(
                scores[remaining],
                f[remaining],
                n=rest,
                candidates=strategy.candidates_per_pick * rest,
                labelled_features=labelled_features,
                random_state=seed,
            )
        ]
    else:
        chosen = remaining[top_candidates(scores[remaining], rest, random_state=seed)]
    # Interleaved, so that a partly labelled batch has its random share too.
    return _interleave(chosen, random_pick)


def queue_priorities(
    strategy: Strategy,
    *,
    proba: Any | None = None,
    committee: Any | None = None,
    features: Any | None = None,
    labelled_features: Any | None = None,
    n_clips: int | None = None,
    lead: int = 1000,
    random_state: int | None = None,
    draws: Any | None = None,
) -> QueuePlan:
    """A queue order for every unlabelled clip under ``strategy``, as integer priorities.

    Clips are ranked by the strategy's score, highest first (``random``: a seeded shuffle). With
    diversity, the first ``lead`` clips are a :func:`diverse_pick` and the rest follow by score: the
    pick is redone whenever scores are refreshed, which happens long before a team labels ``lead``
    clips. Finally ``random_share`` of the queue is given to a random sample (:func:`mix_with_random`).

    This is what a background job computes after each training run (or every N new labels) and
    writes to the clips' priorities; nothing here runs per request.

    Parameters
    ----------
    strategy
        One of :data:`STRATEGIES` or a variant.
    proba, committee, features, labelled_features, n_clips
        As for :func:`select_batch`, for all unlabelled clips.
    lead
        Clips placed by the diversity pick (diversity strategies only).
    random_state
        Seed of the shuffle, ties, diversity and random share.
    draws
        Per-clip uniform numbers for the random share and the ``random`` order's shuffle, as for
        :func:`mix_with_random` (default: drawn from ``random_state``).

    Returns
    -------
    QueuePlan
        ``priority[i]`` is the priority of unlabelled clip ``i`` (``n_clips`` for the first to label,
        1 for the last).
    """
    scores = strategy_scores(strategy, proba=proba, committee=committee, n_clips=n_clips)
    total = len(scores)
    rng = np.random.default_rng(random_state)
    if strategy.measure == "random":
        if draws is not None:
            shuffled = np.argsort(np.asarray(draws, dtype=np.float64)[:, 1], kind="stable")
            return _plan(shuffled, np.ones(total, dtype=bool))
        return _plan(rng.permutation(total), np.ones(total, dtype=bool))
    seeds = rng.integers(2**31, size=3)
    order = top_candidates(scores, total, random_state=int(seeds[0]))
    if strategy.diversity and lead > 0 and total:
        if features is None:
            raise ValueError(f"strategy {strategy.name!r} needs the clips' features")
        first = diverse_pick(
            scores,
            features,
            n=min(lead, total),
            candidates=strategy.candidates_per_pick * lead,
            labelled_features=labelled_features,
            random_state=int(seeds[1]),
        )
        rest = np.ones(total, dtype=bool)
        rest[first] = False
        order = np.concatenate([first, order[rest[order]]])
    if strategy.random_share == 0:
        return _plan(order, np.zeros(total, dtype=bool))
    return mix_with_random(order, random_share=strategy.random_share, random_state=int(seeds[2]), draws=draws)


#: Roughly how many priority levels :func:`bucketed_priorities` keeps for a large queue.
PRIORITY_LEVELS = 1024


def bucketed_priorities(priority: Any, *, levels: int = PRIORITY_LEVELS) -> np.ndarray:
    """Queue priorities (``n`` for the first to label down to 1) in coarser, equal-width steps.

    The first ``w`` clips of the queue share the top level, the next ``w`` the one below, and so on,
    counted from the end of the queue (the last ``w`` clips have level 1), where ``w`` is the largest
    power of two at most ``n / levels`` (1 for a queue of fewer than ``2 * levels`` clips: the ranks
    themselves). Sorting by level keeps the queue's order between steps; within a step the queue
    takes the oldest clip first, which among clips the strategy ranked within ``w`` of each other is
    no worse a choice than its tie-breaks.

    What a database gains: the levels are ``n / w`` distinct values instead of ``n``, so the rows
    written by a scoring land in a few hundred places of each index that sorts by priority instead
    of anywhere; and, counted from the end and in steps of a power of two, a clip's level stays put
    when clips at the head of the queue are labelled and the queue shrinks.

    Parameters
    ----------
    priority
        Integer priorities, a permutation of ``1..n`` (:attr:`QueuePlan.priority`).
    levels
        About how many distinct values to keep (at least 1).

    Returns
    -------
    numpy.ndarray
        ``1 + (priority - 1) // w``, aligned with ``priority``.
    """
    p = np.asarray(priority, dtype=np.int64)
    if levels < 1:
        raise ValueError(f"levels must be at least 1, got {levels}")
    n = len(p)
    width = 1 << max(0, int(np.floor(np.log2(n / levels)))) if n > levels else 1
    return 1 + (p - 1) // width


def probability_matrix(predictions: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """The ``proba_<class>`` columns of a run's predictions (:class:`analysis.model.RunResult`) as a
    ``(n_clips, n_classes)`` array, and the class names in column order.

    Raises
    ------
    ValueError
        If the frame has fewer than two ``proba_`` columns.
    """
    cols = [c for c in predictions.columns if str(c).startswith("proba_")]
    if len(cols) < 2:
        raise ValueError("the predictions have fewer than two proba_<class> columns")
    return predictions[cols].to_numpy(dtype=np.float64), [str(c)[len("proba_") :] for c in cols]


def uncertainty_table(proba: pd.DataFrame, *, committee: Any | None = None) -> pd.DataFrame:
    """Every score of every clip, for display: one row per row of ``proba`` (same index).

    Parameters
    ----------
    proba
        Class probabilities, one column per class.
    committee
        Optional committee probabilities ``(n_members, len(proba), n_classes)``.

    Returns
    -------
    pandas.DataFrame
        Columns ``predicted``, ``confidence``, ``margin``, ``entropy``, ``least_confidence``, and with a
        committee ``vote_entropy`` and ``mean_kl``.
    """
    p = _proba(proba.to_numpy(dtype=np.float64))
    classes = np.asarray(proba.columns)
    out = pd.DataFrame(
        {
            "predicted": classes[p.argmax(axis=1)],
            "confidence": p.max(axis=1),
            **{name: fn(p) for name, fn in UNCERTAINTY.items()},
        },
        index=proba.index,
    )
    if committee is not None:
        c = _committee(committee)
        if c.shape[1] != len(proba):
            raise ValueError(f"the committee scores {c.shape[1]} clips, the probabilities {len(proba)}")
        for name, fn in DISAGREEMENT.items():
            out[name] = fn(c)
    return out


def clip_priorities(
    clip_ids: Any,
    strategy: Strategy | None,
    *,
    proba: pd.DataFrame | None = None,
    committee: Any | None = None,
    features: pd.DataFrame | None = None,
    labelled_features: Any | None = None,
    lead: int = 1000,
    random_state: int | None = None,
) -> tuple[pd.Series, pd.Series]:
    """Queue priorities of a project's unlabelled clips under ``strategy``, by clip id.

    The mapping a queue-scoring job writes: :func:`queue_priorities` over ``clip_ids``, with the
    model's probabilities looked up by clip id. A clip the model has not scored (imported after the
    run) gets uniform probabilities, i.e. the highest uncertainty: nothing is known about it. Without
    a strategy, or without probabilities for a strategy that needs them, the order is random (as a
    queue without a trained model hands clips out).

    Parameters
    ----------
    clip_ids
        The clips to order (unique).
    strategy
        One of :data:`STRATEGIES` (maybe with a random share), or None for a random order.
    proba
        Class probabilities, index ``clip_id``, one column per class; may miss clips or hold others.
    committee
        Committee probabilities ``(n_members, len(clip_ids), n_classes)`` aligned with ``clip_ids``.
    features
        Features, index ``clip_id`` (diversity only); clips missing from it get the column means.
    labelled_features
        Features of the labelled clips (diversity only).
    lead, random_state
        As for :func:`queue_priorities`. The random share and the random order draw from the clip
        ids (:func:`id_draws`), so a clip keeps its lane and its place in it from one scoring to the
        next.

    Returns
    -------
    (pandas.Series, pandas.Series)
        Priority (``len(clip_ids)`` for the first to label down to 1) and whether the random share
        placed the clip, both indexed by ``clip_id``.
    """
    ids = pd.Index(np.asarray(clip_ids), name="clip_id")
    if ids.has_duplicates:
        raise ValueError("clip ids must be unique")
    n = len(ids)
    use = strategy
    p = None
    if use is not None and use.needs_model:
        if proba is None or proba.shape[1] < 2:
            use = None
        else:
            k = proba.shape[1]
            p = np.array(proba.reindex(ids).to_numpy(dtype=np.float64))
            p[np.isnan(p).any(axis=1)] = 1.0 / k
    if use is not None and use.needs_committee and committee is None:
        use = None
    f = None
    if use is not None and use.diversity:
        if features is None:
            raise ValueError(f"strategy {use.name!r} needs the clips' features")
        f = features.reindex(ids).to_numpy(dtype=np.float64, copy=True)
    plan = queue_priorities(
        use if use is not None else STRATEGIES["random"],
        proba=p,
        committee=committee,
        features=f,
        labelled_features=labelled_features,
        n_clips=n,
        lead=lead,
        random_state=random_state,
        draws=id_draws(ids.to_numpy(), random_state=random_state),
    )
    return (
        pd.Series(plan.priority, index=ids, name="priority"),
        pd.Series(plan.random_lane, index=ids, name="random_lane"),
    )
