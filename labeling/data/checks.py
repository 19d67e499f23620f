"""Data checks of a project against its conventions, and fixes that make new clips: call
:func:`run_data_checks` for the findings, :func:`preview_fix` for what a fix would change and
:func:`fix_clips` to repair silence and loudness.

The checks themselves are :func:`analysis.checks.data_check_findings`, over the quality measures
stored at import, every live clip's decoded-audio hash (for the same recording in two containers)
and the model's cached features (for near duplicates). Rules come from the current convention
version (``silence_margin_ms``, ``loudness_dbfs``), else :data:`analysis.checks.DEFAULT_RULES`.

A fix never changes a stored clip. It writes a NEW clip (trimmed or padded silence, normalised
loudness) that points at its original (``parent_clip_id``, the recipe in ``derivation``), carries its
tags and split, and takes its place in the working set and in the labeling workflow: annotations,
final label, flags, gold examples, claims and queue state move to the copy unchanged
(:mod:`labeling.data.supersede`), so a fix never settles a disagreement or drops anyone's work. The
original is soft-deleted, with an audit event naming the clip that superseded it and what moved.
Soft-deleting rather than flagging keeps the next dataset version from holding both the original and
its fix (two copies of one recording, one label) while every earlier version still refers to the
original's audio, which stays in the store.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from analysis.checks import (
    DEFAULT_RULES,
    data_check_findings,
    findings_summary,
    fit_silence,
    normalize_loudness,
    pcm_hash,
)
from db.models import Clip
from labeling.data.augment import DerivedAudio, store_derived_clips
from labeling.data.clips import clip_frame, load_audio
from labeling.data.conventions import current_convention
from labeling.data.projects import get_project
from labeling.data.supersede import WorkflowSummary, workflow_summary
from labeling.platform.columnar import read_frame
from labeling.platform.workspace import Workspace

Progress = Callable[[int, int], None]
FIX_ACTIONS = ("silence", "loudness")
#: Which fix repairs which check.
FIXES_FOR = {"leading_silence": "silence", "trailing_silence": "silence", "loudness": "loudness"}


class CheckError(ValueError):
    """The checks or fixes cannot run as asked; nothing was written. The message says why."""


@dataclass
class CheckReport:
    project: str
    rules: dict[str, Any]
    rules_source: str  # "convention v3" or "defaults"
    n_clips: int
    findings: pd.DataFrame  # analysis.checks.FINDING_COLUMNS plus original_name
    summary: pd.DataFrame  # check, n_clips, clip_ids, fixable

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "rules": self.rules,
            "rules_source": self.rules_source,
            "n_clips": self.n_clips,
            "summary": self.summary.to_dict("records"),
        }


def project_rules(s: Session, project_id: int) -> tuple[dict[str, Any], str]:
    """The checkable rules in force: the current convention's, completed by the defaults."""
    conv = current_convention(s, project_id)
    given = {k: v for k, v in (conv.rules if conv else {}).items() if k in DEFAULT_RULES and v}
    source = f"convention v{conv.version}" if conv and given else "defaults"
    return {**DEFAULT_RULES, **given}, source


#: The checks :func:`measure_checks` runs: those answered by the measures stored at import.
MEASURE_CHECKS = ("leading_silence", "trailing_silence", "loudness", "clipping", "sample_rate", "duration")
#: :func:`measure_checks` keeps this many findings of each check (the counts are complete).
FINDINGS_KEPT = 1000
_MEASURES = {
    "clip_id": "int64",
    "original_name": "object",
    "duration_s": "float64",
    "sample_rate": "float64",
    "rms_dbfs": "float64",
    "leading_silence_ms": "float64",
    "trailing_silence_ms": "float64",
    "clipped_fraction": "float64",
}


def measure_checks(s: Session, project_id: int, *, kept: int = FINDINGS_KEPT) -> CheckReport:
    """The checks of :data:`MEASURE_CHECKS` on every live clip, from the measures stored at import.

    One read of eight columns and no audio decoded, so a worker can run it after every change; the
    duplicate checks, which decode every clip, are :func:`run_data_checks`. ``summary`` counts every
    finding (without ``clip_ids``); ``findings`` keeps the first ``kept`` clips of each check.
    """
    info = get_project(s, project_id)
    rules, source = project_rules(s, info.id)
    clips = read_frame(
        s,
        select(*(getattr(Clip, "id" if c == "clip_id" else c) for c in _MEASURES)).where(
            Clip.project_id == info.id, Clip.deleted_at.is_(None)
        ),
        _MEASURES,
    )
    findings = data_check_findings(clips, rules=rules)
    summary = findings_summary(findings)
    summary = summary[summary["check"].isin(MEASURE_CHECKS)].drop(columns="clip_ids").reset_index(drop=True)
    summary["fixable"] = summary["check"].map(lambda c: c in FIXES_FOR)
    findings = findings.groupby("check", sort=False).head(kept).reset_index(drop=True)
    names = clips.set_index("clip_id")["original_name"]
    findings["original_name"] = findings["clip_id"].map(names)
    return CheckReport(
        project=info.name,
        rules=rules,
        rules_source=source,
        n_clips=len(clips),
        findings=findings,
        summary=summary,
    )


