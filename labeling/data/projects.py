"""Projects: :func:`create_project`, :func:`get_project`, :func:`list_projects`, :func:`update_project`.

Services take the caller's session (one transaction per user event) and return plain dataclasses.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from analysis.text import NormalizationRules
from db.models import (
    TASK_KINDS,
    Annotation,
    Claim,
    Clip,
    GoldExample,
    Project,
    Region,
    Resolution,
    User,
    utcnow,
)
from labeling.data.monitoring_settings import MONITORING_DEFAULTS, check_monitoring_settings
from labeling.data.queue_order import (
    DEFAULT_QUEUE_ORDER,
    DEFAULT_RANDOM_SHARE,
    DEFAULT_RESCORE_EVERY,
    QueueOrder,
    check_overlap,
    check_queue_order,
    check_random_share,
    check_rescore_every,
    overlap_settings,
    queue_caption,
    queue_order,
)
from labeling.platform import names
from labeling.platform.audit import audit_frame, record
from labeling.platform.ids import as_id
from labeling.platform.jobs import job_kinds, queue_once


class ProjectError(ValueError):
    """A project request that cannot be honoured; the message says why."""


class ProjectNotFound(ProjectError):
    pass


@dataclass(frozen=True)
class ProjectInfo:
    id: int
    name: str
    task_kind: str
    classes: list[str]
    tag_groups: dict[str, list[str]]
    annotations_per_clip: int
    normalization: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None

    @property
    def classifies(self) -> bool:
        return self.task_kind in ("classification", "both")

    @property
    def transcribes(self) -> bool:
        return self.task_kind in ("transcription", "both")

    @property
    def labels_regions(self) -> bool:
        """Annotators draw time regions of long recordings, classed by the project's classes."""
        return self.task_kind == "regions"

    @property
    def queue_order(self) -> QueueOrder:
        """How the labeling queue orders this project's clips (``settings["queue_order"]``)."""
        return queue_order(self.settings)

    @property
    def all_tags(self) -> list[str]:
        """Every tag of the vocabulary as ``group:value``."""
        return [f"{group}:{value}" for group, values in self.tag_groups.items() for value in values]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["created_at"] = self.created_at.isoformat() if self.created_at else None
        return d


def _info(p: Project) -> ProjectInfo:
    return ProjectInfo(
        id=p.id,
        name=p.name,
        task_kind=p.task_kind,
        classes=list(p.classes or []),
        tag_groups={k: list(v) for k, v in (p.tag_groups or {}).items()},
        annotations_per_clip=p.annotations_per_clip,
        normalization=dict(p.normalization or {}),
        settings=dict(p.settings or {}),
        created_at=p.created_at,
    )


def validate_name(name: str, *, what: str = "project name") -> str:
    """``name`` cleaned (:func:`labeling.platform.names.validate_name`), or :class:`ProjectError`."""
    return names.validate_name(name, what=what, error=ProjectError)


def _clean_classes(classes: Sequence[str]) -> list[str]:
    out: list[str] = []
    for c in classes:
        c = validate_name(str(c), what="class name")
        if c not in out:
            out.append(c)
    return out


