"""Compare two model runs: call :func:`compare_runs`.

It puts their metrics overall and per slice side by side with deltas, runs McNemar's exact test on
the test clips both predicted, takes the difference of their confusion matrices
(:func:`analysis.compare.compare_predictions`), and diffs the dataset versions they were trained on.
When the code fingerprints differ the comparison says so and does not call the change data-only:
the point of holding the code fixed is that a difference then comes from the data alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from analysis.compare import McNemar, compare_predictions
from analysis.versions import VersionDiff
from db.models import DatasetVersion
from labeling.runs import RunSummary, get_run, run_predictions
from labeling.versions import diff_versions


class CompareError(ValueError):
    """The runs cannot be compared; the message says why."""


@dataclass(frozen=True)
class Comparison:
    run_a: RunSummary
    run_b: RunSummary
    version_a: str | None
    version_b: str | None
    code_changed: bool
    overall: pd.DataFrame
    slices: pd.DataFrame
    mcnemar: McNemar
    confusion_diff: pd.DataFrame
    confusion_a: pd.DataFrame
    confusion_b: pd.DataFrame
    data_diff: VersionDiff | None
    split: str

    @property
    def n_shared(self) -> int:
        return self.mcnemar.n

    def verdict(self) -> str:
        """One sentence on what the comparison can and cannot say."""
        acc = self.overall.set_index("metric").loc["accuracy"]
        change = f"accuracy {acc['a']:.3f} → {acc['b']:.3f} on {self.n_shared:,} shared {self.split} clips"
        sig = f"McNemar p = {self.mcnemar.p_value:.3g}"
        if self.code_changed:
            return (
                f"The model code changed (fingerprint {self.run_a.code_fingerprint[:12]} → "
                f"{self.run_b.code_fingerprint[:12]}): this is NOT a data-only change, so the difference "
                f"cannot be credited to the data; {change}, {sig}."
            )
        data = "the same data" if self.data_diff is not None and self.data_diff.unchanged else "the data"
        return f"Same model code: the difference comes from {data} alone; {change}, {sig}."

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_a": {
                "id": self.run_a.id,
                "name": self.run_a.name,
                "fingerprint": self.run_a.code_fingerprint,
                "dataset_version": self.version_a,
            },
            "run_b": {
                "id": self.run_b.id,
                "name": self.run_b.name,
                "fingerprint": self.run_b.code_fingerprint,
                "dataset_version": self.version_b,
            },
            "code_changed": self.code_changed,
            "data_only": not self.code_changed,
            "verdict": self.verdict(),
            "split": self.split,
            "n_shared": self.n_shared,
            "overall": self.overall.to_dict("records"),
            "slices": self.slices.to_dict("records"),
            "mcnemar": {
                "only_a_correct": self.mcnemar.only_a,
                "only_b_correct": self.mcnemar.only_b,
                "both_correct": self.mcnemar.both_right,
                "both_wrong": self.mcnemar.both_wrong,
                "p_value": self.mcnemar.p_value,
            },
            "confusion_diff": {
                str(k): {str(c): int(v) for c, v in row.items()}
                for k, row in self.confusion_diff.to_dict("index").items()
            },
            "data_diff": None
            if self.data_diff is None
            else {
                **self.data_diff.summary(),
                "by_tag": self.data_diff.by_tag.to_dict("records"),
            },
        }


def _version_name(s: Session, version_id: int | None) -> str | None:
    if version_id is None:
        return None
    row = s.get(DatasetVersion, version_id)
    return row.name if row else None


def compare_runs(s: Session, run_a: int, run_b: int, *, split: str = "test") -> Comparison:
    """Compare run ``run_a`` (the baseline) with run ``run_b`` on the ``split`` clips both predicted.

    Raises
    ------
    CompareError
        When a run does not exist, the runs belong to different projects, or they share no labelled
        clip of ``split``.
    """
    from labeling.runs import RunError

    try:
        a, b = get_run(s, run_a), get_run(s, run_b)
    except RunError as exc:
        raise CompareError(str(exc)) from exc
    if a.project_id != b.project_id:
        raise CompareError(f"runs {a.id} and {b.id} belong to different projects")
    result = compare_predictions(run_predictions(s, a.id), run_predictions(s, b.id), split=split)
    if result.mcnemar.n == 0:
        raise CompareError(f"runs {a.id} and {b.id} share no labelled {split} clip to compare on")
    data_diff = None
    if a.dataset_version_id is not None and b.dataset_version_id is not None:
        data_diff = diff_versions(s, a.dataset_version_id, b.dataset_version_id)
    return Comparison(
        run_a=a,
        run_b=b,
        version_a=_version_name(s, a.dataset_version_id),
        version_b=_version_name(s, b.dataset_version_id),
        code_changed=a.code_fingerprint != b.code_fingerprint,
        overall=result.overall,
        slices=result.slices,
        mcnemar=result.mcnemar,
        confusion_diff=result.confusion_diff,
        confusion_a=result.confusion_a,
        confusion_b=result.confusion_b,
        data_diff=data_diff,
        split=split,
    )
