"""Dataset versions: immutable snapshots of (clip audio by hash, final label, transcript, tags,
metadata, split), with the project settings their numbers depend on.

Call :func:`create_version` to freeze the project's current final labels (narrowed by
:class:`VersionFilters`), :func:`list_versions` for the history, :func:`version_frame` for one
version's rows, :func:`frozen_clip_frame` for them in :func:`labeling.data.clips.clip_frame`'s shape, and
:func:`diff_versions` for what changed between two. The content hash and the diff are computed in
:mod:`analysis.versions`; a named version with the same content as an existing one is refused (the
database's unique key on (project, content hash) is the last guard).

A version is a contract: whatever happens to the live project afterwards (fixes that retire clips,
relabels, tag edits, class or normalisation changes), reading a version gives the same rows. Training
on the current labels freezes them first with :func:`snapshot_current` — a version of kind
``snapshot`` that no one has to name — so every run reads frozen data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

import pandas as pd
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from analysis.versions import VersionDiff, content_hash, version_diff
from db.models import Clip, DatasetItem, DatasetVersion
from labeling.data.clips import QUALITY_COLUMNS
from labeling.data.export import ExportError, ExportFilters, export_frame, find_version
from labeling.data.production_hold import held_back_clip_ids
from labeling.data.projects import ProjectInfo, get_project, validate_name
from labeling.platform.audit import record

VERSION_COLUMNS = ("clip_id", "sha256", "original_name", "label", "transcript", "tags", "split", "metadata")
#: The project settings a version freezes: what its labels mean and how its transcripts are scored.
FROZEN_SETTINGS = ("task_kind", "classes", "tag_groups", "normalization")


class VersionError(ValueError):
    """A dataset version cannot be made or found as asked; the message says why."""


@dataclass(frozen=True)
class VersionFilters:
    """Which clips a version holds. Soft-deleted clips (e.g. superseded by a fix) are never included.

    ``include_augmented`` keeps augmented clips, and only in the training split: an augmented copy in
    dev or test would grade the model on audio it was, in effect, trained on.
    """

    resolved_only: bool = True
    min_agreement: float | None = None
    exclude_flagged: bool = False  # clips with an unresolved ClipFlag
    include_augmented: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> VersionFilters:
        known = {k: v for k, v in (d or {}).items() if k in cls.__dataclass_fields__}
        return cls(**known)


def version_label(name: str, kind: str, content_hash: str, created_at: datetime | None) -> str:
    """A version's name as shown: a snapshot (frozen for a run on the current labels) says so."""
    if kind == "snapshot":
        when = f" of {created_at:%Y-%m-%d %H:%M} UTC" if created_at else ""
        return f"current labels{when} (snapshot {content_hash[:8]})"
    return name


@dataclass(frozen=True)
class VersionInfo:
    id: int
    project_id: int
    name: str
    kind: str  # "named", or "snapshot" (frozen for a run on the current labels)
    note: str
    parent_id: int | None
    parent_name: str | None
    content_hash: str
    filters: dict[str, Any]
    changes: dict[str, Any]
    n_clips: int
    created_by: int | None
    created_at: datetime | None = None
    splits: dict[str, int] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How people should read the version's name: a snapshot says what it froze."""
        return version_label(self.name, self.kind, self.content_hash, self.created_at)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["created_at"] = self.created_at.isoformat() if self.created_at else None
        return d

    def summary(self) -> str:
        c = self.changes
        since = (
            f" since {self.parent_name!r}: +{c.get('added', 0)} -{c.get('removed', 0)} clips, "
            f"{c.get('relabelled', 0)} relabelled, {c.get('retagged', 0)} re-tagged, "
            f"{c.get('resplit', 0)} re-split, {c.get('augmented', 0)} augmented added"
            if self.parent_name
            else ""
        )
        return f"version {self.name!r}: {self.n_clips:,} clips, hash {self.content_hash[:12]}{since}"


