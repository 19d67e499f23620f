"""Adjudication: :func:`resolve_clip` (a reviewer's final label), :func:`auto_resolve` (the project's
unanimous/majority rule), :func:`add_gold_example` and :func:`convention_proposal_link` /
:func:`convention_proposal_params` (the Conventions page, prefilled with a change proposal).

A clip's final label lives in one :class:`~db.models.Resolution` row. Every change to it is written
to the audit log, old and new value, in the caller's transaction. Once a reviewer has adjudicated a
clip its annotations are locked (:func:`labeling.annotate.annotations.is_locked`) and no rule overwrites it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from analysis.agreement import majority_consensus
from analysis.text import NormalizationRules
from db.models import RESOLUTION_METHODS, Annotation, Clip, ClipFlag, Resolution, utcnow
from labeling.annotate.annotations import annotations_frame
from labeling.data import conventions as cv
from labeling.data.projects import ProjectInfo, get_project
from labeling.platform import auth
from labeling.platform.audit import record, record_many
from labeling.platform.jobs import queue_report_refreshes

AUTO_RULES = ("unanimous", "majority")
#: Methods an automatic rule may replace: an import's label and earlier rule outcomes, never a person's.
REPLACEABLE = ("imported", "weighted", "unanimous", "majority")
MAX_NOTE_CHARS = 600


class ReviewError(ValueError):
    """A resolution that cannot be stored; the message says why and nothing was changed."""


@dataclass(frozen=True)
class ResolutionInfo:
    clip_id: int
    label: str | None
    transcript: str | None
    method: str
    resolved_by: int | None
    convention_version: int | None
    agreement: float | None
    updated_at: datetime
    changed: bool  # False when the clip already had exactly this resolution


def _project(s: Session, project: ProjectInfo | int | str) -> ProjectInfo:
    return project if isinstance(project, ProjectInfo) else get_project(s, project)


def _values(r: Resolution) -> dict[str, Any]:
    return {
        "label": r.label,
        "transcript": r.transcript,
        "method": r.method,
        "resolved_by": r.resolved_by,
        "convention_version": r.convention_version,
        "agreement": r.agreement,
    }


def _info(r: Resolution, changed: bool) -> ResolutionInfo:
    return ResolutionInfo(
        clip_id=r.clip_id,
        label=r.label,
        transcript=r.transcript,
        method=r.method,
        resolved_by=r.resolved_by,
        convention_version=r.convention_version,
        agreement=r.agreement,
        updated_at=r.updated_at,
        changed=changed,
    )


def _agreement_with(s: Session, clip_id: int, label: str | None) -> float | None:
    """Share of the clip's class labels equal to ``label`` (None without labels)."""
    labels = list(
        s.scalars(
            select(Annotation.label).where(Annotation.clip_id == clip_id, Annotation.label.is_not(None))
        )
    )
    if label is None or not labels:
        return None
    return sum(x == label for x in labels) / len(labels)


def _locked_row(s: Session, clip_id: int) -> Resolution | None:
    return s.scalar(select(Resolution).where(Resolution.clip_id == clip_id).with_for_update())


