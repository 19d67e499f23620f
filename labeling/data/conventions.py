"""Versioned labeling conventions with gold examples and checkable rules.

Call :func:`save_convention` to publish a new version (numbered 1, 2, 3… per project, never edited in
place), :func:`current_convention` / :func:`get_convention` / :func:`convention_history` to read
them, :func:`unified_diff` / :func:`side_by_side_diff` to compare two versions, and
:func:`add_gold_example` / :func:`gold_examples` for the clips that show a rule in action.

Rules that a program can check live beside the text (``ConventionVersion.rules``), validated by
:func:`validate_rules`::

    {
        "silence_margin_ms": {"min": 50, "max": 500},          # leading and trailing silence
        "loudness_dbfs": {"target": -23.0, "tolerance": 3.0},  # RMS level
        "transcript": {"case": "lower", "punctuation": "strip",
                       "fillers": "drop", "filler_words": ["um", "uh"]},
    }

:func:`normalize_transcript` applies the transcript rules (so "Um, today's weather",
"Um… today's weather" and "today's weather" compare equal under ``fillers="drop"``), and
:func:`rule_violations` checks clips' measured silence and loudness against the rules.
"""

from __future__ import annotations

import difflib
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import pandas as pd
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import Clip, ConventionVersion, GoldExample, Project, User
from labeling.platform.audit import record

MAX_TEXT_CHARS = 200_000
MAX_NOTE_CHARS = 2_000
CASES = ("keep", "lower", "upper")
PUNCTUATION = ("keep", "strip")
FILLERS = ("keep", "drop")
DEFAULT_FILLER_WORDS = ("um", "uh", "er", "erm", "hmm", "mm")


class ConventionError(ValueError):
    """A conventions request that cannot be honoured; the message says why."""


class ConventionConflict(ConventionError):
    """Someone saved a newer version while this one was being edited."""


@dataclass(frozen=True)
class ConventionInfo:
    id: int
    project_id: int
    version: int
    text: str
    rules: dict[str, Any]
    note: str
    author_id: int | None
    author: str | None
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["created_at"] = self.created_at.isoformat()
        return d


@dataclass(frozen=True)
class GoldInfo:
    id: int
    version: int
    clip_id: int
    clip_name: str
    storage_key: str
    label: str | None
    transcript: str | None
    explanation: str
    created_by: str | None = None


@dataclass(frozen=True)
class Proposal:
    """A prefilled change proposal from a link such as ``conventions?clip=123&note=...``."""

    clip_id: int | None = None
    note: str = ""
    problems: list[str] = field(default_factory=list)


# --- rules (pure) ------------------------------------------------------------------------------------


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConventionError(f"{what} must be a number")
    return float(value)


