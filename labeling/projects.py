"""Projects: :func:`create_project`, :func:`get_project`, :func:`list_projects`, :func:`update_project`.

Services take the caller's session (one transaction per user event) and return plain dataclasses.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db.models import TASK_KINDS, Clip, Project
from labeling.audit import record


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
    name = unicodedata.normalize("NFC", (name or "").strip())
    if not name:
        raise ProjectError(f"the {what} is empty")
    if len(name) > 200:
        raise ProjectError(f"the {what} is longer than 200 characters")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise ProjectError(f"the {what} contains control characters")
    return name


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
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        row = s.get(Project, int(ref))
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
        s.execute(
            update(Clip)
            .where(Clip.project_id == project.id)
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