def resolve_clip(
    s: Session,
    project: ProjectInfo | int | str,
    clip_id: int,
    *,
    label: str | None = None,
    transcript: str | None = None,
    method: str = "adjudicated",
    reviewer_id: int | None,
    convention_version: int | None = None,
) -> ResolutionInfo:
    """Store the final label of one clip (insert or replace its resolution), audited in this transaction.

    An ``adjudicated`` resolution needs a reviewer (``review`` permission) and locks the annotators'
    edits of the clip. ``convention_version`` defaults to the project's current conventions.
    Raises :class:`ReviewError` (nothing stored) for a clip of another project, a class the project
    does not have, or neither label nor transcript.
    """
    info = _project(s, project)
    if method not in RESOLUTION_METHODS:
        raise ReviewError(f"method must be one of {', '.join(RESOLUTION_METHODS)}; got {method!r}")
    clip = s.get(Clip, int(clip_id))
    if clip is None or clip.project_id != info.id or clip.deleted_at is not None:
        raise ReviewError(f"clip {clip_id} is not a clip of project {info.name!r}")
    label = (label or "").strip() or None
    transcript = " ".join(transcript.split()) if transcript and transcript.strip() else None
    if label is None and transcript is None:
        raise ReviewError("choose the final class or type the final transcript")
    if label is not None and not info.classifies:
        raise ReviewError("this project transcribes only; it has no classes")
    if label is not None and info.classes and label not in info.classes:
        raise ReviewError(f"{label!r} is not one of this project's classes")
    if info.classifies and label is None:
        raise ReviewError("choose the final class")
    if method == "adjudicated":
        try:
            auth.require(auth.get_user(s, int(reviewer_id)) if reviewer_id is not None else None, "review")
        except (auth.PermissionDenied, auth.UserNotFound) as exc:
            raise ReviewError(f"only a reviewer can adjudicate: {exc}") from exc
    if convention_version is None:
        convention_version = cv.current_version(s, info.id)
    new = {
        "label": label,
        "transcript": transcript,
        "method": method,
        "resolved_by": reviewer_id,
        "convention_version": convention_version,
        "agreement": _agreement_with(s, clip.id, label),
    }
    now = utcnow()
    row = _locked_row(s, clip.id)
    if row is None:
        try:
            with s.begin_nested():
                row = Resolution(clip_id=clip.id, project_id=info.id, created_at=now, updated_at=now, **new)
                s.add(row)
                s.flush()
        except IntegrityError:
            # Another reviewer stored one at the same moment: replace theirs, audited as a change.
            row = _locked_row(s, clip.id)
            if row is None:
                raise
        else:
            record(
                s,
                entity="resolution",
                entity_id=clip.id,
                action="create",
                new=new,
                actor_id=reviewer_id,
                project_id=info.id,
            )
            queue_report_refreshes(s, info.id)
            return _info(row, True)
    old = _values(row)
    if old == new:
        return _info(row, False)
    for key, value in new.items():
        setattr(row, key, value)
    row.updated_at = now
    s.flush()
    record(
        s,
        entity="resolution",
        entity_id=clip.id,
        action="update",
        old=old,
        new=new,
        actor_id=reviewer_id,
        project_id=info.id,
    )
    queue_report_refreshes(s, info.id)
    return _info(row, True)


def auto_rule(project: ProjectInfo) -> str | None:
    """The project's automatic resolution rule (``settings["auto_resolve"]``): unanimous by default,
    None when switched off (``"off"``, ``false``)."""
    rule = project.settings.get("auto_resolve", "unanimous")
    if rule in (None, False, "off", "none"):
        return None
    if rule not in AUTO_RULES:
        raise ReviewError(f"the project's auto_resolve setting must be one of {', '.join(AUTO_RULES)} or off")
    return str(rule)


def _answers(ann: pd.DataFrame, project: ProjectInfo) -> pd.Series:
    """What each annotation says, as one comparable value: the class, the normalised transcript, or both."""
    rules = NormalizationRules.from_dict(project.normalization)
    text = ann["transcript"].map(lambda t: rules.normalize(t) if isinstance(t, str) else None)
    if project.task_kind == "transcription":
        return text
    if project.task_kind == "classification":
        return ann["label"]
    both = ann["label"].notna() & text.notna()
    return (ann["label"].astype(object) + "\x1f" + text.astype(object)).where(both, None)


def auto_resolve(
    s: Session,
    project: ProjectInfo | int | str,
    *,
    rule: str | None = None,
    min_annotations: int | None = None,
    actor_id: int | None = None,
) -> int:
    """Resolve every clip whose annotations meet a rule; returns how many resolutions were written.

    ``rule`` (default: the project's ``settings["auto_resolve"]``, see :func:`auto_rule`):
    ``"unanimous"`` when every annotation says the same, ``"majority"`` when one answer has more than
    half of the votes (a 2-2 or 1-1-1 split waits for a reviewer). Only clips with at least
    ``min_annotations`` answers (default: the project's k) are considered. In a project that
    transcribes, transcripts are compared after its normalisation rules; the final transcript is the
    first one typed among the winners. Adjudicated clips are never touched; an imported label is
    replaced by what the annotators agreed on. Each change is audited with its old and new value.
    """
    info = _project(s, project)
    rule = rule if rule is not None else auto_rule(info)
    if rule is None:
        return 0
    if rule not in AUTO_RULES:
        raise ReviewError(f"rule must be one of {', '.join(AUTO_RULES)}; got {rule!r}")
    need = max(1, min_annotations if min_annotations is not None else info.annotations_per_clip)
    ann = annotations_frame(s, info.id)
    ann = ann.assign(answer=_answers(ann, info))
    ann = ann[ann["answer"].notna()]
    if ann.empty:
        return 0
    consensus = majority_consensus(ann, value="answer")
    winners = consensus["method"] == "unanimous"
    if rule == "majority":
        winners |= (consensus["method"] == "majority") & (consensus["votes"] > consensus["n"] / 2)
    consensus = consensus[winners & (consensus["n"] >= need)]
    if consensus.empty:
        return 0
    existing = {
        r.clip_id: r
        for r in s.scalars(
            select(Resolution).where(Resolution.clip_id.in_(consensus["clip_id"].tolist())).with_for_update()
        )
    }
    first = ann.drop_duplicates(["clip_id", "answer"]).set_index(["clip_id", "answer"])
    version = cv.current_version(s, info.id)
    now = utcnow()
    events = []
    for c in consensus.itertuples(index=False):
        clip_id = int(c.clip_id)
        winner = first.loc[(clip_id, c.answer)]
        method = "unanimous" if c.method == "unanimous" else "majority"
        new = {
            "label": winner["label"] if info.classifies else None,
            "transcript": winner["transcript"] if info.transcribes else None,
            "method": method,
            "resolved_by": None,
            "convention_version": version,
            "agreement": float(c.agreement),
        }
        row = existing.get(clip_id)
        if row is None:
            s.add(Resolution(clip_id=clip_id, project_id=info.id, created_at=now, updated_at=now, **new))
            events.append({"entity": "resolution", "entity_id": clip_id, "action": "create", "new": new})
            continue
        if row.method not in REPLACEABLE:
            continue
        old = _values(row)
        if {k: old[k] for k in ("label", "transcript", "method")} == {
            k: new[k] for k in ("label", "transcript", "method")
        }:
            continue
        for key, value in new.items():
            setattr(row, key, value)
        row.updated_at = now
        events.append(
            {"entity": "resolution", "entity_id": clip_id, "action": "update", "old": old, "new": new}
        )
    s.flush()
    record_many(s, events, actor_id=actor_id, project_id=info.id)
    if events:
        queue_report_refreshes(s, info.id)
    return len(events)


