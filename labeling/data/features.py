"""The audio features the fixed model reads, per clip, computed once per audio content and cached.

:func:`project_features` gives a project's live clips' features (near-duplicate checks, label issues);
:func:`frozen_feature_inputs` with :func:`clip_features` those of a dataset version's frozen clips (what
training reads). Vectors are cached under ``<data dir>/cache/features`` keyed by the audio's SHA-256.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from analysis.features import FeatureSettings, cached_keys, feature_frame
from db.models import Clip
from labeling.platform.workspace import Workspace

#: The stage name progress reports while features are computed.
FEATURES_STAGE = "Computing the audio features, clip"


class FeatureError(ValueError):
    """Features that cannot be computed as asked; the message says why."""


def _feature_inputs(
    s: Session, ws: Workspace, project_id: int, clip_ids: Sequence[int] | None
) -> tuple[pd.DataFrame, FeatureSettings]:
    live = (Clip.project_id == project_id) & Clip.deleted_at.is_(None)
    rates = s.scalars(select(Clip.sample_rate).where(live).distinct()).all()
    if not rates:
        raise FeatureError("the project has no clips")
    q = select(Clip.id, Clip.sha256, Clip.storage_key).where(live).order_by(Clip.id)
    rows = pd.DataFrame(s.execute(q).all(), columns=["clip_id", "sha256", "storage_key"])
    if clip_ids is not None:
        wanted = pd.Index([int(c) for c in clip_ids])
        missing = wanted.difference(rows["clip_id"])
        if len(missing):
            raise FeatureError(f"{len(missing)} clips are not live clips of this project, e.g. {missing[0]}")
        rows = rows.set_index("clip_id").loc[wanted].reset_index()
    if ws.store.is_local:
        rows["path"] = [str(ws.store.path(k)) for k in rows["storage_key"]]
    return rows, FeatureSettings.for_sample_rates(rates)


def frozen_feature_inputs(ws: Workspace, clips: pd.DataFrame) -> tuple[pd.DataFrame, FeatureSettings]:
    """Feature inputs of a version's clips (:func:`labeling.data.versions.frozen_clip_frame`), retired ones
    included, with the settings their own sample rates call for — nothing the live project does later
    changes them."""
    rows = clips[["clip_id", "sha256", "storage_key"]].reset_index(drop=True)
    if ws.store.is_local:
        rows["path"] = [str(ws.store.path(k)) for k in rows["storage_key"]]
    rates = sorted({int(r) for r in clips["sample_rate"]})
    return rows, FeatureSettings.for_sample_rates(rates)


#: Clips fetched from a remote store per round of feature extraction (well inside the read cache).
REMOTE_FEATURE_CHUNK = 1000


def _offset(progress: Callable[[int, int], None], before: int, total: int) -> Callable[[int, int], None]:
    """``progress`` for one chunk: its count starts at ``before`` of ``total``."""
    return lambda done, _total: progress(before + done, total)


def _fetch_and_cache_features(
    ws: Workspace, rows: pd.DataFrame, settings: FeatureSettings, progress: Callable[[int, int], None] | None
) -> None:
    """Compute the vectors not cached yet, fetching their audio from the remote store a chunk at a time,
    so the bounded read cache never has to hold the whole project."""
    cache_dir = ws.settings.cache_dir / "features"
    known = cached_keys(rows["sha256"].tolist(), settings=settings, cache_dir=cache_dir)
    todo = rows[~rows["sha256"].isin(known)].drop_duplicates("sha256")
    total, done = len(rows), len(rows) - len(todo)
    for start in range(0, len(todo), REMOTE_FEATURE_CHUNK):
        part = todo.iloc[start : start + REMOTE_FEATURE_CHUNK]
        ws.store.fetch_many(part["storage_key"])
        before = done
        feature_frame(
            {sha: ws.store.path(key) for sha, key in zip(part["sha256"], part["storage_key"], strict=True)},
            settings=settings,
            cache_dir=cache_dir,
            n_jobs=2,
            progress=_offset(progress, before, total) if progress else None,
        )
        done += len(part)


def clip_features(
    ws: Workspace, rows: pd.DataFrame, settings: FeatureSettings, progress: Callable[[int, int], None] | None
) -> pd.DataFrame:
    if "path" not in rows:
        _fetch_and_cache_features(ws, rows, settings, progress)
        rows = rows.assign(path="")  # every vector is in the cache now: no file is opened
    by_sha = feature_frame(
        dict(zip(rows["sha256"], rows["path"], strict=True)),
        settings=settings,
        cache_dir=ws.settings.cache_dir / "features",
        n_jobs=2,
        progress=progress,
    )
    frame = by_sha.loc[rows["sha256"]]
    frame.index = pd.Index(rows["clip_id"].to_numpy(), name="clip_id")
    return frame


def project_features(
    ws: Workspace,
    project_id: int,
    *,
    clip_ids: Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """The model's features of a project's live clips, computed once per audio content and cached.

    Settings come from :meth:`FeatureSettings.for_sample_rates` over every live clip of the project,
    so a subset gets the same columns as the whole. Vectors are cached under
    ``<data dir>/cache/features`` keyed by the SHA-256 of the audio.

    Parameters
    ----------
    clip_ids
        Only these clips, in this order (default: every live clip, by id).
    progress
        ``progress(done, total)`` while features are computed.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``clip_id``; the columns of :func:`analysis.features.feature_names`.
    """
    with ws.db.read() as s:
        rows, settings = _feature_inputs(s, ws, project_id, clip_ids)
    return clip_features(ws, rows, settings, progress)
