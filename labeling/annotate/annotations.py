"""Annotations: :func:`submit_annotation`, :func:`edit_annotation`, :func:`undo_annotation`,
:func:`label_task` (what the label page shows), :func:`label_keymap` (its keys), :func:`my_annotations`
and :func:`annotations_frame` (long format, for agreement).

The database holds the invariants; these services turn its refusals into plain outcomes:

* one annotation per (clip, annotator): a second one is ``already_labelled``;
* never more than k per clip: the count is raised in the same transaction as the insert, only while
  ``annotation_count < annotations_needed`` (and the CHECK constraint backs it), else ``full``;
* a repeated submit with the same idempotency key (double click, two tabs, a retry) stores nothing new
  and answers ``duplicate`` with the id of the annotation the first one stored.

Bad input (a label not in the project's classes, an unknown tag, nothing chosen) raises
:class:`AnnotationError` and changes nothing. Every change is written to the audit log in the same
transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from sqlalchemy import (
    String,
    bindparam,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.engine import execute_once
from db.models import (
    Annotation,
    AuditEvent,
    Claim,
    Clip,
    ConventionVersion,
    ModelRun,
    Prediction,
    Project,
    Resolution,
    User,
    utcnow,
)
from labeling.data.conventions import (
    ConventionInfo,
    GoldInfo,
    current_convention,
    current_version,
    gold_examples_of,
)
from labeling.data.projects import ProjectInfo, get_project
from labeling.platform.audit import record
from labeling.platform.jobs import (
    project_scope,
    queue_report_refreshes,
    report_refresh_kinds,
    report_refreshes_queued,
)
from labeling.platform.storage import AudioStorage

MAX_TRANSCRIPT_CHARS = 20_000
MAX_REASON_CHARS = 500
MAX_KEY_CHARS = 100

Status = Literal[
    "created", "duplicate", "updated", "undone", "already_labelled", "full", "locked", "unavailable"
]

ANNOTATION_COLUMNS = (
    "annotation_id",
    "clip_id",
    "annotator_id",
    "annotator",
    "label",
    "transcript",
    "tags",
    "unsure",
    "cannot_label_reason",
    "time_spent_ms",
    "convention_version",
    "source",
    "created_at",
    "updated_at",
)


class AnnotationError(ValueError):
    """The submitted annotation is not valid for this project; the message says why."""


@dataclass(frozen=True)
class SubmitResult:
    """What happened to a submit or edit. ``ok`` is True when the annotation is stored as given."""

    status: Status
    clip_id: int
    annotation_id: int | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("created", "duplicate", "updated", "undone")


@dataclass(frozen=True)
class LabelTask:
    """Everything the label page shows for one clip, and nothing of anyone else's labels.

    ``prediction`` is only filled when the project turns pre-annotation on.
    """

    clip_id: int
    audio_path: Path
    duration_s: float
    sample_rate: int
    channels: int
    project: ProjectInfo
    convention: ConventionInfo | None
    gold: list[GoldInfo]
    prediction: dict[str, Any] | None = None
    mine: dict[str, Any] | None = None
    locked: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


# --- keyboard -----------------------------------------------------------------------------------------

RESERVED_KEYS = frozenset("cr")  # Streamlit keeps these for itself


def class_shortcuts(classes: Sequence[str]) -> list[str | None]:
    """The key that chooses each class on the label page.

    When every class is a single letter or digit, the class is its own key (press 7 for "7");
    otherwise 1–9 then 0 in order. Beyond ten classes there are no class keys.
    """
    own = [c.lower() for c in classes]
    if (
        own
        and all(len(c) == 1 and c.isascii() and c.isalnum() for c in own)
        and len(set(own)) == len(own)
        and not RESERVED_KEYS & set(own)
    ):
        return list(own)
    if len(classes) <= 10:
        return [str((i + 1) % 10) for i in range(len(classes))]
    return [None] * len(classes)


def action_shortcuts(class_keys: Sequence[str | None]) -> dict[str, str]:
    """Keys for skip and cannot-label that do not clash with the class keys."""
    taken = {k for k in class_keys if k}
    return {
        action: key if key not in taken else f"shift+{key}"
        for action, key in (("skip", "s"), ("cannot", "x"))
    }


#: Keys the label page's player handles in the browser, whatever the project.
PLAYER_KEYS = (
    ("Space", "play or pause; once the clip has ended, play it again"),
    ("[ / ]", "slower / faster playback"),
    ("+ / -", "zoom the waveform in / out"),
    ("Backspace or Ctrl+Z", "undo your last label while it can still be changed"),
    ("?", "show these shortcuts"),
)
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class Keymap:
    """Every key of the label page for one project; no key does two things."""

    classes: list[str | None]  # per class, in the project's order
    skip: str
    cannot: str
    unsure: str | None
    tags: dict[str, str]  # "group:value" -> key

    def sheet(self, classes: Sequence[str]) -> list[tuple[str, str]]:
        """(key, what it does) rows for the shortcut sheet, keys written as they are typed (``a``,
        ``Shift+S``); a letter also works with Shift (see :meth:`shift_too`)."""
        rows = [(k, f"label as {c}") for c, k in zip(classes, self.classes, strict=True) if k]
        if self.unsure:
            rows.append((self.unsure, "mark or unmark Unsure"))
        rows += [(k, f"tag {tag}") for tag, k in self.tags.items()]
        rows += [(self.skip, "skip this clip"), (self.cannot, "cannot label (choose the reason first)")]
        return [(_as_typed(k), what) for k, what in rows] + list(PLAYER_KEYS)

    def shift_too(self, key: str | None) -> bool:
        """Whether Shift with ``key`` does what ``key`` does: for a letter, unless Shift+letter is a key
        of its own (Skip is Shift+S when ``s`` labels a class). Digits and symbols are left alone."""
        used = {*self.classes, self.skip, self.cannot, self.unsure, *self.tags.values()}
        return key is not None and len(key) == 1 and key in _LETTERS and f"shift+{key}" not in used


def _as_typed(key: str) -> str:
    """``a`` stays ``a``; ``shift+s`` is ``Shift+S`` and ``ctrl+enter`` ``Ctrl+Enter``, as Streamlit's
    buttons write them."""
    return key if len(key) == 1 else "+".join(part.title() for part in key.split("+"))


def label_keymap(classes: Sequence[str], tag_groups: Mapping[str, Sequence[str]]) -> Keymap:
    """The keys of the label page: classes (:func:`class_shortcuts`), skip and cannot-label
    (:func:`action_shortcuts`), ``u`` for Unsure, and a letter for each tag, taken from the tag's own
    letters where one is free (``car`` is ``a`` when ``c`` is taken), else the first free letter.
    Tags beyond the free letters get no key."""
    class_keys = class_shortcuts(classes)
    actions = action_shortcuts(class_keys)
    taken = {k for k in class_keys if k} | set(actions.values()) | RESERVED_KEYS
    unsure = "u" if "u" not in taken else None
    taken.add("u")
    tags: dict[str, str] = {}
    for group, values in tag_groups.items():
        for value in values:
            free = [ch for ch in f"{value.lower()}{_LETTERS}" if ch in _LETTERS and ch not in taken]
            if free:
                tags[f"{group}:{value}"] = free[0]
                taken.add(free[0])
    return Keymap(class_keys, actions["skip"], actions["cannot"], unsure, tags)


# --- validation --------------------------------------------------------------------------------------


def _clean(
    project: Any,
    *,
    label: str | None,
    transcript: str | None,
    tags: Iterable[str],
    unsure: bool,
    cannot_label_reason: str | None,
    time_spent_ms: int | None,
) -> dict[str, Any]:
    label = (label or "").strip() or None
    transcript = None if transcript is None else " ".join(str(transcript).split())
    reason = (cannot_label_reason or "").strip() or None
    tags = list(dict.fromkeys(str(t).strip() for t in tags if str(t).strip()))
    classifies = project.task_kind in ("classification", "both")
    transcribes = project.task_kind in ("transcription", "both")
    if reason is not None:
        if len(reason) > MAX_REASON_CHARS:
            raise AnnotationError(f"the reason is longer than {MAX_REASON_CHARS} characters")
        label, transcript = None, None
    else:
        if label is not None and not classifies:
            raise AnnotationError("this project transcribes only; it has no classes to choose from")
        if label is not None and project.classes and label not in project.classes:
            raise AnnotationError(f"{label!r} is not one of this project's classes")
        if classifies and label is None:
            raise AnnotationError("choose a class (or mark the clip as impossible to label, with a reason)")
        if transcribes and not transcript:
            raise AnnotationError(
                "type the transcript (or mark the clip as impossible to label, with a reason)"
            )
        if transcript is not None and len(transcript) > MAX_TRANSCRIPT_CHARS:
            raise AnnotationError(f"the transcript is longer than {MAX_TRANSCRIPT_CHARS:,} characters")
        transcript = transcript or None
    vocabulary = {f"{g}:{v}" for g, values in (project.tag_groups or {}).items() for v in values}
    unknown = [t for t in tags if vocabulary and t not in vocabulary]
    if unknown:
        raise AnnotationError(f"unknown tag(s): {', '.join(unknown)}")
    if time_spent_ms is not None and (int(time_spent_ms) < 0):
        raise AnnotationError("time spent cannot be negative")
    return {
        "label": label,
        "transcript": transcript,
        "tags": tags,
        "unsure": bool(unsure),
        "cannot_label_reason": reason,
        "time_spent_ms": None if time_spent_ms is None else min(int(time_spent_ms), 2**31 - 1),
    }


AUDITED = (
    "clip_id",
    "annotator_id",
    "label",
    "transcript",
    "tags",
    "unsure",
    "cannot_label_reason",
    "convention_version",
)


def _audit_values(a: Annotation) -> dict[str, Any]:
    return {key: list(a.tags or []) if key == "tags" else getattr(a, key) for key in AUDITED}


_ANN_COLUMNS = (Annotation.id, Annotation.clip_id, Annotation.annotator_id, Annotation.idempotency_key)
_BY_PERSON = select(*_ANN_COLUMNS).where(
    Annotation.clip_id == bindparam("clip_id"), Annotation.annotator_id == bindparam("user_id")
)
# Two index lookups rather than an OR: with a mostly-NULL key column, SQLite's statistics make an OR
# look like a full scan.
_BY_PERSON_OR_KEY = union_all(
    _BY_PERSON,
    # Keys are scoped per annotator and project (the unique constraint says the same).
    select(*_ANN_COLUMNS).where(
        Annotation.project_id == bindparam("project_id"),
        Annotation.annotator_id == bindparam("user_id"),
        Annotation.idempotency_key == bindparam("key"),
    ),
)


def _stored_already(
    s: Session, project_id: int, clip_id: int, user_id: int, idempotency_key: str | None
) -> SubmitResult | None:
    """``duplicate`` or ``already_labelled`` if this submit (or another by the same person) is stored."""
    params = {"project_id": project_id, "clip_id": clip_id, "user_id": user_id, "key": idempotency_key}
    hits = s.connection().execute(_BY_PERSON if idempotency_key is None else _BY_PERSON_OR_KEY, params).all()
    for hit in hits:
        if idempotency_key is not None and hit.idempotency_key == idempotency_key:
            if (hit.clip_id, hit.annotator_id) != (clip_id, user_id):
                raise AnnotationError("you already used this idempotency key for another clip")
            return SubmitResult("duplicate", clip_id, hit.id, "already saved (repeated submit)")
    if hits:
        return SubmitResult("already_labelled", clip_id, hits[0].id, "you have already labelled this clip")
    return None


def _refused(
    s: Session, project_id: int, clip_id: int, user_id: int, idempotency_key: str | None
) -> SubmitResult:
    """Classify a submit that found no free slot on the clip."""
    clip = s.connection().execute(select(Clip.project_id, Clip.deleted_at).where(Clip.id == clip_id)).first()
    if clip is None or clip.project_id != project_id or clip.deleted_at is not None:
        return SubmitResult("unavailable", clip_id, None, "this clip is no longer in the project")
    return _outcome_after_conflict(s, project_id, clip_id, user_id, idempotency_key)


def _outcome_after_conflict(
    s: Session, project_id: int, clip_id: int, user_id: int, idempotency_key: str | None
) -> SubmitResult:
    """Classify a refused submit by what is in the database now."""
    return _stored_already(s, project_id, clip_id, user_id, idempotency_key) or SubmitResult(
        "full", clip_id, None, "this clip already has all the annotations it needs"
    )


@cache
def _insert_statement(dialect: str) -> Any:
    ins = (postgresql if dialect == "postgresql" else sqlite).insert(Annotation)
    return ins.on_conflict_do_nothing().returning(Annotation.id)


_FIELDS = (
    "project_id",
    "clip_id",
    "annotator_id",
    "convention_version",
    "idempotency_key",
    "source",
    "created_at",
    "updated_at",
    "label",
    "transcript",
    "tags",
    "unsure",
    "cannot_label_reason",
    "time_spent_ms",
)


_FACTS = 9  # columns of the facts statement before one per report-refreshing kind


@cache
def _facts_statement(refreshes: tuple[str, ...]) -> Any:
    """Everything a submit checks before it writes, in one read: the project's choices and settings,
    whether the annotator is active, the current convention version, this person's annotation of the
    clip and the one stored under this idempotency key, and which report refreshes are queued."""
    p: Any = bindparam("p")
    u: Any = bindparam("u")
    c: Any = bindparam("c")
    key: Any = bindparam("key")
    keyed = (
        (Annotation.project_id == p) & (Annotation.annotator_id == u) & (Annotation.idempotency_key == key)
    )
    probes = dict(report_refreshes_queued(bindparam("scope")))
    return select(
        Project.task_kind,
        Project.classes,
        Project.tag_groups,
        Project.settings,
        select(User.active).where(User.id == u).scalar_subquery().label("active"),
        select(func.max(ConventionVersion.version))
        .where(ConventionVersion.project_id == p)
        .scalar_subquery()
        .label("version"),
        select(Annotation.id)
        .where(Annotation.clip_id == c, Annotation.annotator_id == u)
        .scalar_subquery()
        .label("mine"),
        select(Annotation.id).where(keyed).scalar_subquery().label("keyed"),
        select(Annotation.clip_id).where(keyed).scalar_subquery().label("keyed_clip"),
        *(probes[name].label(f"refresh_{i}") for i, name in enumerate(refreshes)),
    ).where(Project.id == p)


@cache
def _pg_write_statement() -> Any:
    """A submit's writes on PostgreSQL in one statement: lock the clip while it has a slot, insert the
    annotation (nothing on a conflict), raise the count, drop the annotator's claim and write the audit
    event, the last three only when the insert stored a row. Returns (annotation_id, had_slot)."""
    table = Annotation.__table__.c
    slot = (
        select(Clip.id)
        .where(
            Clip.id == bindparam("a_clip_id"),
            Clip.project_id == bindparam("a_project_id"),
            Clip.annotation_count < Clip.annotations_needed,
            Clip.deleted_at.is_(None),
        )
        .with_for_update()
        .cte("slot")
    )
    # Parameters are prefixed: SQLAlchemy reads execution parameters named like a column as values to
    # SET in an UPDATE, also in an UPDATE inside a WITH.
    row = select(
        *(slot.c.id if f == "clip_id" else bindparam(f"a_{f}", type_=table[f].type) for f in _FIELDS)
    )
    ins = (
        postgresql.insert(Annotation)
        .from_select(list(_FIELDS), row)
        .on_conflict_do_nothing()
        .returning(Annotation.id, Annotation.clip_id)
        .cte("ins")
    )
    bump = (
        update(Clip)
        .where(Clip.id == select(ins.c.clip_id).scalar_subquery())
        .values(annotation_count=Clip.annotation_count + 1)
        .returning(Clip.id)
        .cte("bump")
    )
    drop = (
        delete(Claim)
        .where(
            Claim.clip_id == bindparam("a_clip_id"),
            Claim.user_id == bindparam("a_annotator_id"),
            exists(ins.select()),
        )
        .returning(Claim.clip_id)
        .cte("drop")
    )
    audit_type = AuditEvent.__table__.c.new.type
    audit = (
        insert(AuditEvent)
        .from_select(
            ["entity", "entity_id", "action", "old", "new", "actor_id", "project_id", "created_at"],
            select(
                literal("annotation"),
                cast(ins.c.id, String),
                literal("create"),
                bindparam("a_audit_old", type_=audit_type),
                bindparam("a_audit_new", type_=audit_type),
                bindparam("a_annotator_id", type_=table["annotator_id"].type),
                bindparam("a_project_id", type_=table["project_id"].type),
                bindparam("a_created_at", type_=table["created_at"].type),
            ),
        )
        .returning(AuditEvent.id)
        .cte("audit")
    )
    return select(
        select(ins.c.id).scalar_subquery().label("annotation_id"),
        exists(slot.select()).label("had_slot"),
    ).add_cte(bump, drop, audit)


_TAKE_SLOT = (
    update(Clip)
    .where(
        Clip.id == bindparam("c"),
        Clip.project_id == bindparam("p"),
        Clip.annotation_count < Clip.annotations_needed,
        Clip.deleted_at.is_(None),
    )
    .values(annotation_count=Clip.annotation_count + 1)
)
_GIVE_BACK = update(Clip).where(Clip.id == bindparam("c")).values(annotation_count=Clip.annotation_count - 1)
_DROP_CLAIM = delete(Claim).where(Claim.clip_id == bindparam("c"), Claim.user_id == bindparam("u"))


# --- submit and edit ---------------------------------------------------------------------------------


def submit_annotation(
    s: Session,
    project_id: int,
    user_id: int,
    clip_id: int,
    *,
    label: str | None = None,
    transcript: str | None = None,
    tags: Iterable[str] = (),
    unsure: bool = False,
    cannot_label_reason: str | None = None,
    time_spent_ms: int | None = None,
    convention_version: int | None = None,
    idempotency_key: str | None = None,
    source: str = "app",
) -> SubmitResult:
    """Store one annotation by ``user_id`` of ``clip_id``, in the caller's (write) transaction.

    ``convention_version`` is the version the annotator was shown (default: the current one).
    Returns a :class:`SubmitResult`; concurrency outcomes never raise.
    """
    conn = s.connection()
    refreshes = tuple(report_refresh_kinds())
    facts_params = {
        "p": project_id,
        "u": user_id,
        "c": clip_id,
        "key": None if idempotency_key is None else str(idempotency_key),
        "scope": project_scope(project_id),
    }
    facts = execute_once(conn, _facts_statement, refreshes, params=facts_params).first()
    if facts is None:
        raise AnnotationError(f"no project {project_id}")
    if not facts.active:
        raise AnnotationError(f"no active user {user_id}")
    if idempotency_key is not None:
        idempotency_key = str(idempotency_key)
        if not idempotency_key or len(idempotency_key) > MAX_KEY_CHARS:
            raise AnnotationError(f"an idempotency key has 1 to {MAX_KEY_CHARS} characters")
    values = _clean(
        facts,
        label=label,
        transcript=transcript,
        tags=tags,
        unsure=unsure,
        cannot_label_reason=cannot_label_reason,
        time_spent_ms=time_spent_ms,
    )
    # A retry of something already stored answers the same way, whatever happened to the clip since.
    if facts.keyed is not None:
        if facts.keyed_clip != clip_id:
            raise AnnotationError("you already used this idempotency key for another clip")
        return SubmitResult("duplicate", clip_id, facts.keyed, "already saved (repeated submit)")
    if facts.mine is not None:
        return SubmitResult("already_labelled", clip_id, facts.mine, "you have already labelled this clip")
    now = utcnow()
    row = {
        "project_id": project_id,
        "clip_id": clip_id,
        "annotator_id": user_id,
        "convention_version": convention_version if convention_version is not None else facts.version,
        "idempotency_key": idempotency_key,
        "source": source,
        "created_at": now,
        "updated_at": now,
        **values,
    }
    audit = {k: row[k] for k in AUDITED}
    if conn.dialect.name == "postgresql":
        params = {f"a_{k}": v for k, v in {**row, "audit_old": None, "audit_new": audit}.items()}
        written = execute_once(conn, _pg_write_statement, params=params).one()
        annotation_id = written.annotation_id
        if annotation_id is None:
            if not written.had_slot:
                return _refused(s, project_id, clip_id, user_id, idempotency_key)
            # Someone (this person, in another tab or a retry) stored it first.
            return _outcome_after_conflict(s, project_id, clip_id, user_id, idempotency_key)
    else:
        # The row lock taken here orders concurrent submits of one clip, and the WHERE is re-checked
        # after any wait, so k is never exceeded (the CHECK constraint stays the last guard).
        if conn.execute(_TAKE_SLOT, {"c": clip_id, "p": project_id}).rowcount != 1:  # type: ignore[attr-defined, unused-ignore]  # typed on SQLAlchemy 2.1 only
            return _refused(s, project_id, clip_id, user_id, idempotency_key)
        try:
            annotation_id = conn.execute(_insert_statement(conn.dialect.name), row).scalar()
        except IntegrityError as exc:  # only a foreign key can fail here: unique keys are ignored above
            raise AnnotationError(f"unknown clip {clip_id} or annotator {user_id}") from exc
        if annotation_id is None:
            # Someone (this person, in another tab or a retry) stored it first: give the slot back.
            conn.execute(_GIVE_BACK, {"c": clip_id})
            return _outcome_after_conflict(s, project_id, clip_id, user_id, idempotency_key)
        conn.execute(_DROP_CLAIM, {"c": clip_id, "u": user_id})
        record(
            s,
            entity="annotation",
            entity_id=annotation_id,
            action="create",
            new=audit,
            actor_id=user_id,
            project_id=project_id,
        )
    queued = [name for name, on in zip(refreshes, facts[_FACTS:], strict=True) if on]
    if len(queued) < len(refreshes):
        queue_report_refreshes(s, project_id, active=queued, project=(facts.task_kind, facts.settings))
    return SubmitResult("created", clip_id, annotation_id, "saved")


def is_locked(s: Session, clip_id: int) -> bool:
    """Annotations of a clip are frozen once a reviewer has adjudicated it."""
    return s.scalar(select(Resolution.method).where(Resolution.clip_id == clip_id)) == "adjudicated"


def edit_annotation(
    s: Session,
    annotation_id: int,
    user_id: int,
    *,
    label: str | None = None,
    transcript: str | None = None,
    tags: Iterable[str] = (),
    unsure: bool = False,
    cannot_label_reason: str | None = None,
    convention_version: int | None = None,
) -> SubmitResult:
    """Change one's own annotation; refused (``locked``) once the clip has been adjudicated."""
    a = s.get(Annotation, annotation_id)
    if a is None or a.annotator_id != user_id:
        return SubmitResult(
            "unavailable", a.clip_id if a else -1, None, "this is not one of your annotations"
        )
    project = s.get(Project, a.project_id)
    assert project is not None
    if is_locked(s, a.clip_id):
        return SubmitResult("locked", a.clip_id, a.id, "a reviewer has adjudicated this clip; it is locked")
    values = _clean(
        project,
        label=label,
        transcript=transcript,
        tags=tags,
        unsure=unsure,
        cannot_label_reason=cannot_label_reason,
        time_spent_ms=None,
    )
    values.pop("time_spent_ms")
    before = _audit_values(a)
    for key, value in values.items():
        setattr(a, key, value)
    a.convention_version = (
        convention_version if convention_version is not None else current_version(s, a.project_id)
    )
    after = _audit_values(a)
    if after == before:
        return SubmitResult("updated", a.clip_id, a.id, "nothing changed")
    a.updated_at = utcnow()
    s.flush()
    record(
        s,
        entity="annotation",
        entity_id=a.id,
        action="update",
        old=before,
        new=after,
        actor_id=user_id,
        project_id=a.project_id,
    )
    queue_report_refreshes(s, a.project_id)
    return SubmitResult("updated", a.clip_id, a.id, "updated")


