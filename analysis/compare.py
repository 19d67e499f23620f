"""Two runs' predictions side by side: call :func:`compare_predictions`; :func:`mcnemar_exact` is the
test it uses.

Runs are compared on the clips both predicted in the evaluation split (``test`` by default) that have a
true label, so each clip counts once for each run and the paired test is valid: McNemar's exact test
asks whether the clips only run A gets right and the clips only run B gets right are equally likely
(a two-sided binomial test with p = 1/2 on the discordant pairs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

PREDICTION_INPUT = ("clip_id", "split", "y_true", "y_pred", "tags")


@dataclass(frozen=True)
class McNemar:
    """``only_a``: clips run A got right and run B wrong; ``only_b`` the reverse."""

    only_a: int
    only_b: int
    both_right: int
    both_wrong: int
    p_value: float

    @property
    def n(self) -> int:
        return self.only_a + self.only_b + self.both_right + self.both_wrong


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemar:
    """McNemar's exact test on paired correctness (booleans, same clips in the same order).

    The p-value is the two-sided binomial test of ``only_a`` successes in ``only_a + only_b`` trials
    with p = 1/2 (1.0 when no pair is discordant), as ``statsmodels``' ``mcnemar(table, exact=True)``.
    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired results need equal lengths, got {a.shape} and {b.shape}")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    discordant = only_a + only_b
    # min(k, n-k) with p=1/2 is symmetric; doubling the smaller tail is the exact two-sided test.
    p = 1.0 if discordant == 0 else float(binomtest(min(only_a, only_b), discordant, 0.5).pvalue)
    return McNemar(
        only_a=only_a,
        only_b=only_b,
        both_right=int(np.sum(a & b)),
        both_wrong=int(np.sum(~a & ~b)),
        p_value=min(1.0, p),
    )


@dataclass(frozen=True)
class PredictionComparison:
    """What :func:`compare_predictions` found.

    Attributes
    ----------
    overall
        ``metric, a, b, delta`` for ``n``, ``accuracy`` and ``macro_f1`` on the shared clips.
    slices
        ``slice, n, a, b, delta``: accuracy per tag over the shared clips, worst change first.
    mcnemar
        The paired test on the shared clips.
    confusion_a, confusion_b, confusion_diff
        Confusion matrices (rows true, columns predicted, over the union of labels) and ``b - a``.
    clips
        The shared clips: ``clip_id, y_true, pred_a, pred_b, correct_a, correct_b``.
    """

    overall: pd.DataFrame
    slices: pd.DataFrame
    mcnemar: McNemar
    confusion_a: pd.DataFrame
    confusion_b: pd.DataFrame
    confusion_diff: pd.DataFrame
    clips: pd.DataFrame


def _tags(value: object) -> list[str]:
    if isinstance(value, list | tuple | np.ndarray):
        return [str(t) for t in value]
    return []


def compare_predictions(
    a: pd.DataFrame, b: pd.DataFrame, *, split: str | None = "test"
) -> PredictionComparison:
    """Compare two runs' predictions on the clips both predicted.

    Parameters
    ----------
    a, b
        One row per clip with :data:`PREDICTION_INPUT` columns (``tags`` a list per clip, as
        :func:`labeling.model.runs.run_predictions` returns). ``y_true`` is taken from ``b`` (the current
        truth), so both runs are graded against the same labels.
    split
        Evaluate on clips in this split in both runs; None for every shared labelled clip.
    """
    for name, frame in (("a", a), ("b", b)):
        missing = [c for c in PREDICTION_INPUT if c not in frame.columns]
        if missing:
            raise ValueError(f"predictions {name} lack the columns {', '.join(missing)}")
    left = a[["clip_id", "split", "y_pred"]].rename(columns={"y_pred": "pred_a", "split": "split_a"})
    right = b[["clip_id", "split", "y_true", "y_pred", "tags"]].rename(columns={"y_pred": "pred_b"})
    shared = left.merge(right, on="clip_id", how="inner")
    keep = shared["y_true"].notna() & shared["pred_a"].notna() & shared["pred_b"].notna()
    if split is not None:
        keep &= (shared["split"] == split) & (shared["split_a"] == split)
    shared = shared[keep].reset_index(drop=True)
    truth = shared["y_true"].astype(str).to_numpy()
    pa, pb = shared["pred_a"].astype(str).to_numpy(), shared["pred_b"].astype(str).to_numpy()
    ca, cb = pa == truth, pb == truth
    clips = pd.DataFrame(
        {
            "clip_id": shared["clip_id"],
            "y_true": truth,
            "pred_a": pa,
            "pred_b": pb,
            "correct_a": ca,
            "correct_b": cb,
        }
    )

    def summary(pred: np.ndarray) -> dict[str, float]:
        if len(truth) == 0:
            return {"n": 0, "accuracy": np.nan, "macro_f1": np.nan}
        return {
            "n": float(len(truth)),
            "accuracy": float(accuracy_score(truth, pred)),
            "macro_f1": float(f1_score(truth, pred, average="macro", zero_division=0)),
        }

    sa, sb = summary(pa), summary(pb)
    overall = pd.DataFrame(
        {"metric": list(sa), "a": list(sa.values()), "b": list(sb.values())},
    )
    overall["delta"] = overall["b"] - overall["a"]

    rows = []
    tag_lists = shared["tags"].map(_tags)
    for tag in sorted({t for ts in tag_lists for t in ts}):
        member = tag_lists.map(lambda ts, tag=tag: tag in ts).to_numpy(dtype=bool)
        n = int(member.sum())
        rows.append({"slice": tag, "n": n, "a": float(ca[member].mean()), "b": float(cb[member].mean())})
    slices = pd.DataFrame(rows, columns=["slice", "n", "a", "b"])
    slices["delta"] = slices["b"] - slices["a"]
    slices = slices.sort_values(["delta", "slice"], ignore_index=True)

    labels = sorted(set(truth) | set(pa) | set(pb), key=lambda c: (len(c), c))
    if len(truth):
        cm_a = confusion_matrix(truth, pa, labels=labels)
        cm_b = confusion_matrix(truth, pb, labels=labels)
    else:
        cm_a = cm_b = np.zeros((len(labels), len(labels)), dtype=np.int64)
    index = pd.Index(labels, name="true")
    columns = pd.Index(labels, name="predicted")
    return PredictionComparison(
        overall=overall,
        slices=slices,
        mcnemar=mcnemar_exact(ca, cb),
        confusion_a=pd.DataFrame(cm_a, index=index, columns=columns),
        confusion_b=pd.DataFrame(cm_b, index=index, columns=columns),
        confusion_diff=pd.DataFrame(cm_b - cm_a, index=index, columns=columns),
        clips=clips,
    )
