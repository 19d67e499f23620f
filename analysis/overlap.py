"""Adaptive overlap: how reliable each annotator is, and whether a clip needs another annotation.

Call :func:`dawid_skene` with the annotations (long: ``clip_id, annotator_id, label``) to estimate each
annotator's confusion matrix and the classes' shares by EM (Dawid & Skene 1979); call
:func:`overlap_decisions` with the annotations of open clips, that estimate and optionally the model's
probabilities to learn, per clip, the posterior probability of its current majority label and whether
another annotation is needed: it is while that probability is below the target final-label accuracy
and the clip has fewer than ``max_k`` annotations (and always below ``min_k``). :func:`label_posterior`
does the same for one clip.

The posterior of a clip's true class ``c`` given annotations ``(a_r, l_r)`` is

    P(c | annotations) ∝ prior(c) · Π_r π[a_r, c, l_r]

where ``π[a, c, l]`` is the probability that annotator ``a`` answers ``l`` when the truth is ``c``,
and the prior is the class shares, or a mixture of them with the model's probabilities for the clip
(``model_weight``). A first annotation agreeing with a confident model is enough; one that disagrees
with it, comes from an unreliable annotator or is marked unsure is not. Annotators the estimate has
not seen are taken to be average (the confusion matrix pooled over all annotators).

A job applying adaptive overlap would estimate :func:`dawid_skene` on the project's annotations (after
each round of labelling, not per request), call :func:`overlap_decisions` on the open clips, and set
each clip's required annotations to its ``n_annotations + 1`` where ``more_needed`` and to
``n_annotations`` where not, so the queue's k-overlap invariants hold unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class AnnotatorModel:
    """What :func:`dawid_skene` estimated.

    Attributes
    ----------
    classes
        Class labels, in the order of every class axis below.
    annotators
        Annotator ids, in the order of :attr:`confusion`.
    priors
        Estimated share of each class, shape ``(n_classes,)``.
    confusion
        ``confusion[a, c, l]``: probability that annotator ``a`` answers ``l`` when the truth is ``c``;
        shape ``(n_annotators, n_classes, n_classes)``, rows sum to 1.
    pooled
        The confusion matrix of an average annotator (annotators weighted by their number of
        annotations), for annotators not in :attr:`annotators`.
    posteriors
        One row per clip (index ``clip_id``), one column per class: P(true class | its annotations).
    n_annotations
        Annotations per annotator (the weights of :attr:`pooled`).
    n_iter
        EM iterations run.
    converged
        Whether the parameters changed by less than ``tol`` in the last iteration.
    log_likelihood
        Log-likelihood of the annotations under the estimate (equation 2.7 of the paper).
    """

    classes: np.ndarray
    annotators: pd.Index
    priors: np.ndarray
    confusion: np.ndarray
    pooled: np.ndarray
    posteriors: pd.DataFrame
    n_annotations: np.ndarray
    n_iter: int
    converged: bool
    log_likelihood: float

    def accuracy(self) -> pd.Series:
        """Each annotator's expected accuracy: ``sum_c priors[c] · confusion[a, c, c]``."""
        diagonal = np.diagonal(self.confusion, axis1=1, axis2=2)
        return pd.Series(diagonal @ self.priors, index=self.annotators, name="accuracy")

    def labels(self) -> pd.Series:
        """The likeliest class of each clip."""
        best = self.posteriors.to_numpy().argmax(axis=1)
        return pd.Series(self.classes[best], index=self.posteriors.index, name="label")


_COLUMNS = ("clip_id", "annotator_id", "label")


def _codes(annotations: pd.DataFrame, classes: Any | None) -> tuple[np.ndarray, ...]:
    missing = [c for c in _COLUMNS if c not in annotations.columns]
    if missing:
        raise ValueError(f"annotations need columns {', '.join(_COLUMNS)}; missing {', '.join(missing)}")
    frame = annotations.loc[:, list(_COLUMNS)]
    if frame.isna().any().any():
        raise ValueError("annotations have missing clip, annotator or label values")
    if classes is None:
        class_values = np.unique(frame["label"].to_numpy())
    else:
        class_values = np.asarray(list(classes))
        unknown = sorted(set(frame["label"]) - set(class_values.tolist()), key=str)
        if unknown:
            raise ValueError(f"labels not among the classes: {', '.join(map(str, unknown[:5]))}")
    if class_values.size < 2:
        raise ValueError("need at least two classes")
    clip_codes, clips = pd.factorize(frame["clip_id"], sort=True)
    annotator_codes, annotators = pd.factorize(frame["annotator_id"], sort=True)
    label_codes = pd.Index(class_values).get_indexer(frame["label"])
    return clip_codes, clips, annotator_codes, annotators, label_codes, class_values