def is_augmented(derivation: Any) -> bool:
    """Whether a clip's derivation recipe is an augmentation (``{"kind": "augment", ...}``)."""
    if not isinstance(derivation, dict):
        return False
    return str(derivation.get("kind") or derivation.get("type") or "").lower().startswith("augment")


def current_items(s: Session, project_id: int, *, filters: VersionFilters = VersionFilters()) -> pd.DataFrame:
    """What a version made now would hold: columns :data:`VERSION_COLUMNS`, one row per clip."""
    export_filters = ExportFilters(
        resolved_only=filters.resolved_only,
        min_agreement=filters.min_agreement,
        exclude_flagged=filters.exclude_flagged,
        exclude_augmented=not filters.include_augmented,
    )
    # The export's filters are the ones people already use; a snapshot keeps no audio paths.
    frame = export_frame(s, None, project_id, filters=export_filters)
    held = set(s.scalars(held_back_clip_ids(project_id)))
    if held:
        frame = frame[~frame["clip_id"].isin(held)]
    derivations: dict[int, Any] = dict(
        s.execute(
            select(Clip.id, Clip.derivation).where(
                Clip.project_id == project_id, Clip.parent_clip_id.is_not(None)
            )
        ).all()
    )
    augmented = frame["clip_id"].map(lambda c: is_augmented(derivations.get(c)))
    frame = frame[~augmented | (frame["split"] == "train")]
    return frame[list(VERSION_COLUMNS)].reset_index(drop=True)


def _version_row(s: Session, project_id: int, ref: str | int) -> DatasetVersion:
    try:
        found = find_version(s, project_id, ref)
    except ExportError as exc:
        raise VersionError(str(exc)) from exc
    row = s.get(DatasetVersion, found.id)
    assert row is not None
    return row


def _latest(s: Session, project_id: int, *, besides: int | None = None) -> DatasetVersion | None:
    """The project's newest named version (snapshots are nobody's parent), other than ``besides``."""
    q = select(DatasetVersion).where(DatasetVersion.project_id == project_id, DatasetVersion.kind == "named")
    if besides is not None:
        q = q.where(DatasetVersion.id != besides)
    return s.scalars(q.order_by(DatasetVersion.id.desc())).first()


def _info(s: Session, row: DatasetVersion) -> VersionInfo:
    parent = s.get(DatasetVersion, row.parent_id) if row.parent_id else None
    by_split = dict(
        s.execute(
            select(DatasetItem.split, func.count())
            .where(DatasetItem.version_id == row.id)
            .group_by(DatasetItem.split)
        ).all()
    )
    return VersionInfo(
        id=row.id,
        project_id=row.project_id,
        name=row.name,
        kind=row.kind,
        note=row.note,
        parent_id=row.parent_id,
        parent_name=parent.name if parent else None,
        content_hash=row.content_hash,
        filters=dict(row.filters or {}),
        changes=dict(row.changes or {}),
        n_clips=row.n_clips,
        created_by=row.created_by,
        created_at=row.created_at,
        splits={str(k): int(v) for k, v in by_split.items()},
        settings=dict(row.settings or {}),
    )


def _changes(s: Session, old: pd.DataFrame, items: pd.DataFrame) -> dict[str, Any]:
    diff = version_diff(old, items)
    changes = diff.summary()
    derivations: dict[int, Any] = dict(
        s.execute(select(Clip.id, Clip.derivation).where(Clip.id.in_(diff.added["clip_id"].tolist()))).all()
    )
    changes["augmented"] = sum(is_augmented(derivations.get(c)) for c in diff.added["clip_id"])
    changes["derived"] = sum(
        (derivations.get(c) is not None and not is_augmented(derivations.get(c)))
        for c in diff.added["clip_id"]
    )
    return changes


def _parent_frame(s: Session, parent_row: DatasetVersion | None) -> pd.DataFrame:
    if parent_row is None:
        return pd.DataFrame(columns=list(VERSION_COLUMNS))
    return version_frame(s, parent_row.id)