def validate_rules(rules: Mapping[str, Any] | None) -> dict[str, Any]:
    """Checked, normalised rules; unknown keys and impossible values are refused with the reason."""
    rules = dict(rules or {})
    unknown = set(rules) - {"silence_margin_ms", "loudness_dbfs", "transcript"}
    if unknown:
        raise ConventionError(f"unknown rule(s): {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    if rules.get("silence_margin_ms") is not None:
        m = dict(rules["silence_margin_ms"])
        lo = _number(m.get("min", 0), "the minimum silence margin")
        hi = _number(m.get("max", lo), "the maximum silence margin")
        if lo < 0 or hi < lo:
            raise ConventionError("silence margins need 0 <= min <= max (milliseconds)")
        out["silence_margin_ms"] = {"min": lo, "max": hi}
    if rules.get("loudness_dbfs") is not None:
        m = dict(rules["loudness_dbfs"])
        target = _number(m.get("target"), "the loudness target")
        tol = _number(m.get("tolerance", 3.0), "the loudness tolerance")
        if target > 0 or tol <= 0:
            raise ConventionError("the loudness target is in dBFS (<= 0) with a positive tolerance")
        out["loudness_dbfs"] = {"target": target, "tolerance": tol}
    if rules.get("transcript") is not None:
        m = dict(rules["transcript"])
        t = {
            "case": m.get("case", "keep"),
            "punctuation": m.get("punctuation", "keep"),
            "fillers": m.get("fillers", "keep"),
            "filler_words": m.get("filler_words", list(DEFAULT_FILLER_WORDS)),
        }
        for key, choices in (("case", CASES), ("punctuation", PUNCTUATION), ("fillers", FILLERS)):
            if t[key] not in choices:
                raise ConventionError(f"transcript {key} must be one of {', '.join(choices)}")
        if isinstance(t["filler_words"], str) or not all(isinstance(w, str) for w in t["filler_words"]):
            raise ConventionError("filler words must be a list of words")
        t["filler_words"] = sorted({w.strip().casefold() for w in t["filler_words"] if w.strip()})
        out["transcript"] = t
    return out


_WORD_INNER = "'’-"


def _strip_punctuation(text: str) -> str:
    chars = []
    for i, ch in enumerate(text):
        if unicodedata.category(ch).startswith("P"):
            # Keep apostrophes and hyphens inside words ("today's", "well-known").
            inner = 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()
            chars.append(ch if ch in _WORD_INNER and inner else " ")
        else:
            chars.append(ch)
    return "".join(chars)


def normalize_transcript(text: str | None, rules: Mapping[str, Any] | None) -> str | None:
    """Apply a convention's transcript rules (case, punctuation, filler words); whitespace is collapsed.

    ``rules`` is a whole rules dict (its ``transcript`` part is used) or the transcript part itself.
    """
    if text is None:
        return None
    rules = dict(rules or {})
    t = rules.get("transcript", rules)
    text = unicodedata.normalize("NFC", text)
    if t.get("punctuation") == "strip":
        text = _strip_punctuation(text)
    if t.get("fillers") == "drop":
        fillers = {w.casefold() for w in t.get("filler_words", DEFAULT_FILLER_WORDS)}
        words = re.split(r"(\s+)", text)
        text = "".join(w for w in words if w.strip(",.;:!?…—-\"'").casefold() not in fillers)
    if t.get("case") == "lower":
        text = text.lower()
    elif t.get("case") == "upper":
        text = text.upper()
    return " ".join(text.split())


def rule_violations(clips: pd.DataFrame, rules: Mapping[str, Any] | None) -> pd.DataFrame:
    """Clips whose measured silence or loudness breaks the rules.

    Parameters
    ----------
    clips
        Needs ``clip_id``, ``leading_silence_ms``, ``trailing_silence_ms`` and ``rms_dbfs``
        (as :func:`labeling.data.clips.clip_frame` returns them).

    Returns
    -------
    DataFrame with columns ``clip_id``, ``rule``, ``value``, ``expected``; one row per broken rule.
    """
    rules = validate_rules(rules)
    parts = []
    if "silence_margin_ms" in rules:
        lo, hi = rules["silence_margin_ms"]["min"], rules["silence_margin_ms"]["max"]
        for col in ("leading_silence_ms", "trailing_silence_ms"):
            v = pd.to_numeric(clips[col], errors="coerce")
            bad = v.notna() & ((v < lo) | (v > hi))
            parts.append(
                pd.DataFrame(
                    {
                        "clip_id": clips.loc[bad, "clip_id"],
                        "rule": col,
                        "value": v[bad],
                        "expected": f"{lo:g}–{hi:g} ms",
                    }
                )
            )
    if "loudness_dbfs" in rules:
        target, tol = rules["loudness_dbfs"]["target"], rules["loudness_dbfs"]["tolerance"]
        v = pd.to_numeric(clips["rms_dbfs"], errors="coerce")
        bad = v.notna() & ((v - target).abs() > tol)
        parts.append(
            pd.DataFrame(
                {
                    "clip_id": clips.loc[bad, "clip_id"],
                    "rule": "rms_dbfs",
                    "value": v[bad],
                    "expected": f"{target:g} ± {tol:g} dBFS",
                }
            )
        )
    columns = ["clip_id", "rule", "value", "expected"]
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns].sort_values(["clip_id", "rule"], ignore_index=True)


def demote_headings(markdown: str, *, levels: int = 2) -> str:
    """Markdown with every ATX heading ``levels`` deeper (for showing a document inside a side panel)."""
    return re.sub(
        r"^(#{1,6})(?=\s)", lambda m: "#" * min(len(m.group(1)) + levels, 6), markdown, flags=re.MULTILINE
    )


# --- diffs (pure) ------------------------------------------------------------------------------------


def unified_diff(old: ConventionInfo | None, new: ConventionInfo) -> str:
    """A unified diff of the text, then of the rules, from ``old`` (None: empty) to ``new``."""
    a = old.text if old else ""
    a_name = f"version {old.version}" if old else "nothing"
    lines = list(
        difflib.unified_diff(
            a.splitlines(), new.text.splitlines(), a_name, f"version {new.version}", lineterm=""
        )
    )
    changed = rules_changes(old.rules if old else {}, new.rules)
    if changed:
        lines += ["", "rules:"] + [
            f"  {k}: {before!r} -> {after!r}" for k, (before, after) in changed.items()
        ]
    return "\n".join(lines)


