"""Compare two model runs: call :func:`compare_runs`.

It puts their metrics overall and per slice side by side with deltas, runs McNemar's exact test on
the test clips both predicted, takes the difference of their confusion matrices
(:func:`analysis.compare.compare_predictions`), and diffs the dataset versions they were trained on.
When the code fingerprints differ the comparison says so and does not call the change data-only:
the point of holding the code fixed is that a difference then comes from the data alone. Each run
keeps the content hash of the data it read; when both read the same data with the same code, the
comparison says so too, and it warns if two runs that name the same version read different data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from analysis.compare import McNemar, compare_predictions
from analysis.versions import VersionDiff
from labeling.data.versions import diff_versions, version_info
from labeling.model.runs import RunSummary, get_run, run_predictions


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
    def same_data(self) -> bool:
        """Both runs read exactly the same data (equal data fingerprints)."""
        a, b = self.run_a.data_fingerprint, self.run_b.data_fingerprint
        return a is not None and a == b

    @property
    def warnings(self) -> list[str]:
        """What makes this comparison less than it seems; each a sentence to show above it."""
        out = []
        a, b = self.run_a, self.run_b
        if self.version_a is not None and self.version_a == self.version_b:
            if a.data_fingerprint is None or b.data_fingerprint is None:
                old = a if a.data_fingerprint is None else b
                out.append(
                    f"Run {old.id} was stored before runs kept the fingerprint of the data they read: "
                    f"it may not have read version {self.version_a!r} as frozen, so equal version names "
                    "do not prove equal data."
                )
            elif a.data_fingerprint != b.data_fingerprint:
                out.append(
                    f"Runs {a.id} and {b.id} both name version {self.version_a!r} but read different data "
                    f"(fingerprints {a.data_fingerprint[:12]} and {b.data_fingerprint[:12]}). A version "
                    "never changes, so this should not happen: do not credit the difference to the data."
                )
        seeds = (a.params.get("random_state"), b.params.get("random_state"))
        if self.same_data and not self.code_changed and seeds[0] != seeds[1] and None not in seeds:
            out.append(f"The runs used different random seeds ({seeds[0]} and {seeds[1]}).")
        return out

    @property
    def n_shared(self) -> int:
        return self.mcnemar.n

    @property
    def no_change(self) -> bool:
        """Both runs are right and wrong on the same clips, with the same confusions."""
        return (
            self.mcnemar.only_a == 0 and self.mcnemar.only_b == 0 and not self.confusion_diff.to_numpy().any()
        )

    def verdict(self) -> str:
        """One sentence on what the comparison can and cannot say."""
        acc = self.overall.set_index("metric").loc["accuracy"]
        if self.no_change and not self.code_changed:
            return (
                f"No change: both runs are right and wrong on the same {self.n_shared:,} shared {self.split} "
                f"clips, with the same confusions (accuracy {acc['a']:.3f})."
            )
        change = f"accuracy {acc['a']:.3f} → {acc['b']:.3f} on {self.n_shared:,} shared {self.split} clips"
        sig = f"McNemar p = {self.mcnemar.p_value:.3g}"
        if self.code_changed:
            return (
                f"The model code changed (fingerprint {self.run_a.code_fingerprint[:12]} → "
                f"{self.run_b.code_fingerprint[:12]}): this is NOT a data-only change, so the difference "
                f"cannot be credited to the data; {change}, {sig}."
            )
        if self.same_data:
            return (
                f"Same model code and the same data (fingerprint {(self.run_a.data_fingerprint or '')[:12]}"
                "): "
                "nothing in the data or the code explains a difference, only chance in training; "
                f"{change}, {sig}."
            )
        return f"Same model code: the difference comes from the data alone; {change}, {sig}."

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_a": {
                "id": self.run_a.id,
                "name": self.run_a.name,
                "fingerprint": self.run_a.code_fingerprint,
                "data_fingerprint": self.run_a.data_fingerprint,
                "dataset_version": self.version_a,
            },
            "run_b": {
                "id": self.run_b.id,
                "name": self.run_b.name,
                "fingerprint": self.run_b.code_fingerprint,
                "data_fingerprint": self.run_b.data_fingerprint,
                "dataset_version": self.version_b,
            },
            "code_changed": self.code_changed,
            "data_only": not self.code_changed,
            "same_data": self.same_data,
            "warnings": self.warnings,
            "verdict": self.verdict(),
            "no_change": self.no_change,
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


def _version_name(s: Session, run: RunSummary) -> str | None:
    if run.dataset_version_id is None:
        return None
    return version_info(s, run.dataset_version_id).label


def compare_runs(s: Session, run_a: int, run_b: int, *, split: str = "test") -> Comparison:
    """Compare run ``run_a`` (the baseline) with run ``run_b`` on the ``split`` clips both predicted.

    Raises
    ------
    CompareError
        When a run does not exist, the runs belong to different projects, or they share no labelled
        clip of ``split``.
    """
    from labeling.model.runs import RunError

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
        version_a=_version_name(s, a),
        version_b=_version_name(s, b),
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