def _frozen_settings(info: ProjectInfo) -> dict[str, Any]:
    d = asdict(info)
    return {k: d[k] for k in FROZEN_SETTINGS}


def _freeze(
    s: Session,
    info: ProjectInfo,
    items: pd.DataFrame,
    *,
    name: str,
    kind: str,
    note: str,
    digest: str,
    filters: dict[str, Any],
    parent_row: DatasetVersion | None,
    actor_id: int | None,
) -> DatasetVersion:
    """Write a version row and its items (the caller has checked the name and the content hash)."""
    changes = _changes(s, _parent_frame(s, parent_row), items)
    row = DatasetVersion(
        project_id=info.id,
        name=name,
        kind=kind,
        note=note or "",
        parent_id=parent_row.id if parent_row is not None else None,
        content_hash=digest,
        filters=filters,
        changes=changes,
        n_clips=len(items),
        settings=_frozen_settings(info),
        created_by=actor_id,
    )
    try:
        with s.begin_nested():
            s.add(row)
            s.flush()
    except IntegrityError as exc:
        raise VersionError(
            f"a dataset version with this name or identical content was just created in {info.name!r}"
        ) from exc
    rows = [
        {
            "version_id": row.id,
            "clip_id": int(r.clip_id),
            "label": None if pd.isna(r.label) else str(r.label),
            "transcript": None if pd.isna(r.transcript) else str(r.transcript),
            "tags": sorted(set(r.tags or [])),
            "split": str(r.split),
            "meta": dict(r.metadata or {}),
        }
        for r in items.itertuples(index=False)
    ]
    for start in range(0, len(rows), 1000):
        s.execute(insert(DatasetItem), rows[start : start + 1000])
    record(
        s,
        entity="dataset_version",
        entity_id=row.id,
        action="create",
        new={"name": name, "kind": kind, "content_hash": digest, "n_clips": len(items), "changes": changes},
        actor_id=actor_id,
        project_id=info.id,
    )
    return row


def _promote(
    s: Session,
    info: ProjectInfo,
    row: DatasetVersion,
    *,
    name: str,
    note: str,
    filters: dict[str, Any],
    parent_row: DatasetVersion | None,
    actor_id: int | None,
) -> DatasetVersion:
    """Give a snapshot a name: the runs trained on it were trained on exactly this version."""
    old = {"name": row.name, "kind": row.kind, "parent_id": row.parent_id}
    row.name, row.kind, row.note, row.filters = name, "named", note or "", filters
    row.parent_id = parent_row.id if parent_row is not None else None
    row.changes = _changes(s, _parent_frame(s, parent_row), version_frame(s, row.id))
    try:
        with s.begin_nested():
            s.flush()
    except IntegrityError as exc:
        raise VersionError(f"a dataset version named {name!r} was just created in {info.name!r}") from exc
    record(
        s,
        entity="dataset_version",
        entity_id=row.id,
        action="update",
        old=old,
        new={"name": name, "kind": "named", "parent_id": row.parent_id, "changes": row.changes},
        actor_id=actor_id,
        project_id=info.id,
    )
    return row


