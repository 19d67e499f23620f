"""The reference a drift check compares with, summarised once: :func:`cached_reference_summary`.

A check needs only the reference's :class:`analysis.drift.ReferenceSummary` (sorted values, counts,
the MMD rows, the WER bootstrap), not its clips. It is kept in ``stored_reports`` (kind
``drift_reference``) under everything it depends on: the reference version, the live model's run (its
answers on the reference), the project's low-confidence threshold and transcript normalisation, the
measures' :data:`analysis.drift.MEASURES_VERSION`, the summary format and the random state. A version's
items and a run's predictions do not change, so a summary under the same key is the same summary;
changing any part of the key makes a new one, and the old row is simply never read again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from labeling.data.projects import ProjectInfo
from labeling.monitor.measures import LABEL_COLUMNS, reference_frame, reference_key, stored_measures
from labeling.monitor.settings import project_settings, resolve_project
from labeling.platform.progress import StageProgress
from labeling.platform.workspace import Workspace
from labeling.quality.report_store import read_report, save_report

if TYPE_CHECKING:
    from analysis.drift import ReferenceSummary

#: The ``stored_reports`` kind of a reference summary.
KIND = "drift_reference"


@dataclass(frozen=True)
class CachedReference:
    """A reference summary, the version it summarises, and whether it was read from the store."""

    summary: ReferenceSummary
    version_id: int
    cached: bool


def summary_params(
    info: ProjectInfo, version_id: int, run_id: int | None, *, random_state: int | None
) -> dict[str, Any]:
    """The key a reference summary is stored under (short: ``stored_reports.params`` holds 200
    characters, so the normalisation rules go in as a digest)."""
    from analysis.drift import MEASURES_VERSION, SUMMARY_FORMAT

    rules = json.dumps(dict(info.normalization or {}), sort_keys=True)
    return {
        "version": int(version_id),
        "run": None if run_id is None else int(run_id),
        "low_confidence": float(project_settings(info)["low_confidence"]),
        "measures": MEASURES_VERSION,
        "format": SUMMARY_FORMAT,
        "random_state": random_state,
        "norm": hashlib.sha256(rules.encode("utf-8")).hexdigest()[:12],
    }


def reference_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The reference frame's columns a summary reads, numeric (``correct`` as 0/1/NaN)."""
    out = stored_measures(frame)
    for col in LABEL_COLUMNS:
        if col in frame:
            out[col] = frame[col].astype("float64")
    return out


def cached_reference_summary(
    ws: Workspace,
    project: str | int,
    *,
    version: str | int | None = None,
    progress: StageProgress | None = None,
    random_state: int | None = 0,
) -> CachedReference:
    """The reference's summary, from ``stored_reports`` when one is kept under its key, else made from
    :func:`labeling.monitor.measures.reference_frame` (measuring any clip not yet measured) and kept."""
    from analysis.drift import ReferenceSummary, reference_summary

    with ws.db.read() as s:
        info = resolve_project(s, project)
        version_id, run_id = reference_key(s, info, version)
        params = summary_params(info, version_id, run_id, random_state=random_state)
        stored = read_report(s, info.id, KIND, params)
    token = tuple(sorted(params.items()))
    if stored is not None and isinstance(stored.value, str):
        try:
            summary = ReferenceSummary.from_bytes(base64.b64decode(stored.value))
        except ValueError:
            pass  # damaged or written by another version: summarise again below
        else:
            return CachedReference(summary, version_id, True)
    started = time.perf_counter()
    frame = reference_frame(ws, project, version=version, progress=progress)
    summary = reference_summary(
        reference_columns(frame), random_state=random_state, key=json.dumps(params, sort_keys=True)
    )
    blob = base64.b64encode(summary.to_bytes()).decode("ascii")
    with ws.db.write() as s:
        save_report(s, info.id, KIND, params, token, blob, seconds=time.perf_counter() - started)
    return CachedReference(summary, version_id, False)
