"""Labels made elsewhere, applied to clips a project already holds: call :func:`import_labels` with a
file, or :func:`apply_label_rows` inside a transaction of your own.

Rows come from :func:`labeling.data.formats.labels.read_labels` and name their clip by ``clip_id``,
``sha256`` or ``file_name`` (the clip's original name, or its last part when that is unique). They are
applied either

* as **annotations** of the row's ``annotator`` (or of the one named for the whole file): one per
  clip and annotator, so applying the same rows again changes nothing, and a changed row updates the
  annotation — unless a reviewer has adjudicated the clip, which locks its annotations; never more
  than the clip's k annotations, unless the project's setting ``imports_raise_k`` allows raising it;
* or as **resolutions** (final labels, method ``imported``): a clip's final label is replaced unless a
  reviewer adjudicated it; tags are added to the clip's tags.

The columns of Earmark's per-annotation export (``unsure``, ``cannot_label_reason``,
``time_spent_ms``, ``convention_version``, ``created_at``, ``updated_at``) are stored with the
annotation when a row has them, so that export imports back whole. An empty cell leaves the stored
value as it is. Everything lands in one transaction with its audit
events; rows that cannot be applied are listed in the report with the reason, and change nothing.
A label the project does not have as a class refuses the whole file, as the annotation API and the
labeling page refuse it, unless ``add_classes`` says to add the new classes to the project.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from db.models import Annotation, Clip, ClipTag, Project, Resolution, User, utcnow
from labeling.data.formats.base import LabelRow, LabelRows, Problem
from labeling.data.formats.labels import read_labels
from labeling.data.importer import ensure_users
from labeling.data.projects import ProjectInfo, get_project, validate_name
from labeling.platform.audit import record_many
from labeling.platform.jobs import queue_report_refreshes
from labeling.platform.workspace import Workspace

#: How :func:`apply_label_rows` can apply rows.
LABEL_TARGETS = ("annotations", "resolutions")
#: The project setting that lets imported annotations raise a clip's k instead of being refused.
RAISE_K_SETTING = "imports_raise_k"
_CHUNK = 500


class LabelImportError(ValueError):
    """The labels cannot be applied at all (nothing was written); the message says why."""


@dataclass
class LabelImportReport:
    """What applying a labels file did. ``problems`` lists the rows that changed nothing, and why."""

    project: str
    as_: str
    n_rows: int
    n_created: int = 0
    n_updated: int = 0
    n_unchanged: int = 0
    problems: list[Problem] = field(default_factory=list)
    new_classes: list[str] = field(default_factory=list)
    users_created: list[str] = field(default_factory=list)
    n_k_raised: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["problems"] = [asdict(p) for p in self.problems]
        return d

    def summary(self) -> str:
        what = "annotations" if self.as_ == "annotations" else "final labels"
        parts = [
            f"{self.n_created:,} {what} added to {self.project!r}",
            f"{self.n_updated:,} updated",
            f"{self.n_unchanged:,} already as given",
            f"{len(self.problems):,} not applied",
        ]
        if self.n_k_raised:
            parts.append(f"k raised on {self.n_k_raised:,} clips")
        if self.new_classes:
            parts.append(f"new classes: {', '.join(self.new_classes)}")
        return "; ".join(parts) + f" — {self.seconds:.1f} s"


@dataclass
class _ClipRef:
    id: int
    deleted: bool


class _Clips:
    """Find a project's clips by id, SHA-256 or original name, with one query."""

    def __init__(self, s: Session, project_id: int) -> None:
        self.by_id: dict[str, _ClipRef] = {}
        self.by_sha: dict[str, _ClipRef] = {}
        self.by_name: dict[str, list[_ClipRef]] = {}
        self.by_tail: dict[str, list[_ClipRef]] = {}
        q = select(Clip.id, Clip.sha256, Clip.original_name, Clip.deleted_at).where(
            Clip.project_id == project_id
        )
        for cid, sha, name, deleted in s.execute(q):
            ref = _ClipRef(cid, deleted is not None)
            self.by_id[str(cid)] = ref
            self.by_sha[sha] = ref
            self.by_name.setdefault(name, []).append(ref)
            self.by_tail.setdefault(name.rsplit("/", 1)[-1], []).append(ref)

    def find(self, row: LabelRow) -> _ClipRef | str:
        """The clip a row names, or why there is none."""
        if row.ref_kind == "clip_id":
            hit = self.by_id.get(row.ref.strip())
            return hit or f"no clip with id {row.ref!r} in this project"
        if row.ref_kind == "sha256":
            hit = self.by_sha.get(row.ref.lower())
            return hit or f"no clip with SHA-256 {row.ref[:16]}… in this project"
        name = row.ref.replace("\\", "/")
        hits = self.by_name.get(name) or ([] if "/" in name else self.by_tail.get(name, []))
        if len(hits) == 1:
            return hits[0]
        if hits:
            return f"{len(hits)} clips are named {row.ref!r}; name the clip by sha256 or clip_id"
        return f"no clip named {row.ref!r} in this project"