_RULE_MADE = ("unanimous", "majority", "weighted")


def undo_annotation(s: Session, project_id: int, user_id: int, annotation_id: int) -> SubmitResult:
    """Take back one's own annotation, in the caller's (write) transaction: the clip gets its slot back.

    Refused (``locked``) once a reviewer has adjudicated the clip, like an edit. A final label a
    project rule drew from the annotations (unanimous, majority) goes too, since it no longer has the
    votes it was drawn from; the rule draws it again when the clip is labelled again. Audited.
    """
    a = s.get(Annotation, annotation_id)
    if a is None or a.annotator_id != user_id or a.project_id != project_id:
        return SubmitResult("unavailable", a.clip_id if a else -1, None, "there is no label of yours to undo")
    if is_locked(s, a.clip_id):
        return SubmitResult("locked", a.clip_id, a.id, "a reviewer has adjudicated this clip; it is locked")
    clip = s.scalar(select(Clip).where(Clip.id == a.clip_id).with_for_update())
    assert clip is not None
    res = s.get(Resolution, a.clip_id)
    if res is not None and res.method in _RULE_MADE:
        old = {k: getattr(res, k) for k in ("label", "transcript", "method", "agreement")}
        s.delete(res)
        record(
            s,
            entity="resolution",
            entity_id=a.clip_id,
            action="delete",
            old=old,
            actor_id=user_id,
            project_id=project_id,
        )
    before = _audit_values(a)
    s.delete(a)
    clip.annotation_count = max(0, clip.annotation_count - 1)
    s.flush()
    record(
        s,
        entity="annotation",
        entity_id=annotation_id,
        action="delete",
        old=before,
        actor_id=user_id,
        project_id=project_id,
    )
    queue_report_refreshes(s, project_id)
    return SubmitResult("undone", clip.id, None, "your label is undone")