def create_version(
    s: Session,
    project: str | int,
    *,
    name: str,
    note: str = "",
    filters: VersionFilters = VersionFilters(),
    parent: int | str | Literal["latest"] | None = "latest",
    actor_id: int | None = None,
) -> VersionInfo:
    """Freeze the project's current final labels, tags, metadata and splits as a new dataset version.

    When a snapshot frozen for a run on the current labels holds exactly this content, it becomes
    this named version (so the runs trained on it say so) instead of storing the data twice.

    Parameters
    ----------
    project
        Name or id.
    name
        Unique within the project.
    filters
        Which clips to include.
    parent
        ``"latest"`` (the project's newest named version, if any), a version name or id, or None.

    Raises
    ------
    VersionError
        When the name is taken, no clip passes the filters, or a named version with identical content
        exists (the message names it).
    """
    info: ProjectInfo = get_project(s, project)
    name = validate_name(name, what="version name")
    if s.scalar(
        select(DatasetVersion.id).where(DatasetVersion.project_id == info.id, DatasetVersion.name == name)
    ):
        raise VersionError(f"project {info.name!r} already has a dataset version named {name!r}")
    items = current_items(s, info.id, filters=filters)
    if items.empty:
        raise VersionError("no clip passes the filters; a dataset version needs at least one clip")
    digest = content_hash(items)
    same = s.scalars(
        select(DatasetVersion).where(
            DatasetVersion.project_id == info.id, DatasetVersion.content_hash == digest
        )
    ).first()
    if same is not None and same.kind == "named":
        raise VersionError(
            f"the data is identical to dataset version {same.name!r} (hash {digest[:12]}); nothing to freeze"
        )

    if parent == "latest":
        parent_row = _latest(s, info.id, besides=same.id if same is not None else None)
    elif parent is None:
        parent_row = None
    else:
        parent_row = _version_row(s, info.id, parent)
    if same is not None:
        row = _promote(
            s,
            info,
            same,
            name=name,
            note=note,
            filters=filters.to_dict(),
            parent_row=parent_row,
            actor_id=actor_id,
        )
    else:
        row = _freeze(
            s,
            info,
            items,
            name=name,
            kind="named",
            note=note,
            digest=digest,
            filters=filters.to_dict(),
            parent_row=parent_row,
            actor_id=actor_id,
        )
    return _info(s, row)


#: What a snapshot of the current labels holds: every live clip (labelled or not, so that a run can
#: predict the unlabelled ones too), as training on the current labels has always read them.
SNAPSHOT_FILTERS = VersionFilters(resolved_only=False)


def snapshot_current(s: Session, project: str | int, *, actor_id: int | None = None) -> VersionInfo:
    """The project's current data, frozen: an existing version with exactly this content, or a new
    version of kind ``snapshot``. Training on the current labels reads this, never the live rows."""
    info = get_project(s, project)
    items = current_items(s, info.id, filters=SNAPSHOT_FILTERS)
    if items.empty:
        raise VersionError(f"project {info.name!r} has no clips to freeze")
    digest = content_hash(items)
    same = s.scalars(
        select(DatasetVersion).where(
            DatasetVersion.project_id == info.id, DatasetVersion.content_hash == digest
        )
    ).first()
    if same is not None:
        return _info(s, same)
    name = f"snapshot {digest[:12]}"
    row = _freeze(
        s,
        info,
        items,
        name=name,
        kind="snapshot",
        note="the current labels, frozen for a run",
        digest=digest,
        filters=SNAPSHOT_FILTERS.to_dict(),
        parent_row=_latest(s, info.id),
        actor_id=actor_id,
    )
    return _info(s, row)


def version_info(s: Session, version_id: int) -> VersionInfo:
    """A version by its id (a name that looks like a number cannot shadow it here)."""
    row = s.get(DatasetVersion, int(version_id))
    if row is None:
        raise VersionError(f"no dataset version with id {version_id}")
    return _info(s, row)


def get_version(s: Session, project: str | int, ref: str | int) -> VersionInfo:
    """A version of the project by name or id."""
    info = get_project(s, project)
    return _info(s, _version_row(s, info.id, ref))


def list_versions(s: Session, project: str | int, *, include_snapshots: bool = False) -> pd.DataFrame:
    """The project's named versions (and, if asked, the snapshots runs froze), oldest first: ``id,
    name, parent, n_clips, content_hash, note, created_at`` and the change counts ``added, removed,
    relabelled, retagged, resplit, augmented``."""
    info = get_project(s, project)
    q = select(DatasetVersion).where(DatasetVersion.project_id == info.id)
    if not include_snapshots:
        q = q.where(DatasetVersion.kind == "named")
    rows = s.scalars(q.order_by(DatasetVersion.id)).all()
    names = {r.id: r.name for r in rows}
    counts = ("added", "removed", "relabelled", "retagged", "resplit", "augmented")
    columns = ["id", "name", "kind", "parent", "n_clips", "content_hash", "note", "created_at", *counts]
    return pd.DataFrame(
        [
            {
                "id": r.id,
                "name": r.name,
                "kind": r.kind,
                "parent": names.get(r.parent_id) if r.parent_id else None,
                "n_clips": r.n_clips,
                "content_hash": r.content_hash,
                "note": r.note,
                "created_at": r.created_at,
                **{k: int((r.changes or {}).get(k, 0)) for k in counts},
            }
            for r in rows
        ],
        columns=columns,
    )


