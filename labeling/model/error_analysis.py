"""Error analysis of a model run by slice, and the decisions it leads to.

Call :func:`slice_report` for the slice table of a run (one row per tag and per metadata value: size,
accuracy or WER, share of the errors, human-level performance, gap and priority),
:func:`discovered_slices` for the conjunctions of tags, metadata and binned audio measures where the
errors concentrate, and :func:`error_examples` for the misclassified clips of one slice
(:func:`error_page` pages through them, by confusion pair if asked). While
listening, :func:`tag_clip` / :func:`untag_clip` add error-analysis tags (source ``analysis``), which
the next report counts at once. :func:`set_hlp` stores a hand-entered HLP for a slice; HLP otherwise
comes from the annotations (how often one annotator agrees with the final label). A slice worth
fixing goes to the labeling queue with :func:`send_slice_to_queue` or is marked for data collection
with :func:`mark_for_collection`.

A slice is named by an expression (what the tables show): a tag (``noise:car``), a metadata value
(``accent=caribbean``), a range of an audio measure (``snr_db < 7.5``, ``0.4 <= duration_s < 0.6``,
``rms_dbfs >= -20``), or several of these joined with ``" AND "``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from analysis.discovery import discover_slices
from analysis.slices import confusion_table, per_class_metrics
from db.models import Annotation, Clip, ClipTag, ModelRun, SliceAction
from labeling.data.clips import clip_frame, metadata_columns, tag_matrix
from labeling.data.projects import ProjectInfo, get_project, update_project, validate_name
from labeling.data.versions import is_augmented
from labeling.model.runs import RunError, redundant_metadata, run_predictions, slice_columns, slice_metrics
from labeling.platform.audit import record, record_many
from labeling.platform.progress import StageProgress

#: Audio measures discovery bins into ranges (when the frame has them).
MEASURES = ("duration_s", "rms_dbfs", "snr_db", "f0_median_hz")
REPORT_COLUMNS = [
    "tag",
    "kind",
    "n",
    "share",
    "accuracy",
    "error_share",
    "hlp",
    "hlp_source",
    "gap",
    "priority",
]
HLP_SETTING = "hlp"


class ErrorAnalysisError(ValueError):
    """A request that cannot be honoured (unknown slice, bad HLP, …); nothing was changed."""


def _project(s: Session, project: ProjectInfo | str | int) -> ProjectInfo:
    return project if isinstance(project, ProjectInfo) else get_project(s, project)


def _run(s: Session, run_id: int) -> ModelRun:
    run = s.get(ModelRun, int(run_id))
    if run is None:
        raise RunError(f"no model run {run_id}")
    return run


def _metric(preds: pd.DataFrame) -> str:
    """WER for runs that transcribe and never classify, accuracy otherwise."""
    if preds["y_pred"].isna().all() and preds["wer"].notna().any():
        return "wer"
    return "accuracy"


def _in_split(preds: pd.DataFrame, split: str | None) -> pd.DataFrame:
    if split in (None, "all"):
        return preds
    return preds[(preds["split"] == split).fillna(False).to_numpy(dtype=bool)].reset_index(drop=True)


# --- human-level performance -----------------------------------------------------------------------


def annotation_hlp(s: Session, project_id: int) -> dict[str, float]:
    """HLP per slice from the annotations: the share of annotations equal to the clip's final label.

    Keys are tags (``noise:car``), metadata values (``accent=caribbean``) and ``"all"``. Empty when the
    project has no annotations of labelled clips (or the agreement module is absent).
    """
    n = s.scalar(select(func.count(Annotation.id)).where(Annotation.project_id == project_id)) or 0
    if not n:
        return {}
    try:
        from analysis.agreement import human_level_performance
        from labeling.annotate.annotations import annotations_frame
    except ImportError:
        return {}
    ann = annotations_frame(s, project_id)[["clip_id", "annotator", "label"]]
    clips = clip_frame(s, project_id)
    meta = [c for c in metadata_columns(clips) if 2 <= clips[c].nunique() <= 30]
    resolved = clips[["clip_id", "label", "tags", *meta]]
    table = human_level_performance(
        ann, resolved, item="clip_id", rater="annotator", value="label", slice_cols=["tags", *meta]
    )
    out: dict[str, float] = {}
    for row in table.itertuples(index=False):
        if not math.isfinite(row.hlp):
            continue
        if row.slice == "all":
            out["all"] = float(row.hlp)
        elif row.slice == "tags":
            out[str(row.value)] = float(row.hlp)
        else:
            out[f"{row.slice}={row.value}"] = float(row.hlp)
    return out


def entered_hlp(project: ProjectInfo) -> dict[str, float]:
    """HLP values entered by hand for a project (``project.settings["hlp"]``)."""
    return {str(k): float(v) for k, v in (project.settings.get(HLP_SETTING) or {}).items()}


def set_hlp(
    s: Session,
    project: ProjectInfo | str | int,
    tag: str,
    value: float | None,
    *,
    actor_id: int | None = None,
) -> dict[str, float]:
    """Enter the human-level performance of a slice by hand (None removes it); returns all entered values.

    Raises
    ------
    ErrorAnalysisError
        If ``value`` is not a number in [0, 1].
    """
    info = _project(s, project)
    tag = validate_name(tag, what="slice name")
    values = entered_hlp(info)
    if value is None:
        values.pop(tag, None)
    else:
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ErrorAnalysisError(f"HLP must be a number between 0 and 1, not {value!r}") from None
        if not 0.0 <= v <= 1.0:
            raise ErrorAnalysisError(f"HLP must lie between 0 and 1 (a fraction), not {v:g}")
        values[tag] = v
    update_project(s, info.id, settings={**info.settings, HLP_SETTING: values}, actor_id=actor_id)
    return values


# --- reports ---------------------------------------------------------------------------------------


def slice_report(
    s: Session,
    run_id: int,
    *,
    hlp: Mapping[str, float] | None = None,
    split: str | None = "test",
) -> pd.DataFrame:
    """The slice table of a run: which tag or metadata value is worth improving first.

    HLP per slice comes from the annotations (:func:`annotation_hlp`), then from the values entered
    with :func:`set_hlp`, then from ``hlp``; each overrides the one before.

    Parameters
    ----------
    run_id
        The run; truth is the clips' current final label, so relabelling shows at once.
    hlp
        HLP values for this report only, keyed by slice name.
    split
        Score only this split's clips (``None`` or ``"all"``: every clip; training clips count with
        their out-of-fold predictions).

    Returns
    -------
    pandas.DataFrame
        :data:`REPORT_COLUMNS` (``accuracy`` is ``wer`` for transcription runs): ``tag`` names the
        slice, ``kind`` is ``tag`` or ``metadata``, ``hlp_source`` says where the HLP came from
        (``annotations``, ``entered``, ``given``). Sorted by priority, then error share.
    """
    run = _run(s, run_id)
    return _report(s, get_project(s, run.project_id), _in_split(run_predictions(s, run.id), split), hlp)


def _report(
    s: Session, info: ProjectInfo, preds: pd.DataFrame, hlp: Mapping[str, float] | None
) -> pd.DataFrame:
    metric = _metric(preds)
    sources: dict[str, str] = {}
    merged: dict[str, float] = {}
    layers = [
        ("annotations", annotation_hlp(s, info.id) if metric == "accuracy" else {}),
        ("entered", entered_hlp(info)),
        ("given", dict(hlp or {})),
    ]
    for source, values in layers:
        for key, value in values.items():
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            merged[key] = float(value)
            sources[key] = source
    table = slice_metrics(preds, metric=metric, hlp=merged)
    table["hlp_source"] = table["tag"].map(sources)
    columns = [metric if c == "accuracy" else c for c in REPORT_COLUMNS]
    return table[columns].reset_index(drop=True)


def overall_metrics(s: Session, run_id: int, *, split: str | None = "test") -> dict[str, Any]:
    """Accuracy (or mean WER), clip count and error count of a run on a split, against current labels."""
    return _overall(_in_split(run_predictions(s, run_id), split))


def _overall(preds: pd.DataFrame) -> dict[str, Any]:
    if _metric(preds) == "wer":
        w = preds["wer"].dropna()
        return {
            "n": int(w.size),
            "wer": float(w.mean()) if w.size else math.nan,
            "errors": int((w > 0).sum()),
        }
    c = preds["correct"].dropna().astype(bool)
    return {"n": int(c.size), "accuracy": float(c.mean()) if c.size else math.nan, "errors": int((~c).sum())}


def class_breakdown(
    s: Session, run_id: int, *, split: str | None = "test"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Confusion counts (rows true, columns predicted) and per-class precision, recall, F1 and support.

    Classes are the run's, then any other final label; clips without a final label are left out.
    """
    run = _run(s, run_id)
    return _breakdown(run.classes or [], _in_split(run_predictions(s, run.id), split))