def _log(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(x)


def _normalise_log(log_post: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of log-probabilities to probabilities, and each row's log normaliser."""
    top = log_post.max(axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    weights = np.exp(log_post - top)
    total = weights.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        log_norm = (np.log(total) + top)[:, 0]
    safe = np.where(total > 0, total, 1.0)
    return weights / safe, log_norm


def _sum_rows_into_clips(clip_codes: np.ndarray, values: np.ndarray, n_clips: int) -> np.ndarray:
    """``out[i, c] = sum of values[r, c] over rows r of clip i`` (values may hold -inf)."""
    out = np.empty((n_clips, values.shape[1]))
    for c in range(values.shape[1]):
        out[:, c] = np.bincount(clip_codes, weights=values[:, c], minlength=n_clips)
    return out


def dawid_skene(
    annotations: pd.DataFrame,
    *,
    classes: Any | None = None,
    max_iter: int = 200,
    tol: float = 1e-7,
    smoothing: float = 0.01,
) -> AnnotatorModel:
    """Annotator confusion matrices and class shares by the EM algorithm of Dawid & Skene (1979).

    Starts from each clip's share of votes (the paper's equation 3.1), then alternates the M-step
    (class shares and confusion matrices from the current class probabilities of the clips,
    equations 2.3-2.4) and the E-step (class probabilities of the clips, equation 2.5) until no
    parameter moves by more than ``tol``. An annotator may label a clip more than once (each answer
    counts, as the paper's first observer's three do).

    Parameters
    ----------
    annotations
        Long frame with columns ``clip_id``, ``annotator_id``, ``label`` (other columns are ignored).
    classes
        All class labels, including ones nobody used; default the labels present.
    max_iter, tol
        Stopping rule.
    smoothing
        Pseudo-count added to every cell of every confusion matrix before its rows are normalised, so an
        annotator seen making no mistake on a class is not taken to be infallible. 0 is the paper's
        maximum likelihood estimate.

    Returns
    -------
    AnnotatorModel

    Raises
    ------
    ValueError
        If columns are missing, values are missing, fewer than two classes exist, or a label is not
        among ``classes``.
    """
    if smoothing < 0:
        raise ValueError(f"smoothing must not be negative, got {smoothing}")
    clip_codes, clips, annotator_codes, annotators, label_codes, class_values = _codes(annotations, classes)
    n, a, k = len(clips), len(annotators), class_values.size
    votes = np.zeros((n, k))
    np.add.at(votes, (clip_codes, label_codes), 1.0)
    posterior = votes / votes.sum(axis=1, keepdims=True)
    cell = annotator_codes * k + label_codes
    priors = np.full(k, 1.0 / k)
    confusion = np.full((a, k, k), 1.0 / k)
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        # M-step: counts[a, c, l] = sum over a's answers l of P(clip is c).
        weights = posterior[clip_codes]  # (rows, k)
        counts = np.stack(
            [np.bincount(cell, weights=weights[:, c], minlength=a * k).reshape(a, k) for c in range(k)],
            axis=1,
        ).astype(np.float64) + float(smoothing)
        totals = counts.sum(axis=2, keepdims=True)
        new_confusion = np.where(totals > 0, counts / np.where(totals > 0, totals, 1.0), 1.0 / k)
        new_priors = posterior.mean(axis=0)
        # E-step.
        log_post = _log(new_priors)[None, :] + _sum_rows_into_clips(
            clip_codes, _log(new_confusion)[annotator_codes, :, label_codes], n
        )
        posterior, _ = _normalise_log(log_post)
        change = max(np.abs(new_confusion - confusion).max(), np.abs(new_priors - priors).max())
        confusion, priors = new_confusion, new_priors
        if change < tol:
            converged = True
            break
    log_post = _log(priors)[None, :] + _sum_rows_into_clips(
        clip_codes, _log(confusion)[annotator_codes, :, label_codes], n
    )
    posterior, log_norm = _normalise_log(log_post)
    per_annotator = np.bincount(annotator_codes, minlength=a).astype(np.float64)
    pooled = np.tensordot(per_annotator / per_annotator.sum(), confusion, axes=1)
    return AnnotatorModel(
        classes=class_values,
        annotators=pd.Index(annotators, name="annotator_id"),
        priors=priors,
        confusion=confusion,
        pooled=pooled,
        posteriors=pd.DataFrame(
            posterior, index=pd.Index(clips, name="clip_id"), columns=pd.Index(class_values, name="class")
        ),
        n_annotations=per_annotator,
        n_iter=n_iter,
        converged=converged,
        log_likelihood=float(log_norm.sum()),
    )


def _prior_rows(
    model: AnnotatorModel, clips: pd.Index, model_proba: pd.DataFrame | None, model_weight: float
) -> np.ndarray:
    base = np.broadcast_to(model.priors, (len(clips), model.classes.size)).copy()
    if model_proba is None or model_weight == 0:
        return base
    if not 0.0 <= model_weight <= 1.0:
        raise ValueError(f"model_weight must be between 0 and 1, got {model_weight}")
    by_name = {str(c): c for c in model_proba.columns}
    missing = [c for c in model.classes if str(c) not in by_name]
    if missing:
        raise ValueError(f"the model's probabilities have no column for classes {missing[:5]}")
    proba = np.array(model_proba[[by_name[str(c)] for c in model.classes]].reindex(clips), dtype=np.float64)
    known = ~np.isnan(proba).any(axis=1)
    total = proba[known].sum(axis=1, keepdims=True)
    proba[known] = proba[known] / np.where(total > 0, total, 1.0)
    base[known] = (1 - model_weight) * base[known] + model_weight * proba[known]
    return base


def _likelihood_rows(
    model: AnnotatorModel,
    annotators: np.ndarray,
    labels: np.ndarray,
    unsure: np.ndarray,
    unsure_weight: float,
) -> np.ndarray:
    """``P(answer | true class)`` per annotation, shape ``(rows, n_classes)``."""
    k = model.classes.size
    label_codes = pd.Index(model.classes).get_indexer(labels)
    if (label_codes < 0).any():
        bad = sorted({str(v) for v in np.asarray(labels)[label_codes < 0]})
        raise ValueError(f"labels not among the estimate's classes: {', '.join(bad[:5])}")
    who = model.annotators.get_indexer(annotators)
    table = np.concatenate([model.confusion, model.pooled[None]], axis=0)  # last: the average annotator
    who = np.where(who < 0, len(model.annotators), who)
    rows = table[who, :, label_codes]
    if unsure.any():
        rows[unsure] = unsure_weight * rows[unsure] + (1 - unsure_weight) / k
    return rows


def overlap_decisions(
    annotations: pd.DataFrame,
    *,
    model: AnnotatorModel,
    model_proba: pd.DataFrame | None = None,
    model_weight: float = 0.5,
    min_k: int = 1,
    max_k: int = 3,
    target: float = 0.95,
    unsure_weight: float = 0.5,
) -> pd.DataFrame:
    """For each annotated clip: the posterior of its majority label and whether to ask for another.

    Parameters
    ----------
    annotations
        Long frame ``clip_id, annotator_id, label`` and optionally ``unsure`` (bool): the annotations
        so far of the clips to decide on.
    model
        Annotator reliabilities from :func:`dawid_skene` (on all annotations of the project).
    model_proba
        The model's class probabilities, index ``clip_id``, one column per class (as
        :func:`analysis.active.probability_matrix` gives them, named by class); clips missing from it
        use the class shares alone.
    model_weight
        Prior = ``(1 - model_weight) · class shares + model_weight · model probabilities``: how far the
        model is trusted (a mixture, so a confidently wrong model cannot rule a class out).
    min_k, max_k
        Annotations every clip gets at least, and at most.
    target
        Target final-label accuracy: another annotation is asked for while the posterior probability
        of the majority label is below it.
    unsure_weight
        An answer marked unsure counts as ``unsure_weight · π[a, c, ·] + (1 - unsure_weight) / K``,
        i.e. as weaker evidence.

    Returns
    -------
    pandas.DataFrame
        Index ``clip_id``; columns ``n_annotations``, ``majority`` (most votes, ties to the likelier
        class), ``majority_posterior``, ``label`` (the likeliest class) and ``posterior`` (its
        probability), ``more_needed`` (bool) and ``reason``.
    """
    if not 1 <= min_k <= max_k:
        raise ValueError(f"need 1 <= min_k <= max_k, got min_k={min_k}, max_k={max_k}")
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target must be in (0, 1], got {target}")
    if not 0.0 <= unsure_weight <= 1.0:
        raise ValueError(f"unsure_weight must be between 0 and 1, got {unsure_weight}")
    missing = [c for c in _COLUMNS if c not in annotations.columns]
    if missing:
        raise ValueError(f"annotations need columns {', '.join(_COLUMNS)}; missing {', '.join(missing)}")
    clip_codes, clips = pd.factorize(annotations["clip_id"], sort=True)
    clips = pd.Index(clips, name="clip_id")
    unsure = (
        annotations["unsure"].astype("boolean").fillna(False).to_numpy(dtype=bool)
        if "unsure" in annotations.columns
        else np.zeros(len(annotations), dtype=bool)
    )
    rows = _likelihood_rows(
        model, annotations["annotator_id"].to_numpy(), annotations["label"].to_numpy(), unsure, unsure_weight
    )
    log_post = _log(_prior_rows(model, clips, model_proba, model_weight)) + _sum_rows_into_clips(
        clip_codes, _log(rows), len(clips)
    )
    posterior, _ = _normalise_log(log_post)
    k = model.classes.size
    votes = np.bincount(
        clip_codes * k + pd.Index(model.classes).get_indexer(annotations["label"].to_numpy()),
        minlength=len(clips) * k,
    ).reshape(len(clips), k)
    majority = np.argmax(votes + 0.5 * posterior, axis=1)
    best = posterior.argmax(axis=1)
    n_ann = votes.sum(axis=1)
    p_major = posterior[np.arange(len(clips)), majority]
    below_min = n_ann < min_k
    at_max = n_ann >= max_k
    unsure_enough = p_major < target
    more = below_min | (unsure_enough & ~at_max)
    reason = np.where(
        below_min,
        f"fewer than {min_k} annotations",
        np.where(
            ~unsure_enough,
            "majority label likely enough",
            np.where(at_max, f"{max_k} annotations reached", "majority label not likely enough"),
        ),
    )
    return pd.DataFrame(
        {
            "n_annotations": n_ann,
            "majority": model.classes[majority],
            "majority_posterior": p_major,
            "label": model.classes[best],
            "posterior": posterior[np.arange(len(clips)), best],
            "more_needed": more,
            "reason": reason,
        },
        index=clips,
    )


def label_posterior(
    labels: Any,
    annotators: Any,
    *,
    model: AnnotatorModel,
    prior: Any | None = None,
    unsure: Any | None = None,
    unsure_weight: float = 0.5,
) -> pd.Series:
    """P(true class | one clip's annotations), by Bayes' rule with the annotators' confusion matrices.

    Parameters
    ----------
    labels, annotators
        The clip's answers and who gave them (equal lengths; may be empty).
    model
        Annotator reliabilities from :func:`dawid_skene`.
    prior
        Prior over ``model.classes`` (e.g. the model's probabilities mixed with the class shares);
        default the class shares.
    unsure, unsure_weight
        Which answers were marked unsure, and how much they count (see :func:`overlap_decisions`).

    Returns
    -------
    pandas.Series
        Indexed by class, sums to 1.
    """
    labels = np.asarray(labels, dtype=object)
    annotators = np.asarray(annotators, dtype=object)
    if labels.shape != annotators.shape or labels.ndim != 1:
        raise ValueError("labels and annotators need one value per annotation")
    flags = np.zeros(labels.size, dtype=bool) if unsure is None else np.asarray(unsure, dtype=bool)
    base = model.priors if prior is None else np.asarray(prior, dtype=np.float64)
    if base.shape != model.priors.shape or (base < 0).any() or base.sum() <= 0:
        raise ValueError(f"the prior needs {model.classes.size} non-negative values with a positive sum")
    log_post = _log(base / base.sum())
    if labels.size:
        rows = _likelihood_rows(model, annotators, labels, flags, unsure_weight)
        log_post = log_post + _log(rows).sum(axis=0)
    posterior, _ = _normalise_log(log_post[None, :])
    return pd.Series(posterior[0], index=pd.Index(model.classes, name="class"), name="posterior")