def _resolved_rows(
    s: Session, info: ProjectInfo, rows: Iterable[LabelRow], problems: list[Problem]
) -> list[tuple[LabelRow, int]]:
    clips = _Clips(s, info.id)
    out = []
    for row in rows:
        hit = clips.find(row)
        if isinstance(hit, str):
            problems.append(Problem(f"line {row.line}", f"{hit}; skipped"))
        elif hit.deleted:
            problems.append(Problem(f"line {row.line}", f"clip {hit.id} was deleted; skipped"))
        else:
            out.append((row, hit.id))
    return out


def apply_label_rows(
    s: Session,
    project: str | int,
    rows: LabelRows | Iterable[LabelRow],
    *,
    as_: str = "annotations",
    annotator: str | None = None,
    actor_id: int | None = None,
    add_classes: bool = False,
) -> LabelImportReport:
    """Apply label rows to a project's existing clips, in the caller's (write) transaction.

    Parameters
    ----------
    project
        The project's name or id.
    rows
        What :func:`~labeling.data.formats.labels.read_labels` returned (its problems are reported too),
        or the rows alone.
    as_
        ``"annotations"``: each row is the annotation of its ``annotator`` (``annotator`` names the
        one for rows without); ``"resolutions"``: each row is the clip's final label.
    actor_id
        Who applies them, for the audit log and ``Resolution.resolved_by``.
    add_classes
        Add labels the project does not have to its classes; without it such labels refuse the file
        (:class:`LabelImportError`, nothing written).

    Returns
    -------
    LabelImportReport
        Counts of created, updated and unchanged labels, and a Problem for every row not applied.
    """
    started = time.perf_counter()
    if as_ not in LABEL_TARGETS:
        raise LabelImportError(f"labels are applied as {' or '.join(LABEL_TARGETS)}, not {as_!r}")
    info = get_project(s, project)
    problems = list(rows.problems) if isinstance(rows, LabelRows) else []
    items = list(rows.rows if isinstance(rows, LabelRows) else rows)
    report = LabelImportReport(project=info.name, as_=as_, n_rows=len(items))
    if as_ == "annotations":
        if annotator is not None:
            annotator = validate_name(annotator, what="annotator name")
        elif items and all(r.annotator is None for r in items):
            raise LabelImportError(
                "the labels name no annotator; name the one who made them (--annotator NAME), "
                "or apply them as final labels (--as resolutions)"
            )
    unknown = sorted({r.label for r in items if r.label} - set(info.classes), key=lambda c: (len(c), c))
    if unknown and not add_classes:
        classes = f"its classes are {', '.join(info.classes)}" if info.classes else "it has no classes yet"
        raise LabelImportError(
            f"the labels name {len(unknown)} class(es) {info.name!r} does not have: "
            f"{', '.join(unknown[:20])}{' …' if len(unknown) > 20 else ''} ({classes}); fix the file, "
            "or add them to the project's classes (--add-classes); nothing was applied"
        )
    resolved = _resolved_rows(s, info, items, problems)
    if as_ == "annotations":
        stored = _apply_annotations(s, info, resolved, annotator, actor_id, problems, report)
    else:
        stored = _apply_resolutions(s, info, resolved, actor_id, problems, report)
    report.new_classes = _extend_classes(s, info, stored)
    queue_report_refreshes(s, info.id)
    report.problems = problems
    report.seconds = time.perf_counter() - started
    return report