def _breakdown(classes: Sequence[str], preds: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    scored = preds[preds["y_true"].notna() & preds["y_pred"].notna()]
    labels = list(dict.fromkeys([*classes, *sorted(scored["y_true"].astype(str).unique())]))
    y_true, y_pred = scored["y_true"].astype(str), scored["y_pred"].astype(str)
    return confusion_table(y_true, y_pred, labels=labels), per_class_metrics(y_true, y_pred, labels=labels)


def _discovery_frame(preds: pd.DataFrame, extra: pd.DataFrame | None) -> tuple[pd.DataFrame, list[str]]:
    tags, meta = slice_columns(preds)
    repeated = set(redundant_metadata(preds, tags, meta))
    meta = [m for m in meta if m not in repeated]
    frame = pd.DataFrame(index=preds.index)
    for t in tags:
        # Only the presence of a tag is a predicate: "not noise:car" is no slice anyone would fix.
        frame[t] = pd.array(np.where(preds[t].to_numpy() == 1, True, pd.NA), dtype="boolean")
    for m in meta:
        frame[m] = preds[m]
    if extra is not None:
        joined = extra.reindex(preds["clip_id"].to_numpy())
        for col in joined.columns:
            if col not in preds.columns:
                preds = preds.assign(**{col: joined[col].to_numpy()})
    measures = [m for m in MEASURES if m in preds.columns and preds[m].notna().any()]
    for m in measures:
        frame[m] = pd.to_numeric(preds[m], errors="coerce").astype("float64")
    return frame, [*tags, *meta, *measures]


def discovered_slices(
    s: Session,
    run_id: int,
    *,
    split: str | None = "test",
    extra: pd.DataFrame | None = None,
    max_order: int = 2,
    top_k: int = 15,
    min_support: float = 0.05,
) -> pd.DataFrame:
    """Slices where a run's errors concentrate, found by :func:`analysis.discovery.discover_slices`.

    Candidates are tags, categorical metadata and quartile bins of the audio measures
    :data:`MEASURES` (duration, loudness, SNR and — when ``extra`` brings it — pitch).

    Parameters
    ----------
    extra
        More per-clip columns indexed by clip id (e.g. :func:`labeling.model.runs.project_features`, for
        ``f0_median_hz``); only :data:`MEASURES` among them are used.
    max_order, top_k, min_support
        As for :func:`analysis.discovery.discover_slices`.

    Returns
    -------
    pandas.DataFrame
        ``slice`` (an expression :func:`send_slice_to_queue` accepts), ``n``, ``share``,
        ``error_rate``, ``lift``, ``score``, ``order``; best first.
    """
    preds = _in_split(run_predictions(s, run_id), split)
    return _discovered(preds, extra=extra, max_order=max_order, top_k=top_k, min_support=min_support)


def _discovered(
    preds: pd.DataFrame, *, extra: pd.DataFrame | None, max_order: int, top_k: int, min_support: float
) -> pd.DataFrame:
    metric = _metric(preds)
    frame, cols = _discovery_frame(preds, extra)
    if metric == "wer":
        frame["__error"] = preds["wer"].to_numpy()
    else:
        frame["__error"] = (~preds["correct"].astype("boolean")).astype("Float64")
    found = discover_slices(
        frame,
        error_col="__error",
        feature_cols=cols,
        max_order=max_order,
        top_k=top_k,
        min_support=min_support,
    )
    tags = set(slice_columns(preds)[0])
    found["slice"] = [
        " AND ".join(p[0] if p[0] in tags else label for p, label in zip(preds_, _parts(name), strict=True))
        for preds_, name in zip(found["predicates"], found["slice"], strict=True)
    ]
    # Two descriptions of the same clips (device=phone and channel:telephone) score alike; keep the first.
    found = found.drop_duplicates(subset=["n", "error_rate", "score"], keep="first")
    return found.drop(columns=["predicates"]).reset_index(drop=True)


@dataclass(frozen=True)
class RunAnalysis:
    """Everything the Error analysis page shows about one run on one split."""

    overall: dict[str, Any]
    report: pd.DataFrame
    confusion: pd.DataFrame
    per_class: pd.DataFrame
    discovered: pd.DataFrame


def run_analysis(
    s: Session,
    run_id: int,
    *,
    split: str | None = "test",
    hlp: Mapping[str, float] | None = None,
    progress: StageProgress | None = None,
) -> RunAnalysis:
    """:func:`overall_metrics`, :func:`slice_report`, :func:`class_breakdown` and
    :func:`discovered_slices` of a run, reading its predictions once; ``progress(stage, done, total)``
    is told each of the four steps."""
    say = progress or (lambda stage, done, total: None)
    run = _run(s, run_id)
    say("Analysing the run (reading its predictions), step", 0, 4)
    preds = _in_split(run_predictions(s, run.id), split)
    say(f"Analysing the run (confusion matrix of {len(preds):,} clips), step", 1, 4)
    confusion, per_class = _breakdown(run.classes or [], preds)
    say("Analysing the run (every slice against human-level performance), step", 2, 4)
    report = _report(s, get_project(s, run.project_id), preds, hlp)
    say("Analysing the run (searching for where the errors concentrate), step", 3, 4)
    discovered = _discovered(preds, extra=None, max_order=2, top_k=15, min_support=0.05)
    say("Analysing the run, step", 4, 4)
    return RunAnalysis(
        overall=_overall(preds),
        report=report,
        confusion=confusion,
        per_class=per_class,
        discovered=discovered,
    )


def _parts(expr: str) -> list[str]:
    return [p.strip() for p in expr.split(" AND ") if p.strip()]


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_BETWEEN = re.compile(rf"^(?P<low>{_NUMBER}) <= (?P<col>\S+) < (?P<high>{_NUMBER})$")
_BELOW = re.compile(rf"^(?P<col>\S+) < (?P<high>{_NUMBER})$")
_ABOVE = re.compile(rf"^(?P<col>\S+) >= (?P<low>{_NUMBER})$")
_SET = re.compile(r"^(?P<col>\S+) is set$")


def slice_mask(frame: pd.DataFrame, expr: str, *, tag_cols: Sequence[str]) -> np.ndarray:
    """Rows of ``frame`` (a run's predictions or a clip frame with tag columns) inside a slice expression.

    Raises
    ------
    ErrorAnalysisError
        If a part names neither a tag, a column nor a range of a numeric column.
    """
    tags = set(tag_cols)
    mask = np.ones(len(frame), dtype=bool)
    parts = _parts(expr)
    if not parts:
        raise ErrorAnalysisError("the slice is empty")
    for part in parts:
        if part in tags:
            mask &= frame[part].to_numpy() == 1
            continue
        numeric = next((m for m in (_BETWEEN.match(part), _BELOW.match(part), _ABOVE.match(part)) if m), None)
        if numeric is not None and numeric["col"] in frame.columns:
            x = pd.to_numeric(frame[numeric["col"]], errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
            d = numeric.groupdict()
            low = float(d["low"]) if d.get("low") is not None else -math.inf
            high = float(d["high"]) if d.get("high") is not None else math.inf
            mask &= (x >= low) & (x < high)
            continue
        is_set = _SET.match(part)
        if is_set and is_set["col"] in frame.columns:
            mask &= frame[is_set["col"]].notna().to_numpy()
            continue
        col, eq, value = part.partition("=")
        if eq and col in frame.columns:
            mask &= (frame[col].astype("string") == value).fillna(False).to_numpy(dtype=bool)
            continue
        raise ErrorAnalysisError(
            f"{part!r} is neither a tag nor a metadata value (column=value) nor a range of an audio measure"
        )
    return mask


def error_examples(
    s: Session,
    run_id: int,
    *,
    slice_expr: str | None = None,
    split: str | None = "test",
    only_errors: bool = True,
    limit: int | None = 200,
) -> pd.DataFrame:
    """The clips of a slice the run got wrong, most confident mistakes first (what to listen to).

    Returns
    -------
    pandas.DataFrame
        Rows of :func:`labeling.model.runs.run_predictions`; with ``only_errors``, those whose ``correct``
        is False (or whose WER is above 0).
    """
    preds = _in_split(run_predictions(s, run_id), split)
    if slice_expr:
        preds = preds[slice_mask(preds, slice_expr, tag_cols=slice_columns(preds)[0])]
    if only_errors:
        wrong = (preds["wer"] > 0) if _metric(preds) == "wer" else (preds["correct"] == False)  # noqa: E712
        preds = preds[wrong.fillna(False).to_numpy(dtype=bool)]
    ranked = preds.sort_values("confidence", ascending=False, na_position="last", kind="stable")
    return (ranked if limit is None else ranked.head(limit)).reset_index(drop=True)


@dataclass(frozen=True)
class ErrorPage:
    """One page of a slice's errors (most confident first) and what can narrow them further.

    ``rows`` are rows of :func:`labeling.model.runs.run_predictions` (as the run saw them) plus
    ``tags_now`` and ``replaced_by`` (the clip as it is now); ``n_errors`` counts every error of
    the slice that matches ``pair``; ``pairs`` (``y_true, y_pred, n``, most frequent first) are the
    confusions among the slice's errors, whatever ``pair`` is.
    """

    rows: pd.DataFrame
    n_errors: int
    page: int
    page_size: int
    pairs: pd.DataFrame

    @property
    def n_pages(self) -> int:
        return max(1, -(-self.n_errors // self.page_size))

    @property
    def first(self) -> int:
        """1-based position of the page's first error (0 when there is none)."""
        return self.page * self.page_size + 1 if self.n_errors else 0


def error_page(
    s: Session,
    run_id: int,
    *,
    slice_expr: str | None = None,
    split: str | None = "test",
    pair: tuple[str, str] | None = None,
    page: int = 0,
    page_size: int = 10,
) -> ErrorPage:
    """Page ``page`` of the errors of a slice, optionally only those where class ``pair[0]`` was
    predicted as ``pair[1]``; every error of the slice can be paged through.

    A page past the end gives the last page.
    """
    errors = error_examples(s, run_id, slice_expr=slice_expr, split=split, limit=None)
    if "y_true" in errors.columns and len(errors):
        pairs = (
            errors.groupby(["y_true", "y_pred"], dropna=True, observed=True)
            .size()
            .rename("n")
            .reset_index()
            .sort_values(["n", "y_true", "y_pred"], ascending=[False, True, True], kind="stable")
            .reset_index(drop=True)
        )
    else:
        pairs = pd.DataFrame({"y_true": [], "y_pred": [], "n": []})
    if pair is not None:
        keep = (errors["y_true"].astype("string") == pair[0]) & (errors["y_pred"].astype("string") == pair[1])
        errors = errors[keep.fillna(False).to_numpy(dtype=bool)]
    size = max(1, int(page_size))
    last = max(0, -(-len(errors) // size) - 1)
    page = min(max(0, int(page)), last)
    rows = errors.iloc[page * size : (page + 1) * size].reset_index(drop=True)
    rows = _with_live_state(s, rows)
    return ErrorPage(rows=rows, n_errors=len(errors), page=page, page_size=size, pairs=pairs)


def _with_live_state(s: Session, rows: pd.DataFrame) -> pd.DataFrame:
    """Add what the clips are *now* beside what the run saw: ``tags_now`` (the live tags, which
    tagging while listening changes) and ``replaced_by`` (the fixed copy that took the place of a
    clip retired since the run, else None). The run's own columns stay as frozen."""
    ids = [int(c) for c in rows["clip_id"]] if len(rows) else []
    tags: dict[int, list[str]] = {c: [] for c in ids}
    for clip_id, tag in s.execute(
        select(ClipTag.clip_id, ClipTag.tag).where(ClipTag.clip_id.in_(ids)).order_by(ClipTag.tag)
    ):
        tags[clip_id].append(tag)
    retired = set(s.scalars(select(Clip.id).where(Clip.id.in_(ids), Clip.deleted_at.is_not(None))))
    copies = s.execute(
        select(Clip.parent_clip_id, Clip.id, Clip.derivation).where(
            Clip.parent_clip_id.in_(retired), Clip.deleted_at.is_(None)
        )
    ).all()
    replaced = {parent: child for parent, child, how in copies if not is_augmented(how)}
    now = [tags.get(c, []) for c in ids]
    by = [replaced.get(c) if c in retired else None for c in ids]
    return rows.assign(
        tags_now=pd.Series(now, index=rows.index, dtype=object),
        replaced_by=pd.Series(by, index=rows.index, dtype=object),
    )


# --- tagging while listening -----------------------------------------------------------------------


def tag_clip(s: Session, clip_id: int, tag: str, *, actor_id: int | None = None) -> bool:
    """Tag a clip during error analysis (source ``analysis``); False if it already had the tag."""
    tag = validate_name(tag, what="tag")
    clip = s.get(Clip, int(clip_id))
    if clip is None:
        raise ErrorAnalysisError(f"no clip {clip_id}")
    exists = s.scalar(select(ClipTag.id).where(ClipTag.clip_id == clip.id, ClipTag.tag == tag))
    if exists is not None:
        return False
    s.add(ClipTag(clip_id=clip.id, tag=tag, source="analysis", created_by=actor_id))
    s.flush()
    record(
        s,
        entity="clip_tag",
        entity_id=clip.id,
        action="create",
        new={"tag": tag, "source": "analysis"},
        actor_id=actor_id,
        project_id=clip.project_id,
    )
    return True


def untag_clip(s: Session, clip_id: int, tag: str, *, actor_id: int | None = None) -> bool:
    """Remove a tag from a clip; False if it did not have it."""
    clip = s.get(Clip, int(clip_id))
    if clip is None:
        raise ErrorAnalysisError(f"no clip {clip_id}")
    row = s.scalar(select(ClipTag).where(ClipTag.clip_id == clip.id, ClipTag.tag == tag))
    if row is None:
        return False
    old = {"tag": row.tag, "source": row.source}
    s.execute(delete(ClipTag).where(ClipTag.id == row.id))
    record(
        s,
        entity="clip_tag",
        entity_id=clip.id,
        action="delete",
        old=old,
        actor_id=actor_id,
        project_id=clip.project_id,
    )
    return True


# --- acting on a slice -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SliceActionResult:
    """What an action on a slice did: which action, on how many clips (and how many still need labels)."""

    id: int
    action: str
    slice: str
    n_clips: int
    n_open: int
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def slice_clip_ids(s: Session, project_id: int, slice_expr: str) -> list[int]:
    """Ids of a project's live clips (every split) inside a slice expression."""
    clips = clip_frame(s, project_id)
    if clips.empty:
        return []
    tags = tag_matrix(clips)
    frame = pd.concat([clips, tags.drop(columns=[c for c in tags.columns if c in clips.columns])], axis=1)
    mask = slice_mask(frame, slice_expr, tag_cols=list(tags.columns))
    return [int(c) for c in clips.loc[mask, "clip_id"]]


def _act(
    s: Session,
    project: ProjectInfo | str | int,
    slice_expr: str,
    *,
    action: str,
    note: str,
    boost: int,
    actor_id: int | None,
) -> SliceActionResult:
    info = _project(s, project)
    slice_expr = " AND ".join(_parts(slice_expr))
    ids = slice_clip_ids(s, info.id, slice_expr)
    if not ids:
        raise ErrorAnalysisError(f"the slice {slice_expr!r} holds no clips of {info.name!r}")
    if boost:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            before = s.execute(select(Clip.id, Clip.priority).where(Clip.id.in_(chunk))).all()
            s.execute(update(Clip).where(Clip.id.in_(chunk)).values(priority=Clip.priority + int(boost)))
            record_many(
                s,
                (
                    {
                        "entity": "clip",
                        "entity_id": r.id,
                        "action": "update",
                        "old": {"priority": r.priority},
                        "new": {"priority": r.priority + int(boost)},
                    }
                    for r in before
                ),
                actor_id=actor_id,
                project_id=info.id,
            )
    n_open = 0
    for start in range(0, len(ids), 500):
        n_open += int(
            s.scalar(
                select(func.count(Clip.id)).where(
                    Clip.id.in_(ids[start : start + 500]), Clip.annotation_count < Clip.annotations_needed
                )
            )
            or 0
        )
    row = SliceAction(
        project_id=info.id,
        slice=slice_expr[:500],
        action=action,
        note=note,
        n_clips=len(ids),
        created_by=actor_id,
    )
    s.add(row)
    s.flush()
    record(
        s,
        entity="slice_action",
        entity_id=row.id,
        action="create",
        new={"slice": row.slice, "action": action, "n_clips": len(ids), "boost": boost, "note": note},
        actor_id=actor_id,
        project_id=info.id,
    )
    return SliceActionResult(row.id, action, row.slice, len(ids), n_open, note)


def send_slice_to_queue(
    s: Session,
    project: ProjectInfo | str | int,
    slice_expr: str,
    *,
    boost: int = 10,
    note: str = "",
    actor_id: int | None = None,
) -> SliceActionResult:
    """Move a slice's clips up the labeling queue: their priority rises by ``boost``.

    Clips that still need annotations are served before others with equal annotation counts; the
    result's ``n_open`` says how many of the slice's clips that is. The decision is recorded as a
    :class:`~db.models.SliceAction` ``queue``, audited with every priority change.
    """
    if int(boost) <= 0:
        raise ErrorAnalysisError("the boost must be a positive number of priority steps")
    return _act(s, project, slice_expr, action="queue", note=note, boost=int(boost), actor_id=actor_id)


def mark_for_collection(
    s: Session,
    project: ProjectInfo | str | int,
    slice_expr: str,
    *,
    note: str = "",
    actor_id: int | None = None,
) -> SliceActionResult:
    """Record that more data like this slice should be collected (a ``collect`` slice action)."""
    return _act(s, project, slice_expr, action="collect", note=note, boost=0, actor_id=actor_id)


def slice_actions(s: Session, project_id: int) -> pd.DataFrame:
    """A project's slice decisions, newest first: ``id, slice, action, n_clips, note, created_at``."""
    rows = s.execute(
        select(
            SliceAction.id,
            SliceAction.slice,
            SliceAction.action,
            SliceAction.n_clips,
            SliceAction.note,
            SliceAction.created_at,
        )
        .where(SliceAction.project_id == project_id)
        .order_by(SliceAction.id.desc())
    ).all()
    return pd.DataFrame(rows, columns=["id", "slice", "action", "n_clips", "note", "created_at"])