# --- reading -----------------------------------------------------------------------------------------


def _mine(a: Annotation) -> dict[str, Any]:
    return {
        "annotation_id": a.id,
        "label": a.label,
        "transcript": a.transcript,
        "tags": list(a.tags or []),
        "unsure": a.unsure,
        "cannot_label_reason": a.cannot_label_reason,
        "convention_version": a.convention_version,
        "created_at": a.created_at,
    }


def label_task(
    s: Session,
    store: AudioStorage,
    project_id: int,
    user_id: int,
    clip_id: int,
    *,
    project: ProjectInfo | None = None,
) -> LabelTask:
    """What the label page needs for ``clip_id``: the audio, the choices, the conventions beside it,
    ``user_id``'s own earlier annotation if any — and never another annotator's label or the final
    label. The model's prediction is included only when ``project.settings["pre_annotation"]`` is on.
    ``project``: the project as the caller read it in this run (else it is read here).
    """
    clip = s.get(Clip, clip_id)
    if clip is None or clip.project_id != project_id:
        raise LookupError(f"no clip {clip_id} in this project")
    if project is None or project.id != project_id:
        project = get_project(s, project_id)
    own = s.scalar(
        select(Annotation).where(Annotation.clip_id == clip_id, Annotation.annotator_id == user_id)
    )
    prediction = None
    if project.settings.get("pre_annotation"):
        hit = s.execute(
            select(Prediction.label, Prediction.transcript, Prediction.confidence, ModelRun.name)
            .join(ModelRun, ModelRun.id == Prediction.run_id)
            .where(Prediction.clip_id == clip_id, ModelRun.project_id == project_id)
            .order_by(ModelRun.id.desc())
            .limit(1)
        ).first()
        if hit is not None:
            prediction = {
                "label": hit.label,
                "transcript": hit.transcript,
                "confidence": hit.confidence,
                "model": hit.name,
            }
    convention = current_convention(s, project_id)
    return LabelTask(
        clip_id=clip.id,
        audio_path=store.path(clip.storage_key),
        duration_s=clip.duration_s,
        sample_rate=clip.sample_rate,
        channels=clip.channels,
        project=project,
        convention=convention,
        gold=gold_examples_of(s, convention.id, convention.version) if convention else [],
        prediction=prediction,
        mine=_mine(own) if own is not None else None,
        locked=own is not None and is_locked(s, clip_id),
    )


