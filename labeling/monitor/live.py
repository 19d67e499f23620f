"""The live model: :func:`mark_live` marks the run that is deployed and freezes its reference (by default
the held-out dev/test clips of the dataset version it was trained on); :func:`rebaseline` changes the
reference, audited; :func:`score_audio` and :func:`live_model_scorer` answer with a run's model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import (
    DatasetVersion,
    LiveModel,
    ModelRun,
    MonitoringAction,
)
from labeling.data.export import ExportError, find_version
from labeling.data.projects import ProjectInfo
from labeling.monitor.settings import MonitoringError, resolve_project
from labeling.platform.audit import record
from labeling.platform.workspace import Workspace


def live_model_row(s: Session, project_id: int) -> LiveModel | None:
    return s.scalar(
        select(LiveModel).where(LiveModel.project_id == project_id).order_by(LiveModel.id.desc()).limit(1)
    )


def live_run(s: Session, project_id: int) -> ModelRun | None:
    row = live_model_row(s, project_id)
    return s.get(ModelRun, row.run_id) if row is not None else None


@dataclass(frozen=True)
class LiveModelInfo:
    run_id: int
    run_name: str
    reference_version_id: int | None
    reference_version: str | None
    since: datetime | None


def live_model(s: Session, project: str | int | ProjectInfo) -> LiveModelInfo | None:
    info = resolve_project(s, project)
    row = live_model_row(s, info.id)
    if row is None:
        return None
    run = s.get(ModelRun, row.run_id)
    version = s.get(DatasetVersion, row.reference_version_id) if row.reference_version_id else None
    return LiveModelInfo(
        run_id=row.run_id,
        run_name=run.name if run else f"run {row.run_id}",
        reference_version_id=row.reference_version_id,
        reference_version=version.name if version else None,
        since=row.created_at,
    )


def reference_version_id_of(s: Session, project_id: int, ref: str | int) -> int:
    try:
        return find_version(s, project_id, ref).id
    except ExportError as exc:
        raise MonitoringError(str(exc)) from exc


def _set_live(
    s: Session, info: ProjectInfo, run_id: int, version_id: int | None, actor_id: int | None
) -> LiveModelInfo:
    """A new live-model row (the newest one is live) and what it now says."""
    s.add(LiveModel(project_id=info.id, run_id=run_id, reference_version_id=version_id, marked_by=actor_id))
    s.flush()
    found = live_model(s, info)
    assert found is not None
    return found


def mark_live(
    ws: Workspace,
    project: str | int,
    run_id: int,
    *,
    reference: str | int | None = None,
    actor_id: int | None = None,
) -> LiveModelInfo:
    """Mark a run as the deployed model. Its reference (default: the version it was trained on)
    is frozen with it: every drift check until the next mark or rebaseline uses it."""
    with ws.db.write() as s:
        info = resolve_project(s, project)
        run = s.get(ModelRun, run_id)
        if run is None or run.project_id != info.id:
            raise MonitoringError(f"run {run_id} is not a run of project {info.name!r}")
        version_id = (
            reference_version_id_of(s, info.id, reference)
            if reference is not None
            else run.dataset_version_id
        )
        record(
            s,
            entity="live_model",
            entity_id=run.id,
            action="create",
            new={"run_id": run.id, "reference_version_id": version_id},
            actor_id=actor_id,
            project_id=info.id,
        )
        return _set_live(s, info, run.id, version_id, actor_id)


def rebaseline(
    ws: Workspace, project: str | int, reference: str | int, *, note: str, actor_id: int | None = None
) -> LiveModelInfo:
    """Measure the live model's batches against another dataset version from now on (audited)."""
    if not note.strip():
        raise MonitoringError("a rebaseline needs a note saying why")
    with ws.db.write() as s:
        info = resolve_project(s, project)
        row = live_model_row(s, info.id)
        if row is None:
            raise MonitoringError("no live model is marked; mark one first")
        version_id = reference_version_id_of(s, info.id, reference)
        old = row.reference_version_id
        s.add(
            MonitoringAction(project_id=info.id, action="rebaseline", note=note.strip(), created_by=actor_id)
        )
        record(
            s,
            entity="drift_reference",
            entity_id=row.run_id,
            action="update",
            old={"reference_version_id": old},
            new={"reference_version_id": version_id, "note": note.strip()},
            actor_id=actor_id,
            project_id=info.id,
        )
        return _set_live(s, info, row.run_id, version_id, actor_id)


# --- scoring audio with a run's model ----------------------------------------------------------------


def score_audio(
    ws: Workspace,
    run_id: int,
    paths: Mapping[str, str],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """``label`` and ``confidence`` of a run's model on audio files (``{key: path}``), by key.

    Feature vectors are cached by the SHA-256 of each file's bytes, whatever the caller's keys;
    ``progress(done, total)`` follows them clip by clip."""
    from pathlib import Path

    from analysis.features import feature_frame
    from labeling.platform.storage import sha256_bytes

    keys = list(paths)
    shas = [sha256_bytes(Path(paths[k]).read_bytes()) for k in keys]

    with ws.db.read() as s:
        run = s.get(ModelRun, run_id)
        if run is None:
            raise MonitoringError(f"no run {run_id}")
        s.expunge(run)
    if run.kind != "builtin":
        raise MonitoringError(f"run {run.id} was imported; only the built-in model can score new audio")
    from analysis.model import one_blas_thread
    from labeling.model.runs import RunError, fit_run_model

    try:
        model, settings = fit_run_model(ws, run.id)
    except RunError as exc:
        raise MonitoringError(str(exc)) from exc
    by_sha = dict(zip(shas, (paths[k] for k in keys), strict=True))
    features = feature_frame(
        by_sha, settings=settings, cache_dir=ws.settings.cache_dir / "features", n_jobs=2, progress=progress
    )
    with one_blas_thread():
        proba = model.predict_proba(features.loc[shas].to_numpy())
    classes = np.asarray(model.classes_)
    out = pd.DataFrame(
        {"label": classes[proba.argmax(axis=1)].astype(str), "confidence": proba.max(axis=1)},
        index=pd.Index(keys),
    )
    out.attrs["model"] = run.name
    return out


def live_model_scorer(ws: Workspace, project_id: int) -> Callable[[list[Any]], pd.DataFrame] | None:
    """What scores a folder of production audio with the live model; None when no model is live."""
    with ws.db.read() as s:
        row = live_model_row(s, project_id)
        run_id = row.run_id if row is not None else None
    if run_id is None:
        return None

    def score(prepared: list[Any]) -> pd.DataFrame:
        ws.store.fetch_many(p.storage_key for p in prepared)
        return score_audio(ws, run_id, {p.sha256: str(ws.store.path(p.storage_key)) for p in prepared})

    return score