def _pcm_hashes(ws: Workspace, clips: pd.DataFrame, progress: Progress | None) -> pd.Series:
    def one(key: str) -> str:
        return pcm_hash(load_audio(ws.store.path(key))[0])

    out = []
    # Decoding and hashing release the GIL; a few threads keep both cores busy.
    with ThreadPoolExecutor(max_workers=4) as pool:
        for done, h in enumerate(pool.map(one, clips["storage_key"]), 1):
            out.append(h)
            if progress is not None and (done % 50 == 0 or done == len(clips)):
                progress(done, len(clips))
    return pd.Series(out, index=clips["clip_id"].to_numpy(), dtype=object)


def run_data_checks(
    ws: Workspace,
    project: str | int,
    *,
    near_duplicates: bool = True,
    progress: Progress | None = None,
) -> CheckReport:
    """Check every live clip of a project; findings list the clips, the summary counts them per check.

    Parameters
    ----------
    near_duplicates
        Also compare clips by their features (computed once and cached).
    progress
        ``progress(done, total)`` while audio is decoded for the duplicate checks.
    """
    with ws.db.read() as s:
        info = get_project(s, project)
        clips = clip_frame(s, info.id)
        rules, source = project_rules(s, info.id)
    if clips.empty:
        raise CheckError(f"project {info.name!r} has no clips to check")
    hashes = _pcm_hashes(ws, clips, progress)
    features = None
    if near_duplicates and len(clips) > 1:
        from labeling.data.features import project_features

        features = project_features(ws, info.id)
    findings = data_check_findings(clips, rules=rules, pcm_hashes=hashes, features=features)
    names = clips.set_index("clip_id")["original_name"]
    findings["original_name"] = findings["clip_id"].map(names)
    summary = findings_summary(findings)
    summary["fixable"] = summary["check"].map(lambda c: c in FIXES_FOR)
    return CheckReport(
        project=info.name,
        rules=rules,
        rules_source=source,
        n_clips=len(clips),
        findings=findings,
        summary=summary,
    )


@dataclass
class FixReport:
    project: str
    actions: list[str]
    fixed: dict[int, int] = field(default_factory=dict)  # original clip id -> new clip id
    unchanged: list[int] = field(default_factory=list)  # already within the rules
    kept: dict[int, int] = field(default_factory=dict)  # original -> existing clip its fix would equal

    def summary(self) -> str:
        text = f"{len(self.fixed):,} clips replaced by fixed copies ({', '.join(self.actions)})"
        if self.unchanged:
            text += f"; {len(self.unchanged):,} needed no change"
        if self.kept:
            text += (
                f"; {len(self.kept):,} left as they are because their fixed audio equals a clip the "
                f"project holds already (clips {', '.join(map(str, sorted(self.kept.values())[:5]))})"
            )
        return text


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class FixPreview:
    """What :func:`fix_clips` would change, before anything is written."""

    project: str
    actions: list[str]
    workflow: WorkflowSummary

    def summary(self) -> str:
        w = self.workflow
        carried = [
            f"{_plural(w.annotations, 'annotation')} on {_plural(w.annotated_clips, 'clip')}",
            f"{_plural(w.disagreements, 'open disagreement')} (still for a reviewer to settle)",
            f"{_plural(w.final_labels, 'final label')} ({w.adjudicated:,} adjudicated)",
            _plural(w.open_flags, "open flag"),
            _plural(w.gold_examples, "gold example"),
            f"the queue place of {_plural(w.waiting, 'clip')} still waiting for annotations",
        ]
        if w.claims:
            carried.append(f"{_plural(w.claims, 'claim')} annotators hold on them now")
        return (
            f"Fixing {_plural(w.n_clips, 'clip')} ({', '.join(self.actions)}) writes a fixed copy of each "
            "clip outside the rules and retires the originals (their audio stays for older versions). "
            f"Each copy takes over its original's workflow unchanged: {'; '.join(carried)}. "
            "Nothing is settled, relabelled or dropped; clips already within the rules are left alone."
        )

    def to_dict(self) -> dict[str, Any]:
        return {"project": self.project, "actions": self.actions, **self.workflow.to_dict()}