def add_gold_example(
    s: Session,
    project: ProjectInfo | int | str,
    clip_id: int,
    *,
    label: str | None = None,
    transcript: str | None = None,
    explanation: str,
    actor_id: int | None = None,
) -> cv.GoldInfo:
    """Attach a clip with its canonical label and the reason to the current conventions version
    (:func:`labeling.data.conventions.add_gold_example`; raises its ``ConventionError``)."""
    info = _project(s, project)
    return cv.add_gold_example(
        s,
        info.id,
        clip_id=int(clip_id),
        label=label,
        transcript=transcript,
        explanation=explanation,
        actor_id=actor_id,
    )


def proposal_note(votes: Mapping[str, int], tags: list[str] | tuple[str, ...] = ()) -> str:
    """The change-proposal text of a disagreement: ``annotators split off ×2 / on ×1 (noise:car)…``.

    The Conventions page puts "From clip N:" in front of it.
    """
    split = " / ".join(f"{label} ×{n}" for label, n in votes.items())
    where = f" ({', '.join(tags)})" if tags else ""
    return f"annotators split {split}{where}; the conventions should say which is right and why."[
        :MAX_NOTE_CHARS
    ]


def convention_proposal_params(
    clip_id: int, votes: Mapping[str, int], tags: list[str] | tuple[str, ...] = ()
) -> dict[str, str]:
    """Query parameters that open the Conventions page with a change proposal prefilled from this clip."""
    return cv.proposal_query(int(clip_id), proposal_note(votes, tags))


def convention_proposal_link(
    clip_id: int, votes: Mapping[str, int], tags: list[str] | tuple[str, ...] = ()
) -> str:
    """A relative link to the Conventions page with the change proposal prefilled from this clip,
    e.g. ``conventions?clip=12&note=annotators+split+off+%C3%972+%2F+on+%C3%971...``."""
    return cv.proposal_link(int(clip_id), proposal_note(votes, tags))


def settle_label_issue(
    s: Session,
    project: ProjectInfo | int | str,
    clip_id: int,
    *,
    label: str,
    reviewer_id: int,
) -> ResolutionInfo:
    """A reviewer's decision on a suspected label error: adjudicate the clip and close its flag.

    Keeping the given label is a decision too: the flag closes either way, audited with the outcome.
    """
    info = _project(s, project)
    done = resolve_clip(s, info, clip_id, label=label, reviewer_id=reviewer_id)
    flags = s.scalars(
        select(ClipFlag).where(
            ClipFlag.clip_id == int(clip_id), ClipFlag.kind == "label_issue", ClipFlag.resolved_at.is_(None)
        )
    ).all()
    for flag in flags:
        flag.resolved_at = utcnow()
        record(
            s,
            entity="clip_flag",
            entity_id=flag.id,
            action="update",
            old={"kind": flag.kind, "resolved_at": None},
            new={"kind": flag.kind, "resolved_at": flag.resolved_at, "final_label": label},
            actor_id=reviewer_id,
            project_id=info.id,
        )
    return done