def version_frame(s: Session, version_id: int) -> pd.DataFrame:
    """The frozen rows of a version: columns :data:`VERSION_COLUMNS`, in clip order.

    The clip row supplies only what never changes on it (its audio's hash and its original name);
    everything else is the version's own copy.
    """
    rows = s.execute(
        select(
            DatasetItem.clip_id,
            Clip.sha256,
            Clip.original_name,
            DatasetItem.label,
            DatasetItem.transcript,
            DatasetItem.tags,
            DatasetItem.split,
            DatasetItem.meta,
        )
        .join(Clip, Clip.id == DatasetItem.clip_id)
        .where(DatasetItem.version_id == version_id)
        .order_by(DatasetItem.clip_id)
    ).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=list(VERSION_COLUMNS))
    for col in ("label", "transcript", "tags", "metadata"):
        frame[col] = frame[col].astype(object)
    frame["metadata"] = [m if isinstance(m, dict) else {} for m in frame["metadata"]]
    return frame


def frozen_clip_frame(s: Session, version_id: int) -> pd.DataFrame:
    """A version's clips in the shape of :func:`labeling.data.clips.clip_frame`, as frozen.

    ``label``, ``transcript``, ``tags``, ``split`` and the metadata columns are the version's; the
    audio's own columns (name, hash, storage key, duration, rate, channels, quality measures) come
    from the clip row, which a fix or a retirement never changes. Retired clips are included.
    """
    items = version_frame(s, version_id)
    audio = pd.DataFrame(
        s.connection()
        .execute(
            select(
                Clip.id,
                Clip.storage_key,
                Clip.duration_s,
                Clip.sample_rate,
                Clip.channels,
                Clip.import_batch_id,
                Clip.parent_clip_id,
                *(getattr(Clip, c) for c in QUALITY_COLUMNS),
            )
            .join(DatasetItem, DatasetItem.clip_id == Clip.id)
            .where(DatasetItem.version_id == version_id)
        )
        .all(),
        columns=[
            "clip_id",
            "storage_key",
            "duration_s",
            "sample_rate",
            "channels",
            "batch_id",
            "parent_clip_id",
            *QUALITY_COLUMNS,
        ],
    )
    frame = items.merge(audio, on="clip_id", how="left")
    frame["resolution_method"] = None
    base = frame[
        [
            "clip_id",
            "original_name",
            "sha256",
            "storage_key",
            "duration_s",
            "sample_rate",
            "channels",
            "split",
            "batch_id",
            "parent_clip_id",
            *QUALITY_COLUMNS,
            "label",
            "transcript",
            "resolution_method",
            "tags",
        ]
    ].copy()
    base["tags"] = [list(t or []) for t in base["tags"]]
    metas = list(frame["metadata"])
    keys = list(dict.fromkeys(k for m in metas for k in m))
    meta = pd.DataFrame({k: [m.get(k) for m in metas] for k in keys if k not in base.columns})
    out = pd.concat([base, meta], axis=1)
    for col in ("batch_id", "parent_clip_id"):
        out[col] = out[col].astype("Int64")
    return out


def diff_versions(s: Session, a: int, b: int) -> VersionDiff:
    """What changed from version ``a`` to version ``b`` (ids; :func:`get_version` turns names into ids)."""
    for vid in (a, b):
        if s.get(DatasetVersion, vid) is None:
            raise VersionError(f"no dataset version with id {vid}")
    return version_diff(version_frame(s, a), version_frame(s, b))