def _fix_target(
    ws: Workspace, project: str | int, clip_ids: Sequence[int], actions: Sequence[str]
) -> tuple[Any, list[Any]]:
    """The project and the ``(id, storage_key)`` rows of the clips to fix; CheckError when invalid."""
    unknown = sorted(set(actions) - set(FIX_ACTIONS))
    if unknown or not actions:
        raise CheckError(f"fixes are {', '.join(FIX_ACTIONS)}; got {', '.join(unknown) or 'none'}")
    ids = sorted({int(c) for c in clip_ids})
    with ws.db.read() as s:
        info = get_project(s, project)
        rows: list[Any] = []
        for start in range(0, len(ids), 500):
            rows += s.execute(
                select(Clip.id, Clip.storage_key).where(
                    Clip.project_id == info.id,
                    Clip.id.in_(ids[start : start + 500]),
                    Clip.deleted_at.is_(None),
                )
            ).all()
    if len(rows) != len(ids):
        missing = sorted(set(ids) - {r.id for r in rows})
        raise CheckError(f"clips {', '.join(map(str, missing[:5]))} are not live clips of {info.name!r}")
    return info, rows


def preview_fix(
    ws: Workspace, project: str | int, clip_ids: Sequence[int], *, actions: Sequence[str] = FIX_ACTIONS
) -> FixPreview:
    """What fixing ``clip_ids`` would change: the workflow their fixed copies would take over.

    Reads only. Raises :class:`CheckError` as :func:`fix_clips` would.
    """
    info, rows = _fix_target(ws, project, clip_ids, actions)
    with ws.db.read() as s:
        summary = workflow_summary(s, [r.id for r in rows])
    return FixPreview(project=info.name, actions=list(actions), workflow=summary)


def fix_clips(
    ws: Workspace,
    project: str | int,
    clip_ids: Sequence[int],
    *,
    actions: Sequence[str] = FIX_ACTIONS,
    actor_id: int | None = None,
    progress: Progress | None = None,
) -> FixReport:
    """Replace clips by fixed copies: silence fitted to the margins and/or loudness at the target.

    Each clip with something to fix gets a new clip (derivation ``{"kind": "fix", "steps": [...]}``)
    that takes over its workflow (see :func:`preview_fix` for what that is), and is soft-deleted from
    the working set in the same transaction as the audit events. A clip whose fixed audio equals a
    clip the project already holds is left as it is (``FixReport.kept``).

    Raises
    ------
    CheckError
        For an unknown action or a clip that is not a live clip of the project.
    """
    info, rows = _fix_target(ws, project, clip_ids, actions)
    with ws.db.read() as s:
        rules, source = project_rules(s, info.id)
    margins, loudness = rules["silence_margin_ms"], rules["loudness_dbfs"]
    report = FixReport(project=info.name, actions=list(actions))
    items = []
    for done, (cid, key) in enumerate(rows, 1):
        y, sr = load_audio(ws.store.path(key))
        out, steps = y.astype("float64"), []
        if "silence" in actions:
            fitted, detail = fit_silence(out, sr, min_ms=float(margins["min"]), max_ms=float(margins["max"]))
            if len(fitted) != len(out):
                out = fitted
                steps.append(
                    {"step": "fit_silence", "min_ms": margins["min"], "max_ms": margins["max"], **detail}
                )
        if "loudness" in actions:
            level = 20 * math.log10(max(float((out**2).mean()) ** 0.5, 1e-12))
            if abs(level - float(loudness["target"])) > float(loudness.get("tolerance", 3.0)):
                out, detail = normalize_loudness(out, target_dbfs=float(loudness["target"]))
                steps.append({"step": "normalize_loudness", "target_dbfs": loudness["target"], **detail})
        if steps:
            items.append(
                DerivedAudio(
                    parent_id=int(cid),
                    samples=out,
                    sample_rate=sr,
                    derivation={"kind": "fix", "rules_source": source, "steps": steps},
                    name_suffix="fixed",
                )
            )
        else:
            report.unchanged.append(int(cid))
        if progress is not None:
            progress(done, len(rows))
    if not items:
        return report
    stored = store_derived_clips(ws, info.id, items, tag_source="fix", actor_id=actor_id, supersede=True)
    for it, (cid, created) in zip(items, stored, strict=True):
        (report.fixed if created else report.kept)[it.parent_id] = cid
    return report