def import_labels(
    ws: Workspace,
    path: Path,
    project: str | int,
    *,
    as_: str = "annotations",
    annotator: str | None = None,
    actor_id: int | None = None,
    add_classes: bool = False,
) -> LabelImportReport:
    """Read a labels file (CSV, TSV or JSON Lines) and apply it in one transaction.

    See :func:`apply_label_rows`; raises :class:`~labeling.data.formats.base.FormatError` when the file
    cannot be read and :class:`LabelImportError` when it cannot be applied, writing nothing.
    """
    rows = read_labels(Path(path))
    with ws.db.write() as s:
        return apply_label_rows(
            s, project, rows, as_=as_, annotator=annotator, actor_id=actor_id, add_classes=add_classes
        )


# ---------------------------------------------------------------- annotations


def _chunks(values: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _apply_annotations(
    s: Session,
    info: ProjectInfo,
    resolved: list[tuple[LabelRow, int]],
    default: str | None,
    actor_id: int | None,
    problems: list[Problem],
    report: LabelImportReport,
) -> list[str]:
    """Store the rows as annotations; returns the labels stored."""
    wanted: list[tuple[LabelRow, int, str]] = []
    for row, clip_id in resolved:
        name = row.annotator or default
        if name is None:
            problems.append(Problem(f"line {row.line}", "no annotator named for this row; skipped"))
            continue
        wanted.append((row, clip_id, name))
    if not wanted:
        return []
    names = {name for _, _, name in wanted}
    known = set(s.scalars(select(User.name).where(User.name.in_(names))))
    user_ids = ensure_users(s, names)
    report.users_created = sorted(names - known)

    clip_ids = sorted({cid for _, cid, _ in wanted})
    # Row locks on PostgreSQL order this import against annotators submitting to the same clips
    # (SQLite's write transaction already holds the database lock).
    counts: dict[int, list[int]] = {}
    locked: set[int] = set()
    existing: dict[tuple[int, int], Annotation] = {}
    for chunk in _chunks(clip_ids):
        q = (
            select(Clip.id, Clip.annotation_count, Clip.annotations_needed)
            .where(Clip.id.in_(chunk))
            .with_for_update()
        )
        counts.update({cid: [n, k] for cid, n, k in s.execute(q)})
        locked.update(
            s.scalars(
                select(Resolution.clip_id).where(
                    Resolution.clip_id.in_(chunk), Resolution.method == "adjudicated"
                )
            )
        )
        for a in s.scalars(select(Annotation).where(Annotation.clip_id.in_(chunk))):
            existing[(a.clip_id, a.annotator_id)] = a

    may_raise_k = bool(info.settings.get(RAISE_K_SETTING))
    now = utcnow()
    new_rows: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    raised: set[int] = set()
    seen: set[tuple[int, int]] = set()
    for row, clip_id, name in wanted:
        user_id = user_ids[name]
        where = f"line {row.line}"
        if (clip_id, user_id) in seen:
            problems.append(Problem(where, f"{name} labelled this clip on an earlier line; skipped"))
            continue
        seen.add((clip_id, user_id))
        given = _annotation_given(row)
        old = existing.get((clip_id, user_id))
        if old is not None:
            before_values = {
                "label": old.label,
                "transcript": old.transcript,
                "tags": list(old.tags or []),
                "unsure": bool(old.unsure),
                "cannot_label_reason": old.cannot_label_reason,
                "time_spent_ms": old.time_spent_ms,
                "convention_version": old.convention_version,
                "created_at": _utc(old.created_at),
            }
            after_values = {**before_values, **given}
            if after_values == before_values:
                report.n_unchanged += 1
            elif clip_id in locked:
                problems.append(
                    Problem(where, f"clip {clip_id} was adjudicated; {name}'s annotation is locked")
                )
            else:
                updates.append({"id": old.id, **after_values, "updated_at": row.updated_at or now})
                events.append(
                    {
                        "entity": "annotation",
                        "entity_id": old.id,
                        "action": "update",
                        "old": before_values,
                        "new": {**after_values, "source": "labels import"},
                    }
                )
                report.n_updated += 1
            continue
        n, k = counts[clip_id]
        if n >= k:
            if not may_raise_k:
                problems.append(
                    Problem(
                        where,
                        f"clip {clip_id} already has its {k} annotation(s); {name}'s was not added "
                        f"(the project setting {RAISE_K_SETTING} lets imports raise k)",
                    )
                )
                continue
            counts[clip_id][1] = k = n + 1
            raised.add(clip_id)
        counts[clip_id][0] = n + 1
        new_rows.append(
            {
                "project_id": info.id,
                "clip_id": clip_id,
                "annotator_id": user_id,
                "label": given.get("label"),
                "transcript": given.get("transcript"),
                "tags": given.get("tags", []),
                "unsure": given.get("unsure", False),
                "cannot_label_reason": given.get("cannot_label_reason"),
                "time_spent_ms": given.get("time_spent_ms"),
                "convention_version": given.get("convention_version"),
                "source": "labels",
                "created_at": given.get("created_at", now),
                "updated_at": row.updated_at or given.get("created_at", now),
            }
        )
    touched = {r["clip_id"] for r in new_rows}
    if touched:
        s.execute(
            update(Clip),
            [
                {"id": cid, "annotations_needed": counts[cid][1], "annotation_count": counts[cid][0]}
                for cid in sorted(touched)
            ],
        )
    if updates:
        s.execute(update(Annotation), updates)
    if new_rows:
        result = s.execute(
            insert(Annotation).returning(Annotation.id, Annotation.clip_id, Annotation.annotator_id),
            new_rows,
        )
        ids = {(cid, uid): aid for aid, cid, uid in result}
        for r in new_rows:
            events.append(
                {
                    "entity": "annotation",
                    "entity_id": ids[(r["clip_id"], r["annotator_id"])],
                    "action": "create",
                    "new": {
                        k: r[k]
                        for k in (
                            "clip_id",
                            "annotator_id",
                            "label",
                            "transcript",
                            "tags",
                            "unsure",
                            "cannot_label_reason",
                            "source",
                        )
                    },
                }
            )
    events += [
        {
            "entity": "clip",
            "entity_id": cid,
            "action": "update",
            "new": {"annotations_needed": counts[cid][1]},
        }
        for cid in sorted(raised)
    ]
    record_many(s, events, actor_id=actor_id, project_id=info.id)
    report.n_created += len(new_rows)
    report.n_k_raised = len(raised)
    return [r["label"] for r in [*new_rows, *updates] if r.get("label")]


def _given(row: LabelRow) -> dict[str, Any]:
    """The values a row sets; an empty cell sets nothing."""
    given: dict[str, Any] = {}
    if row.label is not None:
        given["label"] = row.label
    if row.transcript is not None:
        given["transcript"] = row.transcript
    if row.tags:
        given["tags"] = list(row.tags)
    return given


def _annotation_given(row: LabelRow) -> dict[str, Any]:
    """The values a row sets on an annotation: :func:`_given`'s, and what Earmark's per-annotation
    table also carries (doubt, the reason a clip could not be labelled, time spent, the convention
    version, when it was made). A reason clears the label and transcript, as the labeling page does."""
    given = _given(row)
    for key in ("unsure", "cannot_label_reason", "time_spent_ms", "convention_version", "created_at"):
        value = getattr(row, key)
        if value is not None:
            given[key] = value
    if row.cannot_label_reason is not None:
        given["label"] = given["transcript"] = None
    return given


def _utc(value: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite hands back naive ones)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# ---------------------------------------------------------------- resolutions


def _apply_resolutions(
    s: Session,
    info: ProjectInfo,
    resolved: list[tuple[LabelRow, int]],
    actor_id: int | None,
    problems: list[Problem],
    report: LabelImportReport,
) -> list[str]:
    """Store the rows as final labels; returns the labels stored."""
    clip_ids = sorted({cid for _, cid in resolved})
    existing: dict[int, Resolution] = {}
    tags: dict[int, set[str]] = {}
    for chunk in _chunks(clip_ids):
        for r in s.scalars(select(Resolution).where(Resolution.clip_id.in_(chunk)).with_for_update()):
            existing[r.clip_id] = r
        for cid, tag in s.execute(select(ClipTag.clip_id, ClipTag.tag).where(ClipTag.clip_id.in_(chunk))):
            tags.setdefault(cid, set()).add(tag)
    now = utcnow()
    first_line: dict[int, int] = {}
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    tag_rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for row, clip_id in resolved:
        where = f"line {row.line}"
        if clip_id in first_line:
            problems.append(
                Problem(
                    where, f"clip {clip_id} was given a final label on line {first_line[clip_id]}; skipped"
                )
            )
            continue
        first_line[clip_id] = row.line
        given = _given(row)
        new_tags = [t for t in given.pop("tags", []) if t not in tags.get(clip_id, set())]
        old = existing.get(clip_id)
        before = {"label": old.label, "transcript": old.transcript} if old is not None else None
        after = {**(before or {"label": None, "transcript": None}), **given}
        changes_label = after != before if old is not None else bool(given)
        if old is not None and old.method == "adjudicated" and changes_label:
            problems.append(Problem(where, f"clip {clip_id} was adjudicated by a reviewer; not replaced"))
            continue
        if not changes_label and not new_tags:
            report.n_unchanged += 1
            continue
        if changes_label and old is None:
            inserts.append(
                {
                    "clip_id": clip_id,
                    "project_id": info.id,
                    **after,
                    "method": "imported",
                    "resolved_by": actor_id,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            events.append(
                {"entity": "resolution", "entity_id": clip_id, "action": "create", "new": {**after}}
            )
        elif changes_label:
            updates.append(
                {
                    "clip_id": clip_id,
                    **after,
                    "method": "imported",
                    "resolved_by": actor_id,
                    "agreement": None,  # whatever agreement was measured was about the old label
                    "updated_at": now,
                }
            )
            events.append(
                {
                    "entity": "resolution",
                    "entity_id": clip_id,
                    "action": "update",
                    "old": {**(before or {}), "method": old.method if old else None},
                    "new": {**after, "method": "imported"},
                }
            )
        for tag in new_tags:
            tag_rows.append(
                {
                    "clip_id": clip_id,
                    "tag": tag,
                    "source": "labels",
                    "created_by": actor_id,
                    "created_at": now,
                }
            )
        if new_tags:
            events.append(
                {"entity": "clip", "entity_id": clip_id, "action": "update", "new": {"tags_added": new_tags}}
            )
        if old is None and changes_label:
            report.n_created += 1
        else:
            report.n_updated += 1
    if inserts:
        s.execute(insert(Resolution), inserts)
    if updates:
        s.execute(update(Resolution), updates)
    if tag_rows:
        s.execute(insert(ClipTag), tag_rows)
    record_many(s, events, actor_id=actor_id, project_id=info.id)
    return [r["label"] for r in [*inserts, *updates] if r.get("label")]


def _extend_classes(s: Session, info: ProjectInfo, labels: list[str]) -> list[str]:
    new = sorted(set(labels) - set(info.classes), key=lambda c: (len(c), c))
    if new:
        project = s.get(Project, info.id)
        assert project is not None
        project.classes = [*info.classes, *new]
    return new