def side_by_side_diff(old: ConventionInfo, new: ConventionInfo, *, context: bool = True) -> str:
    """An HTML table (difflib.HtmlDiff) comparing two versions' text side by side."""
    return difflib.HtmlDiff(wrapcolumn=70).make_table(
        old.text.splitlines(),
        new.text.splitlines(),
        f"version {old.version}",
        f"version {new.version}",
        context=context,
        numlines=2,
    )


def _flatten(rules: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in rules.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def rules_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{"loudness_dbfs.target": (-23.0, -20.0), ...}`` for every rule setting that differs."""
    a, b = _flatten(old), _flatten(new)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


# --- proposals from links (pure) ---------------------------------------------------------------------


def proposal_query(clip_id: int | None, note: str = "") -> dict[str, str]:
    """Query parameters for the Conventions page that prefill a change proposal from a clip."""
    params = {}
    if clip_id is not None:
        params["clip"] = str(int(clip_id))
    if note:
        params["note"] = note[:MAX_NOTE_CHARS]
    return params


def proposal_link(clip_id: int | None, note: str = "") -> str:
    """A relative link to the Conventions page, e.g. ``conventions?clip=123&note=...``."""
    return "conventions?" + urlencode(proposal_query(clip_id, note))


def proposal_from_query(params: Mapping[str, Any]) -> Proposal:
    """Read ``clip`` and ``note`` from query parameters; bad values are dropped and reported."""

    def first(key: str) -> str | None:
        value = params.get(key)
        if isinstance(value, list | tuple):
            value = value[0] if value else None
        return None if value is None else str(value)

    problems = []
    clip_id = None
    raw_clip = first("clip")
    if raw_clip:
        if raw_clip.strip().isdigit():
            clip_id = int(raw_clip.strip())
        else:
            problems.append(f"ignored clip={raw_clip[:40]!r}: not a clip number")
    note = first("note") or ""
    note = "".join(ch for ch in note if ch in "\n\t" or not unicodedata.category(ch).startswith("C"))
    if len(note) > MAX_NOTE_CHARS:
        problems.append(f"the note was cut to {MAX_NOTE_CHARS} characters")
        note = note[:MAX_NOTE_CHARS]
    return Proposal(clip_id=clip_id, note=note.strip(), problems=problems)


# --- versions ----------------------------------------------------------------------------------------


def _conv_info(row: ConventionVersion, author: str | None) -> ConventionInfo:
    return ConventionInfo(
        id=row.id,
        project_id=row.project_id,
        version=row.version,
        text=row.text,
        rules=dict(row.rules or {}),
        note=row.note,
        author_id=row.author_id,
        author=author,
        created_at=row.created_at,
    )


def _select_versions():
    return select(ConventionVersion, User.name).outerjoin(User, User.id == ConventionVersion.author_id)


def current_version(s: Session, project_id: int) -> int | None:
    """The newest version number of a project's conventions (None before the first is saved)."""
    return s.scalar(
        select(func.max(ConventionVersion.version)).where(ConventionVersion.project_id == project_id)
    )


def current_convention(s: Session, project_id: int) -> ConventionInfo | None:
    row = s.execute(
        _select_versions()
        .where(ConventionVersion.project_id == project_id)
        .order_by(ConventionVersion.version.desc())
        .limit(1)
    ).first()
    return _conv_info(*row) if row else None


def get_convention(s: Session, project_id: int, version: int) -> ConventionInfo:
    row = s.execute(
        _select_versions().where(
            ConventionVersion.project_id == project_id, ConventionVersion.version == int(version)
        )
    ).first()
    if row is None:
        raise ConventionError(f"this project has no conventions version {version}")
    return _conv_info(*row)


def convention_history(s: Session, project_id: int) -> pd.DataFrame:
    """One row per version, newest first: version, created_at, author, note, n_gold, chars."""
    n_gold = (
        select(func.count(GoldExample.id))
        .where(GoldExample.convention_version_id == ConventionVersion.id)
        .scalar_subquery()
    )
    rows = s.execute(
        select(
            ConventionVersion.version,
            ConventionVersion.created_at,
            User.name,
            ConventionVersion.note,
            n_gold,
            func.length(ConventionVersion.text),
        )
        .outerjoin(User, User.id == ConventionVersion.author_id)
        .where(ConventionVersion.project_id == project_id)
        .order_by(ConventionVersion.version.desc())
    ).all()
    return pd.DataFrame(rows, columns=["version", "created_at", "author", "note", "n_gold", "chars"])


def save_convention(
    s: Session,
    project_id: int,
    *,
    text: str,
    rules: Mapping[str, Any] | None = None,
    note: str = "",
    author_id: int | None = None,
    based_on: int | None = None,
    carry_gold: bool = True,
) -> ConventionInfo:
    """Publish a new version of a project's conventions.

    ``rules=None`` keeps the previous version's rules. ``based_on`` is the version the author was
    editing: if someone published a newer one meanwhile, :class:`ConventionConflict` is raised and
    nothing is saved. Gold examples of the previous version carry over unless ``carry_gold=False``.
    """
    if s.get(Project, project_id) is None:
        raise ConventionError(f"no project {project_id}")
    text = unicodedata.normalize("NFC", (text or "").replace("\r\n", "\n")).strip()
    note = (note or "").strip()
    if not text:
        raise ConventionError("the conventions text is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise ConventionError(f"the conventions text is longer than {MAX_TEXT_CHARS:,} characters")
    if len(note) > MAX_NOTE_CHARS:
        raise ConventionError(f"the change note is longer than {MAX_NOTE_CHARS:,} characters")
    previous = current_convention(s, project_id)
    if based_on is not None and previous is not None and previous.version != based_on:
        raise ConventionConflict(
            f"version {previous.version} was published by {previous.author or 'someone'} while you were "
            f"editing version {based_on}; reload to see it, then apply your change again"
        )
    checked = validate_rules(rules) if rules is not None else (previous.rules if previous else {})
    if previous is not None and previous.text == text and previous.rules == checked:
        raise ConventionError(f"nothing changed since version {previous.version}")
    if previous is not None and not note:
        raise ConventionError("say what changed and why in the change note")
    version = (previous.version if previous else 0) + 1
    row = ConventionVersion(
        project_id=project_id, version=version, text=text, rules=checked, note=note, author_id=author_id
    )
    try:
        with s.begin_nested():
            s.add(row)
            s.flush()
    except IntegrityError as exc:
        raise ConventionConflict(
            f"someone else published version {version} at the same moment; reload and apply your change again"
        ) from exc
    carried = 0
    if previous is not None and carry_gold:
        golds = s.execute(
            select(
                GoldExample.clip_id,
                GoldExample.label,
                GoldExample.transcript,
                GoldExample.explanation,
                GoldExample.created_by,
            ).where(GoldExample.convention_version_id == previous.id)
        ).all()
        if golds:
            s.execute(
                insert(GoldExample),
                [
                    {
                        "convention_version_id": row.id,
                        "clip_id": g.clip_id,
                        "label": g.label,
                        "transcript": g.transcript,
                        "explanation": g.explanation,
                        "created_by": g.created_by,
                        "created_at": row.created_at,
                    }
                    for g in golds
                ],
            )
        carried = len(golds)
    record(
        s,
        entity="convention",
        entity_id=f"{project_id}:{version}",
        action="create",
        old={"version": previous.version, "rules": previous.rules} if previous else None,
        new={"version": version, "note": note, "rules": checked, "text": text, "gold_carried": carried},
        actor_id=author_id,
        project_id=project_id,
    )
    author = s.scalar(select(User.name).where(User.id == author_id)) if author_id is not None else None
    return _conv_info(row, author)


# --- gold examples -----------------------------------------------------------------------------------


def _version_row(s: Session, project_id: int, version: int | None) -> ConventionVersion:
    q = select(ConventionVersion).where(ConventionVersion.project_id == project_id)
    q = (
        q.where(ConventionVersion.version == int(version))
        if version is not None
        else q.order_by(ConventionVersion.version.desc()).limit(1)
    )
    row = s.scalar(q)
    if row is None:
        raise ConventionError(
            "save a first version of the conventions before adding gold examples"
            if version is None
            else f"this project has no conventions version {version}"
        )
    return row


def gold_examples(s: Session, project_id: int, version: int | None = None) -> list[GoldInfo]:
    """The gold examples of one version (default: the current one); empty before any version exists."""
    try:
        conv = _version_row(s, project_id, version)
    except ConventionError:
        return []
    return gold_examples_of(s, conv.id, conv.version)


def gold_examples_of(s: Session, convention_id: int, version: int) -> list[GoldInfo]:
    """The gold examples of the conventions version with id ``convention_id`` (its number ``version``),
    for a caller that has read that version already."""
    rows = s.execute(
        select(GoldExample, Clip.original_name, Clip.storage_key, User.name)
        .join(Clip, Clip.id == GoldExample.clip_id)
        .outerjoin(User, User.id == GoldExample.created_by)
        .where(GoldExample.convention_version_id == convention_id)
        .order_by(GoldExample.id)
    ).all()
    return [
        GoldInfo(
            id=g.id,
            version=version,
            clip_id=g.clip_id,
            clip_name=name,
            storage_key=key,
            label=g.label,
            transcript=g.transcript,
            explanation=g.explanation,
            created_by=who,
        )
        for g, name, key, who in rows
    ]


def add_gold_example(
    s: Session,
    project_id: int,
    *,
    clip_id: int,
    label: str | None = None,
    transcript: str | None = None,
    explanation: str,
    version: int | None = None,
    actor_id: int | None = None,
) -> GoldInfo:
    """Attach a clip with its canonical label and the reason to a version (default: the current one).

    Attaching the same clip again to the same version replaces its label and explanation.
    """
    project = s.get(Project, project_id)
    if project is None:
        raise ConventionError(f"no project {project_id}")
    conv = _version_row(s, project_id, version)
    clip = s.get(Clip, int(clip_id))
    if clip is None or clip.project_id != project_id or clip.deleted_at is not None:
        raise ConventionError(f"clip {clip_id} is not a clip of this project")
    label = (label or "").strip() or None
    transcript = transcript.strip() if transcript and transcript.strip() else None
    explanation = (explanation or "").strip()
    if label is None and transcript is None:
        raise ConventionError("a gold example needs its canonical label or transcript")
    if label is not None and project.classes and label not in project.classes:
        raise ConventionError(f"{label!r} is not one of this project's classes")
    if not explanation:
        raise ConventionError(
            "say why this is the right label: the explanation is what annotators learn from"
        )
    existing = s.scalar(
        select(GoldExample).where(
            GoldExample.convention_version_id == conv.id, GoldExample.clip_id == clip.id
        )
    )
    new = {
        "version": conv.version,
        "clip_id": clip.id,
        "label": label,
        "transcript": transcript,
        "explanation": explanation,
    }
    if existing is None:
        gold = GoldExample(
            convention_version_id=conv.id,
            clip_id=clip.id,
            label=label,
            transcript=transcript,
            explanation=explanation,
            created_by=actor_id,
        )
        s.add(gold)
        s.flush()
        record(
            s,
            entity="gold_example",
            entity_id=gold.id,
            action="create",
            new=new,
            actor_id=actor_id,
            project_id=project_id,
        )
    else:
        gold = existing
        old = {"label": gold.label, "transcript": gold.transcript, "explanation": gold.explanation}
        gold.label, gold.transcript, gold.explanation = label, transcript, explanation
        s.flush()
        record(
            s,
            entity="gold_example",
            entity_id=gold.id,
            action="update",
            old=old,
            new=new,
            actor_id=actor_id,
            project_id=project_id,
        )
    who = s.scalar(select(User.name).where(User.id == actor_id)) if actor_id is not None else None
    return GoldInfo(
        id=gold.id,
        version=conv.version,
        clip_id=clip.id,
        clip_name=clip.original_name,
        storage_key=clip.storage_key,
        label=label,
        transcript=transcript,
        explanation=explanation,
        created_by=who,
    )


def remove_gold_example(s: Session, project_id: int, gold_id: int, *, actor_id: int | None = None) -> None:
    gold = s.get(GoldExample, int(gold_id))
    conv = s.get(ConventionVersion, gold.convention_version_id) if gold is not None else None
    if gold is None or conv is None or conv.project_id != project_id:
        raise ConventionError(f"no gold example {gold_id} in this project")
    old = {
        "version": conv.version,
        "clip_id": gold.clip_id,
        "label": gold.label,
        "transcript": gold.transcript,
    }
    s.delete(gold)
    s.flush()
    record(
        s,
        entity="gold_example",
        entity_id=gold_id,
        action="delete",
        old=old,
        actor_id=actor_id,
        project_id=project_id,
    )


def versions(s: Session, project_id: int) -> Sequence[int]:
    """Every version number of a project's conventions, oldest first."""
    return list(
        s.scalars(
            select(ConventionVersion.version)
            .where(ConventionVersion.project_id == project_id)
            .order_by(ConventionVersion.version)
        )
    )