def my_annotations(s: Session, project_id: int, user_id: int, *, limit: int = 20) -> pd.DataFrame:
    """``user_id``'s most recent annotations in a project, newest first, with ``locked`` (adjudicated)."""
    rows = s.execute(
        select(
            Annotation.id,
            Annotation.clip_id,
            Annotation.label,
            Annotation.transcript,
            Annotation.tags,
            Annotation.unsure,
            Annotation.cannot_label_reason,
            Annotation.updated_at,
            Resolution.method,
        )
        .outerjoin(Resolution, Resolution.clip_id == Annotation.clip_id)
        .where(Annotation.project_id == project_id, Annotation.annotator_id == user_id)
        .order_by(Annotation.updated_at.desc(), Annotation.id.desc())
        .limit(limit)
    ).all()
    cols = ["annotation_id", "clip_id", "label", "transcript", "tags", "unsure", "cannot_label_reason"]
    frame = pd.DataFrame([r[:8] for r in rows], columns=[*cols, "updated_at"])
    frame["locked"] = [r.method == "adjudicated" for r in rows]
    return frame


def annotations_frame(s: Session, project_id: int, *, include_deleted: bool = False) -> pd.DataFrame:
    """Every annotation of a project in long format, one row per (clip, annotator).

    Columns are :data:`ANNOTATION_COLUMNS`: ``annotation_id, clip_id, annotator_id, annotator, label,
    transcript, tags, unsure, cannot_label_reason, time_spent_ms, convention_version, source,
    created_at, updated_at``; ``tags`` holds lists of ``group:value`` strings.
    """
    q = (
        select(
            Annotation.id,
            Annotation.clip_id,
            Annotation.annotator_id,
            User.name,
            Annotation.label,
            Annotation.transcript,
            Annotation.tags,
            Annotation.unsure,
            Annotation.cannot_label_reason,
            Annotation.time_spent_ms,
            Annotation.convention_version,
            Annotation.source,
            Annotation.created_at,
            Annotation.updated_at,
        )
        .join(User, User.id == Annotation.annotator_id)
        .join(Clip, Clip.id == Annotation.clip_id)
        .where(Annotation.project_id == project_id)
        .order_by(Annotation.clip_id, Annotation.annotator_id)
    )
    if not include_deleted:
        q = q.where(Clip.deleted_at.is_(None))
    frame = pd.DataFrame(s.execute(q).all(), columns=list(ANNOTATION_COLUMNS))
    for col in ("time_spent_ms", "convention_version"):
        frame[col] = frame[col].astype("Int64")
    frame["unsure"] = frame["unsure"].astype(bool)
    return frame