def _clean_tag_groups(groups: Mapping[str, Sequence[str]] | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for group, values in (groups or {}).items():
        g = validate_name(group, what="tag group")
        if ":" in g:
            raise ProjectError(f"tag group {g!r} may not contain ':'")
        out[g] = _clean_classes(values)
    return out


def create_project(
    s: Session,
    *,
    name: str,
    task_kind: str = "classification",
    classes: Sequence[str] = (),
    tag_groups: Mapping[str, Sequence[str]] | None = None,
    annotations_per_clip: int = 1,
    normalization: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
    actor_id: int | None = None,
) -> ProjectInfo:
    name = validate_name(name)
    if task_kind not in TASK_KINDS:
        raise ProjectError(f"task kind must be one of {', '.join(TASK_KINDS)}, not {task_kind!r}")
    if int(annotations_per_clip) < 1:
        raise ProjectError("each clip needs at least one annotation (k >= 1)")
    if s.scalar(select(Project.id).where(Project.name == name)) is not None:
        raise ProjectError(f"a project named {name!r} already exists")
    queue_settings = {k: v for k, v in (settings or {}).items() if k in _CHECKS}
    if queue_settings:
        _clean_settings({}, queue_settings)  # a bad queue setting is refused, not silently ignored
    project = Project(
        name=name,
        task_kind=task_kind,
        classes=_clean_classes(classes),
        tag_groups=_clean_tag_groups(tag_groups),
        annotations_per_clip=int(annotations_per_clip),
        normalization=dict(normalization or {}),
        settings=dict(settings or {}),
    )
    s.add(project)
    s.flush()
    info = _info(project)
    record(
        s,
        entity="project",
        entity_id=project.id,
        action="create",
        new=info.to_dict(),
        actor_id=actor_id,
        project_id=project.id,
    )
    return info


def _project_row(s: Session, ref: str | int) -> Project:
    project_id = as_id(ref)
    if project_id is not None:
        row = s.get(Project, project_id)
        if row is not None:
            return row
    row = s.scalar(select(Project).where(Project.name == str(ref)))
    if row is None:
        names = s.scalars(select(Project.name).order_by(Project.name)).all()
        known = f" Projects: {', '.join(names)}." if names else " There are no projects yet."
        raise ProjectNotFound(f"no project named {ref!r}.{known}")
    return row


def get_project(s: Session, ref: str | int) -> ProjectInfo:
    """A project by name or id; the error lists the projects that exist."""
    return _info(_project_row(s, ref))


def list_projects(s: Session) -> list[ProjectInfo]:
    return [_info(p) for p in s.scalars(select(Project).order_by(Project.name))]


def count_projects(s: Session) -> int:
    return int(s.scalar(select(func.count()).select_from(Project)) or 0)


def update_project(s: Session, ref: str | int, *, actor_id: int | None = None, **changes: Any) -> ProjectInfo:
    """Change a project's settings. Raising k reopens clips; lowering it never drops annotations."""
    project = _project_row(s, ref)
    before = _info(project).to_dict()
    allowed = {"task_kind", "classes", "tag_groups", "annotations_per_clip", "normalization", "settings"}
    unknown = set(changes) - allowed
    if unknown:
        raise ProjectError(f"cannot change {', '.join(sorted(unknown))}")
    if "task_kind" in changes and changes["task_kind"] not in TASK_KINDS:
        raise ProjectError(f"task kind must be one of {', '.join(TASK_KINDS)}")
    if "classes" in changes:
        changes["classes"] = _clean_classes(changes["classes"])
    if "tag_groups" in changes:
        changes["tag_groups"] = _clean_tag_groups(changes["tag_groups"])
    if "annotations_per_clip" in changes:
        k = int(changes["annotations_per_clip"])
        if k < 1:
            raise ProjectError("each clip needs at least one annotation (k >= 1)")
        changes["annotations_per_clip"] = k
        # Clips already holding more than the new k keep their annotations: needed never drops below count.
        # Clips made from other clips (augmented copies, fixes) need none and are never queued: they stay so.
        s.execute(
            update(Clip)
            .where(Clip.project_id == project.id, Clip.annotations_needed > 0)
            .values(
                annotations_needed=func.max(Clip.annotation_count, k)
                if s.get_bind().dialect.name == "sqlite"
                else func.greatest(Clip.annotation_count, k)
            )
        )
    for key, value in changes.items():
        setattr(project, key, value)
    s.flush()
    info = _info(project)
    record(
        s,
        entity="project",
        entity_id=project.id,
        action="update",
        old=before,
        new=info.to_dict(),
        actor_id=actor_id,
        project_id=project.id,
    )
    return info


# --- settings, previewed before they apply ------------------------------------------------------------

#: The project settings the services read (``settings[...]``), with their defaults. Other keys (the
#: hand-entered HLP, the demo marker) are kept as they are by :func:`apply_settings`.
SETTING_DEFAULTS: dict[str, Any] = {
    "auto_resolve": "unanimous",  # labeling.annotate.review: unanimous, majority or off
    "pre_annotation": False,  # labeling.annotate.annotations: show annotators the model's prediction
    "lease_seconds": 600,  # labeling.annotate.queue: how long a served clip stays reserved
    "skip_seconds": 24 * 3600,  # labeling.annotate.queue: how long a skipped clip stays away from its skipper
    "imports_raise_k": False,  # labeling.data.labels_import: imports may add annotations beyond k
    "training_command": "",  # labeling.model.training_command: the project's own training command
    "training_files": [],  # labeling.model.training_command: files that fingerprint that command
    "queue_order": DEFAULT_QUEUE_ORDER,  # labeling.data.queue_order: which clips the queue hands out first
    "queue_random_share": DEFAULT_RANDOM_SHARE,  # labeling.data.queue_order: random share of a scored queue
    "queue_rescore_every": DEFAULT_RESCORE_EVERY,  # labeling.model.queue_scores: labels between scorings
    "adaptive_overlap": {},  # labeling.data.queue_order: min_k, max_k, target accuracy ({}: fixed k)
    "monitoring": {},  # labeling.monitor: drift and alarm thresholds (labeling.data.monitoring_settings)
}
AUTO_RESOLVE_RULES = ("unanimous", "majority", "off")
EDITABLE = ("task_kind", "classes", "tag_groups", "annotations_per_clip", "normalization", "settings")
#: What each editable field is called where people read it.
FIELD_NAMES = {
    "task_kind": "task",
    "classes": "classes",
    "tag_groups": "tag groups",
    "annotations_per_clip": "annotations per clip (k)",
    "normalization": "transcript normalisation",
    "settings": "workflow settings",
}


class SettingsNeedConfirmation(ProjectError):
    """The change alters clips' workflow: apply it again with the preview's token."""

    def __init__(self, preview: SettingsPreview) -> None:
        super().__init__("; ".join(preview.effects) or "the change needs confirmation")
        self.preview = preview


@dataclass(frozen=True)
class SettingsPreview:
    """What a settings change would do, before it is made.

    ``changes`` maps each field that differs to ``(old, new)``; ``effects`` says in words what happens
    to clips and labels; ``refusals`` why it cannot be made (then nothing is written). A change that
    alters clips' workflow (``confirm``) applies only with ``token``, which also ensures the project
    has not changed between the preview and the confirmation.
    """

    project: str
    changes: dict[str, tuple[Any, Any]]
    effects: list[str]
    refusals: list[str]
    confirm: bool
    token: str

    @property
    def ok(self) -> bool:
        return not self.refusals


def split_names(text: str) -> list[str]:
    """Names typed as a comma- or line-separated list, in order, blanks dropped."""
    return [part.strip() for line in (text or "").splitlines() for part in line.split(",") if part.strip()]


def parse_tag_groups(text: str) -> dict[str, list[str]]:
    """Tag groups typed one per line (or ``;``-separated) as ``group: value, value`` (``=`` works too).

    >>> parse_tag_groups("noise: car, babble\\nchannel=telephone")
    {'noise': ['car', 'babble'], 'channel': ['telephone']}
    """
    groups: dict[str, list[str]] = {}
    for line in (text or "").replace(";", "\n").splitlines():
        if not line.strip():
            continue
        sep = min((i for i in (line.find(":"), line.find("=")) if i >= 0), default=-1)
        if sep < 0:
            raise ProjectError(f"write each tag group as 'group: value, value' (not {line.strip()!r})")
        group, values = line[:sep].strip(), line[sep + 1 :]
        if not group:
            raise ProjectError(f"a tag group has no name in {line.strip()!r}")
        groups.setdefault(group, []).extend(split_names(values))
    return _clean_tag_groups(groups)


def format_tag_groups(groups: Mapping[str, Sequence[str]]) -> str:
    """The text :func:`parse_tag_groups` reads back."""
    return "\n".join(f"{g}: {', '.join(values)}" for g, values in groups.items())


_CHECKS = {
    "queue_order": check_queue_order,
    "queue_random_share": check_random_share,
    "queue_rescore_every": check_rescore_every,
    "adaptive_overlap": check_overlap,
}


def _clean_settings(current: Mapping[str, Any], edits: Mapping[str, Any]) -> dict[str, Any]:
    """``current`` with ``edits`` applied (None: back to the default); known keys are checked."""
    out = dict(current)
    for key, value in edits.items():
        if key not in SETTING_DEFAULTS:
            raise ProjectError(f"unknown setting {key!r}; known: {', '.join(SETTING_DEFAULTS)}")
        if value is None:
            out.pop(key, None)
            continue
        if key == "monitoring":
            if not isinstance(value, Mapping):
                raise ProjectError("monitoring settings are a mapping of setting to number")
            try:
                checked = check_monitoring_settings({**dict(out.get("monitoring") or {}), **value})
            except ValueError as exc:
                raise ProjectError(str(exc)) from None
            if checked:
                out["monitoring"] = checked
            else:
                out.pop("monitoring", None)
            continue
        if key == "auto_resolve":
            value = "off" if value is False else value
            if value not in AUTO_RESOLVE_RULES:
                raise ProjectError(f"auto_resolve must be one of {', '.join(AUTO_RESOLVE_RULES)}")
        elif key in ("pre_annotation", "imports_raise_k"):
            if not isinstance(value, bool):
                raise ProjectError(f"{key} must be true or false")
        elif key in ("lease_seconds", "skip_seconds"):
            if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
                raise ProjectError(f"{key} must be a whole number of seconds")
            low = 30 if key == "lease_seconds" else 0
            if not low <= int(value) <= 30 * 24 * 3600:
                raise ProjectError(f"{key} must be between {low} seconds and 30 days")
            value = int(value)
        elif key == "training_command":
            value = str(value).strip()
            if "\n" in value:
                raise ProjectError("the training command is one line")
        elif key == "training_files":
            value = [str(f).strip() for f in value if str(f).strip()]
        elif key in _CHECKS:
            try:
                value = _CHECKS[key](value)
            except ValueError as exc:
                raise ProjectError(str(exc)) from None
        if key not in out and value == SETTING_DEFAULTS[key]:
            continue  # a default spelt out is no change
        out[key] = value
    return out


def _clean_normalization(current: Mapping[str, Any], rules: Mapping[str, Any]) -> dict[str, Any]:
    """``rules`` if valid; ``current`` unchanged when both mean the same rules."""
    try:
        parsed = NormalizationRules.from_dict(rules)
    except (ValueError, TypeError) as exc:
        raise ProjectError(str(exc)) from exc
    try:
        same = parsed == NormalizationRules.from_dict(current)
    except (ValueError, TypeError):
        same = False  # what is stored is broken: anything valid replaces it
    return dict(current) if same else dict(rules)


def _proposed(info: ProjectInfo, changes: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ProjectError(f"cannot change {', '.join(sorted(unknown))}")
    new: dict[str, Any] = {}
    if "task_kind" in changes:
        if changes["task_kind"] not in TASK_KINDS:
            raise ProjectError(f"task kind must be one of {', '.join(TASK_KINDS)}")
        new["task_kind"] = changes["task_kind"]
    if "classes" in changes:
        new["classes"] = _clean_classes(changes["classes"])
    if "tag_groups" in changes:
        new["tag_groups"] = _clean_tag_groups(changes["tag_groups"])
    if "annotations_per_clip" in changes:
        try:
            k = int(changes["annotations_per_clip"])
        except (TypeError, ValueError):
            raise ProjectError("k (annotations per clip) must be a whole number") from None
        if k < 1:
            raise ProjectError("each clip needs at least one annotation (k >= 1)")
        new["annotations_per_clip"] = k
    if "normalization" in changes:
        new["normalization"] = _clean_normalization(info.normalization, changes["normalization"] or {})
    if "settings" in changes:
        new["settings"] = _clean_settings(info.settings, changes["settings"] or {})
    before = info.to_dict()
    return {key: value for key, value in new.items() if before[key] != value}


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _class_use(s: Session, project_id: int, classes: Sequence[str]) -> dict[str, list[str]]:
    """Per class, what uses it: annotations, final labels, gold examples."""
    use: dict[str, list[str]] = {}
    queries = (
        ("annotation", select(Annotation.label, func.count()).where(Annotation.project_id == project_id)),
        ("final label", select(Resolution.label, func.count()).where(Resolution.project_id == project_id)),
        (
            "gold example",
            select(GoldExample.label, func.count())
            .join(Clip, Clip.id == GoldExample.clip_id)
            .where(Clip.project_id == project_id),
        ),
    )
    for what, q in queries:
        label_col = q.selected_columns[0]
        for label, n in s.execute(q.where(label_col.in_(list(classes))).group_by(label_col)):
            use.setdefault(str(label), []).append(_plural(int(n), what))
    return use


def _tag_use(s: Session, project_id: int, tags: set[str]) -> dict[str, int]:
    """Per tag, how many annotations chose it."""
    counts: dict[str, int] = {}
    rows = s.execute(select(Annotation.tags).where(Annotation.project_id == project_id)).scalars()
    for chosen in rows:
        for tag in set(chosen or ()) & tags:
            counts[tag] = counts.get(tag, 0) + 1
    return counts


def _kind_use(s: Session, project_id: int, kind: str) -> list[str]:
    """Why a project cannot change kind: the labels of whole clips, or the regions, it would hide."""
    refusals = []
    if kind != "regions":
        n_regions = s.scalar(select(func.count()).select_from(Region).where(Region.project_id == project_id))
        if n_regions:
            refusals.append(
                f"a {kind} project cannot keep its time regions: {_plural(int(n_regions), 'region')}"
            )
    for gone, column, word in (
        ("classification", "label", "class labels"),
        ("transcription", "transcript", "transcripts"),
    ):
        if kind in (gone, "both"):
            continue
        n_ann = s.scalar(
            select(func.count())
            .select_from(Annotation)
            .where(Annotation.project_id == project_id, getattr(Annotation, column).is_not(None))
        )
        n_res = s.scalar(
            select(func.count())
            .select_from(Resolution)
            .where(Resolution.project_id == project_id, getattr(Resolution, column).is_not(None))
        )
        if n_ann or n_res:
            instead = "" if kind == "regions" else " (choose 'both' instead)"
            refusals.append(
                f"a {kind} project cannot keep its {word}: {_plural(int(n_ann or 0), 'annotation')} and "
                f"{_plural(int(n_res or 0), 'final label')} carry them{instead}"
            )
    return refusals


def _k_effects(s: Session, project_id: int, old_k: int, new_k: int) -> tuple[list[str], bool]:
    """What changing k does to the queue, and whether it changes any clip's workflow."""
    live = (Clip.project_id == project_id, Clip.annotations_needed > 0, Clip.deleted_at.is_(None))
    n = Clip.annotation_count
    if new_k > old_k:
        reopen = (*live, n < new_k, n >= Clip.annotations_needed)
        reopened = int(s.scalar(select(func.count()).select_from(Clip).where(*reopen)) or 0)
        resolved = int(
            s.scalar(
                select(func.count())
                .select_from(Clip)
                .join(Resolution, Resolution.clip_id == Clip.id)
                .where(*reopen)
            )
            or 0
        )
        extra = int(
            s.scalar(
                select(func.coalesce(func.sum(new_k - func.coalesce(Clip.annotations_needed, 0)), 0))
                .select_from(Clip)
                .where(*live, Clip.annotations_needed < new_k)
            )
            or 0
        )
        effects = [
            f"k rises from {old_k} to {new_k}: {_plural(extra, 'more annotation')} will be asked for; "
            f"{_plural(reopened, 'finished clip')} {'reopens' if reopened == 1 else 'reopen'}"
            + (f" ({resolved:,} of them already have a final label, which stays)" if resolved else "")
        ]
        return effects, reopened > 0 or extra > 0
    closing = (*live, n >= new_k, n < Clip.annotations_needed)
    closed = int(s.scalar(select(func.count()).select_from(Clip).where(*closing)) or 0)
    held = int(
        s.scalar(
            select(func.count(func.distinct(Claim.clip_id)))
            .join(Clip, Clip.id == Claim.clip_id)
            .where(*closing, Claim.skipped_at.is_(None), Claim.expires_at > utcnow())
        )
        or 0
    )
    above = int(s.scalar(select(func.count()).select_from(Clip).where(*live, n > new_k)) or 0)
    effects = [
        f"k falls from {old_k} to {new_k}: no annotation is removed"
        + (f" ({_plural(above, 'clip')} keep more than {new_k})" if above else "")
        + (
            f"; {_plural(closed, 'clip')} waiting for more annotations count as finished with what they have"
            if closed
            else ""
        )
        + (f", {held:,} of them being labelled right now (that label will be refused)" if held else "")
    ]
    return effects, closed > 0


def _monitoring_effects(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    before = {**MONITORING_DEFAULTS, **dict(old.get("monitoring") or {})}
    after = {**MONITORING_DEFAULTS, **dict(new.get("monitoring") or {})}
    changed = [f"{k} {before[k]:g} → {after[k]:g}" for k in MONITORING_DEFAULTS if before[k] != after[k]]
    if not changed:
        return []
    return [
        f"monitoring thresholds change ({', '.join(changed)}): alarm levels and accuracy verdicts are "
        "read again at once; alpha, min_batch and low_confidence judge the measures from the next drift "
        "check; the sample sizes apply to the next send to labeling"
    ]


def _queue_effects(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[list[str], bool]:
    """What a change of queue order, random share or adaptive overlap does; whether it needs a
    confirmation (adaptive overlap changes how many annotations clips get)."""
    effects = []
    order = queue_order(new)
    if queue_caption(new) != queue_caption(old):
        effects.append(
            f"the queue's order becomes “{queue_caption(new)}” from the next clip it hands out (a clip "
            "someone holds now stays theirs)"
            + (
                "; the queue-scoring job replaces the clips' priorities with the strategy's scores"
                if order.strategy
                else ""
            )
        )
    before, after = overlap_settings(old), overlap_settings(new)
    if before == after:
        return effects, False
    if after is None:
        return effects, False  # what going back to k does is counted by _overlap_off_effects
    effects.append(
        f"adaptive overlap: each clip without a final label gets {after.min_k} to {after.max_k} "
        f"annotations, more only while its majority label is below {after.target:.0%} likely; the "
        "queue-scoring job sets how many each open clip needs (never fewer than it has or someone holds)"
    )
    return effects, True


def _held_claims() -> Any:
    """Live claims on a clip (correlated with ``clips``): people labelling it right now."""
    return (
        select(func.count())
        .select_from(Claim)
        .where(Claim.clip_id == Clip.id, Claim.skipped_at.is_(None), Claim.expires_at > utcnow())
        .scalar_subquery()
    )


def _k_again(s: Session, k: int) -> Any:
    """The ``annotations_needed`` a clip goes back to when adaptive overlap stops: the project's k,
    but never below what it has plus what people hold on it now (so nobody's label is refused)."""
    sqlite = s.get_bind().dialect.name == "sqlite"
    least, greatest = (func.min, func.max) if sqlite else (func.least, func.greatest)
    return greatest(k, least(Clip.annotation_count + _held_claims(), Clip.annotations_needed))


def _overlap_clips(project_id: int) -> tuple[Any, ...]:
    """The clips adaptive overlap sets the needed count of: live, queued, without a final label."""
    return (
        Clip.project_id == project_id,
        Clip.annotations_needed > 0,
        Clip.deleted_at.is_(None),
        Clip.resolved.is_(False),
    )


def _overlap_off_effects(s: Session, project_id: int, k: int) -> tuple[list[str], bool]:
    """What stopping adaptive overlap does: its clips go back to k. Whether any clip changes."""
    again = _k_again(s, k)
    lowered, extra, back, kept, changes = s.execute(
        select(
            func.count().filter(Clip.annotations_needed < k),
            func.coalesce(func.sum(k - Clip.annotations_needed).filter(Clip.annotations_needed < k), 0),
            func.count().filter(Clip.annotations_needed > k, again == k),
            func.count().filter(Clip.annotations_needed > k, again > k),
            func.count().filter(again != Clip.annotations_needed),
        ).where(*_overlap_clips(project_id), Clip.annotations_needed != k)
    ).one()
    lowered, extra, back, kept, changes = (int(x or 0) for x in (lowered, extra, back, kept, changes))
    parts = []
    if lowered:
        parts.append(
            f"{_plural(lowered, 'clip')} it asked fewer annotations of "
            f"{'goes' if lowered == 1 else 'go'} back to k = {k} "
            f"({_plural(extra, 'more annotation')} will be asked for)"
        )
    if back:
        parts.append(
            f"{_plural(back, 'clip')} it asked more annotations of {'goes' if back == 1 else 'go'} back "
            f"to k = {k}"
        )
    if kept:
        parts.append(
            f"{_plural(kept, 'clip')} {'keeps' if kept == 1 else 'keep'} more than k = {k}: they "
            "already have them or someone is labelling them now"
        )
    head = "adaptive overlap stops: clips without a final label need k annotations again"
    return [f"{head}; {'; '.join(parts)}" if parts else head], changes > 0


def restore_k(s: Session, project_id: int) -> int:
    """Set the clips adaptive overlap changed back to the project's k (never below the annotations a
    clip has plus the live claims on it); returns the clips changed. :func:`apply_settings` calls it
    when adaptive overlap is turned off."""
    k = int(s.scalar(select(Project.annotations_per_clip).where(Project.id == project_id)) or 1)
    again = _k_again(s, k)
    result = s.execute(
        update(Clip)
        .where(*_overlap_clips(project_id), Clip.annotations_needed != again)
        .values(annotations_needed=again)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _token(info: ProjectInfo, changes: Mapping[str, Any], effects: Sequence[str]) -> str:
    payload = json.dumps([info.to_dict(), changes, list(effects)], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def preview_settings(s: Session, ref: str | int, changes: Mapping[str, Any]) -> SettingsPreview:
    """What :func:`apply_settings` with ``changes`` would change, do, or refuse; nothing is written.

    ``changes`` holds any of :data:`EDITABLE`; ``settings`` holds only the keys to change (see
    :data:`SETTING_DEFAULTS`; None resets one). Refused: removing a class that annotations, final
    labels or gold examples use; removing a tag annotators chose; a task kind that would hide stored
    class labels or transcripts. A k change states how many clips reopen or close.
    """
    info = get_project(s, ref)
    before = info.to_dict()
    new = _proposed(info, changes)
    effects: list[str] = []
    refusals: list[str] = []
    confirm = False
    if "classes" in new:
        removed = [c for c in info.classes if c not in new["classes"]]
        for cls, uses in _class_use(s, info.id, removed).items():
            refusals.append(f"class {cls!r} cannot be removed: {', '.join(uses)} use it")
        added = [c for c in new["classes"] if c not in info.classes]
        if added:
            effects.append(f"annotators can choose {', '.join(map(repr, added))}")
        if not removed and not added:
            effects.append("the class buttons change order (and with it their number keys)")
    if "tag_groups" in new:
        old_tags = set(info.all_tags)
        new_tags = {f"{g}:{v}" for g, vs in new["tag_groups"].items() for v in vs}
        for tag, n in sorted(_tag_use(s, info.id, old_tags - new_tags).items()):
            refusals.append(f"tag {tag!r} cannot be removed: {_plural(n, 'annotation')} chose it")
    if "task_kind" in new:
        refusals += _kind_use(s, info.id, new["task_kind"])
    if "annotations_per_clip" in new:
        k_effects, confirm = _k_effects(s, info.id, info.annotations_per_clip, new["annotations_per_clip"])
        effects += k_effects
    if "normalization" in new:
        effects.append("transcript agreement (WER/CER) and exports use the new normalisation from now on")
    if "settings" in new and new["settings"].get("auto_resolve") != info.settings.get("auto_resolve"):
        effects.append("the new auto-resolve rule applies the next time Review resolves clips automatically")
    if "settings" in new:
        effects += _monitoring_effects(info.settings, new["settings"])
    if "settings" in new:
        queue_effects, queue_confirm = _queue_effects(info.settings, new["settings"])
        effects += queue_effects
        confirm = confirm or queue_confirm
        if overlap_settings(info.settings) is not None and overlap_settings(new["settings"]) is None:
            k = int(new.get("annotations_per_clip", info.annotations_per_clip))
            off_effects, off_confirm = _overlap_off_effects(s, info.id, k)
            effects += off_effects
            confirm = confirm or off_confirm
    return SettingsPreview(
        project=info.name,
        changes={key: (before[key], value) for key, value in new.items()},
        effects=effects,
        refusals=refusals,
        confirm=confirm,
        token=_token(info, new, effects),
    )


def apply_settings(
    s: Session,
    ref: str | int,
    changes: Mapping[str, Any],
    *,
    token: str | None = None,
    actor_id: int | None = None,
) -> ProjectInfo:
    """Change a project's settings after :func:`preview_settings`'s checks, audited.

    Raises
    ------
    ProjectError
        If the preview refuses the change (nothing is written).
    SettingsNeedConfirmation
        If the change alters clips' workflow and ``token`` is not the token of a preview of this
        very change on the project as it is now; the exception carries the current preview.
    """
    preview = preview_settings(s, ref, changes)
    if preview.refusals:
        raise ProjectError("; ".join(preview.refusals))
    if preview.confirm and token != preview.token:
        raise SettingsNeedConfirmation(preview)
    if not preview.changes:
        return get_project(s, ref)
    before = get_project(s, ref).settings
    info = update_project(
        s, ref, actor_id=actor_id, **{key: new for key, (_, new) in preview.changes.items()}
    )
    if overlap_settings(before) is not None and overlap_settings(info.settings) is None:
        restored = restore_k(s, info.id)
        if restored:
            record(
                s,
                entity="project",
                entity_id=info.id,
                action="update",
                old={"adaptive_overlap": dict(before.get("adaptive_overlap") or {})},
                new={"adaptive_overlap": {}, "clips_back_to_k": restored},
                actor_id=actor_id,
                project_id=info.id,
            )
    if _needs_scoring(before, info.settings) and SCORING_JOB in job_kinds():
        queue_once(s, SCORING_JOB, info.id)  # the worker ranks the queue by the new setting
    return info


#: The job kind (registered by ``labeling.job_kinds``) that writes a scored queue's priorities.
SCORING_JOB = "queue_scores"


def _needs_scoring(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether a settings change asks the queue-scoring job for new priorities or needed counts."""
    scored = queue_order(new).strategy is not None or overlap_settings(new) is not None
    changed = queue_caption(old) != queue_caption(new) or overlap_settings(old) != overlap_settings(new)
    return scored and changed


def settings_history(s: Session, project_id: int, *, limit: int = 100) -> pd.DataFrame:
    """The project's settings changes, newest first: ``at, who, field, old, new`` per changed field."""
    events = audit_frame(s, project_id=project_id, entity="project", limit=limit)
    names = dict(s.execute(select(User.id, User.name)).all())
    rows = []
    for e in events.itertuples(index=False):
        old, new = e.old or {}, e.new or {}
        for key in EDITABLE:
            if key in new and old.get(key) != new.get(key):
                rows.append(
                    {
                        "at": e.at,
                        "who": names.get(e.actor_id, "(script)") if e.actor_id else "(script)",
                        "field": FIELD_NAMES[key],
                        "old": None if e.action == "create" else _shown(old.get(key)),
                        "new": _shown(new.get(key)),
                    }
                )
    return pd.DataFrame(rows, columns=["at", "who", "field", "old", "new"])


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
