"""Error analysis of a model's time regions on long recordings: call :func:`region_error_report`.

The model is a set of regions per recording kept apart from anyone's work: the built-in energy VAD's
proposal (``earmark regions propose``, source ``proposal``) or regions a file brought without naming
an annotator (``earmark regions import-rttm`` without ``--annotator``, source ``import``). It is
scored against the final regions with :func:`analysis.region_errors.region_errors`: the detection
error rate (DER) and its parts (missed, false alarm, confusion seconds), event F1 (a region matches
when its onset and its offset are both within the tolerance, same class) and, when both sides have
transcripts, the WER of region transcripts after the project's normalisation.

:func:`slice_error_spans` says where in time a slice's errors lie (each missed, false-alarm or
confused stretch of a recording), and :func:`error_audio` cuts one out of the recording to play.

Slices are the recordings' tags and metadata, the final regions' own tags and their classes, with
the same priority as clips get (gap to human level × share of the reference time). Human level is
the annotators' own detection error rate against the final regions in the same slice, pooled over
the annotators (each on the recordings they labelled).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
import soundfile as sf
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from analysis.region_agreement import boundary_agreement
from analysis.region_errors import (
    error_spans,
    per_class_region_table,
    region_errors,
    region_metadata_slices,
    region_slice_table,
    region_transcript_pairs,
)
from analysis.text import NormalizationRules, error_rates
from db.models import Region
from labeling.data.clips import clip_frame, metadata_columns, tag_matrix
from labeling.data.projects import ProjectInfo
from labeling.data.region_clips import cut_span
from labeling.data.regions import ANNOTATOR_SOURCES, list_regions, recording, regions_project
from labeling.platform.storage import AudioStorage

#: Sets that can be scored as a model, and how the page names them.
MODEL_SOURCES = {"proposal": "Energy VAD (built in)", "import": "Imported predictions"}
SUMMARY_COLUMNS = [
    "system",
    "kind",
    "recordings",
    "reference_s",
    "missed",
    "false_alarm",
    "confusion",
    "der",
    "f1",
    "wer",
]
SLICE_COLUMNS = [
    "slice",
    "kind",
    "n",
    "duration",
    "share",
    "error_rate",
    "error_share",
    "hlp",
    "gap",
    "priority",
]
_MAX_METADATA_VALUES = 30


@dataclass(frozen=True)
class RegionErrorReport:
    """A model's regions against the final regions of a regions project.

    ``summary`` has one row for the model and one per annotator (:data:`SUMMARY_COLUMNS`: seconds
    of reference, missed, false alarm and confusion, DER, event F1, WER or NaN without transcripts).
    ``slices`` (:data:`SLICE_COLUMNS`) is sorted by priority. ``errors`` is the model's
    :func:`analysis.region_errors.region_errors` frame with the slice columns merged on.
    """

    project: str
    model: str | None
    models: dict[str, str]
    tolerance: float
    n_recordings: int = 0
    left_out: int = 0  # recordings with final regions but none from the model
    summary: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SUMMARY_COLUMNS))
    per_recording: pd.DataFrame = field(default_factory=pd.DataFrame)
    slices: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SLICE_COLUMNS))
    per_class: pd.DataFrame = field(default_factory=pd.DataFrame)
    transcripts: pd.DataFrame = field(default_factory=pd.DataFrame)
    errors: pd.DataFrame = field(default_factory=pd.DataFrame)
    hlp: dict[str, float] = field(default_factory=dict)
    note: str | None = None  # why there is nothing to show


def regions_fingerprint(s: Session, project_id: int) -> tuple[object, ...]:
    """A cheap fingerprint of a project's regions: any save changes it (a set is replaced whole)."""
    row = s.execute(
        select(func.count(Region.id), func.max(Region.id)).where(Region.project_id == project_id)
    ).one()
    return tuple(row)


def model_sets(s: Session, project: str | int) -> dict[str, str]:
    """The model sets a project has (source -> name shown), in :data:`MODEL_SOURCES` order."""
    info = regions_project(s, project)
    found = set(
        s.scalars(
            select(Region.source)
            .where(Region.project_id == info.id, Region.annotator_id.is_(None))
            .distinct()
        )
    )
    return {k: v for k, v in MODEL_SOURCES.items() if k in found}


def _slice_frame(errors: pd.DataFrame, clips: pd.DataFrame, tags: list[str], meta: list[str]) -> pd.DataFrame:
    """``errors`` with 0/1 tag columns (the recording's tags, or for reference rows the region's),
    the recording's metadata and ``class``."""
    rec = clips.set_index("clip_id")
    rec_tags = tag_matrix(clips).set_axis(clips["clip_id"]).reindex(columns=tags, fill_value=0)
    ids = errors["recording_id"].to_numpy()
    out = errors.copy()
    region_tags = _nearest_reference_tags(out)
    for tag in tags:
        own = region_tags.map(lambda v, t=tag: isinstance(v, list | tuple) and t in v).to_numpy()
        out[tag] = (rec_tags[tag].reindex(ids, fill_value=0).to_numpy() > 0) | own
    for col in meta:
        out[f"meta:{col}"] = rec[col].reindex(ids).to_numpy()
    out["class"] = out["label"]
    return out


def _nearest_reference_tags(errors: pd.DataFrame) -> pd.Series:
    """Region tags per row: a reference region's own; for a hypothesis region, those of the reference
    region it overlaps most or, overlapping none, lies nearest to in its recording. So a false alarm
    between two sentences said over the engine counts in ``noise:car`` as the sentences do."""
    tags = errors["tags"] if "tags" in errors.columns else pd.Series([None] * len(errors), index=errors.index)
    out = tags.copy()
    is_ref = (errors["side"] == "reference").to_numpy()
    for _, rows in errors.groupby("recording_id", sort=False):
        ref = rows[is_ref[errors.index.get_indexer(rows.index)]]
        hyp = rows[~is_ref[errors.index.get_indexer(rows.index)]]
        if ref.empty or hyp.empty:
            continue
        rs, re_ = ref["start"].to_numpy(np.float64), ref["end"].to_numpy(np.float64)
        hs, he = hyp["start"].to_numpy(np.float64)[:, None], hyp["end"].to_numpy(np.float64)[:, None]
        # Positive: seconds of overlap; negative: minus the gap between the two regions.
        closeness = np.minimum(re_, he) - np.maximum(rs, hs)
        best = closeness.argmax(axis=1)
        out.loc[hyp.index] = tags.loc[ref.index].to_numpy()[best]
    return out


def _slices(
    frame: pd.DataFrame, tags: list[str], meta: list[str], hlp: dict[str, float] | None
) -> pd.DataFrame:
    parts = []
    present = [t for t in tags if frame[t].any()]
    if present:
        parts.append(region_slice_table(frame, tag_cols=present, hlp=hlp).assign(kind="tag"))
    if meta:
        named = None if hlp is None else {f"meta:{k}": v for k, v in hlp.items()}
        table = region_metadata_slices(frame, cols=[f"meta:{c}" for c in meta], hlp=named)
        table["tag"] = table["tag"].str.removeprefix("meta:")
        parts.append(table.assign(kind="metadata"))
    parts.append(region_metadata_slices(frame, cols=["class"], hlp=hlp).assign(kind="class"))
    table = pd.concat(parts, ignore_index=True).rename(columns={"tag": "slice"})
    table = table[table["n"] > 0]
    return (
        table.sort_values(["priority", "error_share"], ascending=False, na_position="last", kind="stable")
        .reset_index(drop=True)
        .loc[:, SLICE_COLUMNS]
    )


def _normalised(frame: pd.DataFrame, rules: NormalizationRules) -> pd.DataFrame:
    out = frame.copy()
    out["text"] = out["text"].map(lambda t: rules.normalize(t) if isinstance(t, str) else None)
    return out


def _wer(final: pd.DataFrame, hyp: pd.DataFrame) -> tuple[float, pd.DataFrame]:
    """WER of the hypothesis' region transcripts (NaN when either side has none) and the pairs."""
    if not (final["text"].notna().any() and hyp["text"].notna().any()):
        return float("nan"), pd.DataFrame()
    pairs = region_transcript_pairs(final, hyp)
    rates = error_rates(pairs["reference_text"].tolist(), pairs["hypothesis_text"].tolist(), chars=False)
    pairs = pd.concat([pairs, rates[["ref_words", "word_errors", "wer"]]], axis=1)
    words = int(pairs["ref_words"].sum())
    return (float(pairs["word_errors"].sum()) / words if words else float("nan")), pairs


def _score(
    final: pd.DataFrame, hyp: pd.DataFrame, durations: pd.Series, tolerance: float
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Errors of ``hyp`` against the final regions of the recordings ``hyp`` covers, and its totals."""
    ref = final[final["recording_id"].isin(hyp["recording_id"].unique())]
    shared = set(ref["label"]) & set(hyp["label"])
    # Speaker names of an imported diarization are arbitrary: map them when none is a final class.
    mapping: Literal["identity", "optimal"] = "identity" if shared or hyp.empty else "optimal"
    errors = region_errors(ref, hyp, durations=durations, mapping=mapping)
    is_ref = errors["side"] == "reference"
    reference_s = float(errors.loc[is_ref, "duration"].sum())
    missed = float(errors.loc[is_ref, "missed"].sum())
    confusion = float(errors.loc[is_ref, "confusion"].sum())
    false_alarm = float(errors.loc[~is_ref, "false_alarm"].sum())
    events = boundary_agreement(ref, hyp, tolerance=tolerance, same_label=mapping == "identity")
    wer, pairs = _wer(ref, hyp)
    totals = {
        "recordings": int(ref["recording_id"].nunique()),
        "reference_s": reference_s,
        "missed": missed,
        "false_alarm": false_alarm,
        "confusion": confusion,
        "der": (missed + false_alarm + confusion) / reference_s if reference_s else float("nan"),
        "f1": float(events.loc[events["kind"] == "region", "f1"].iloc[0]),
        "wer": wer,
        "pairs": pairs,
    }
    return errors, totals


def region_error_report(
    s: Session,
    project: str | int | ProjectInfo,
    *,
    model: str | None = None,
    tolerance: float = 0.2,
) -> RegionErrorReport:
    """Score a model's regions against the final regions, overall, per recording, per class and slice.

    Parameters
    ----------
    model
        ``"proposal"`` (the energy VAD) or ``"import"`` (regions imported without an annotator);
        None takes the first the project has.
    tolerance
        Seconds either side of an onset and an offset for event F1.

    Returns
    -------
    RegionErrorReport
        With ``note`` saying why it is empty when there are no final regions or no model regions.
    """
    info = regions_project(s, project.id if isinstance(project, ProjectInfo) else project)
    models = model_sets(s, info.id)
    if model is not None and model not in MODEL_SOURCES:
        raise ValueError(f"model must be one of {', '.join(MODEL_SOURCES)}, not {model!r}")
    model = model or next(iter(models), None)
    report = RegionErrorReport(info.name, model, models, tolerance)
    regions = list_regions(s, info.id)
    final = regions[(regions["source"] == "final") & regions["annotator_id"].isna()]
    if final.empty:
        return _with(
            report, note="No final regions yet: review the annotators' regions or import final ones."
        )
    if model is None or model not in models:
        return _with(
            report,
            note="No model regions yet: run `earmark regions propose` for the built-in VAD, or import "
            "predictions with `earmark regions import-rttm` without --annotator.",
        )
    rules = NormalizationRules.from_dict(info.normalization)
    final = _normalised(final[final["recording_id"].notna()], rules)
    hyp = _normalised(regions[(regions["source"] == model) & regions["annotator_id"].isna()], rules)
    hyp = hyp[hyp["recording_id"].isin(final["recording_id"].unique())]
    left_out = int(final["recording_id"].nunique() - hyp["recording_id"].nunique())
    clips = clip_frame(s, info.id)
    durations = clips.set_index("clip_id")["duration_s"].astype(float)
    tags = sorted(
        set(tag_matrix(clips[clips["clip_id"].isin(final["recording_id"])]).columns)
        | {t for v in final["tags"] for t in (v or [])}
    )
    scored = clips[clips["clip_id"].isin(hyp["recording_id"])]
    meta = [c for c in metadata_columns(clips) if 2 <= scored[c].nunique() <= _MAX_METADATA_VALUES]

    errors, totals = _score(final, hyp, durations, tolerance)
    rows = [{"system": MODEL_SOURCES[model], "kind": "model", **totals}]
    human = []
    people = regions[regions["source"].isin(ANNOTATOR_SOURCES) & regions["annotator_id"].notna()]
    for name, theirs in people.groupby("annotator", sort=True):
        theirs = _normalised(theirs[theirs["recording_id"].isin(final["recording_id"])], rules)
        if theirs.empty:
            continue
        their_errors, their_totals = _score(final, theirs, durations, tolerance)
        rows.append({"system": str(name), "kind": "annotator", **their_totals})
        human.append(their_errors)
    frame = _slice_frame(errors, clips, tags, meta)
    hlp: dict[str, float] = {}
    if human:
        pooled = _slice_frame(pd.concat(human, ignore_index=True), clips, tags, meta)
        rates = _slices(pooled, tags, meta, None)
        hlp = {str(k): float(v) for k, v in zip(rates["slice"], rates["error_rate"], strict=True) if v == v}
    per_recording = _per_recording(errors, clips)
    summary = pd.DataFrame(rows).drop(columns=["pairs"]).loc[:, SUMMARY_COLUMNS]
    return _with(
        report,
        n_recordings=totals["recordings"],
        left_out=left_out,
        summary=summary,
        per_recording=per_recording,
        slices=_slices(frame, tags, meta, hlp),
        per_class=per_class_region_table(errors).reset_index(names="class"),
        transcripts=totals["pairs"],
        errors=frame,
        hlp=hlp,
    )


def _per_recording(errors: pd.DataFrame, clips: pd.DataFrame) -> pd.DataFrame:
    is_ref = errors["side"] == "reference"
    ref = errors[is_ref].groupby("recording_id")[["duration", "missed", "confusion"]].sum()
    fa = errors[~is_ref].groupby("recording_id")["false_alarm"].sum()
    table = ref.join(fa, how="outer").fillna(0.0).rename(columns={"duration": "reference_s"})
    error = table["missed"] + table["confusion"] + table["false_alarm"]
    table["der"] = error / table["reference_s"].where(table["reference_s"] > 0)
    names = clips.set_index("clip_id")["original_name"]
    table.insert(0, "recording", names.reindex(table.index).to_numpy())
    return table.reset_index()[
        ["recording_id", "recording", "reference_s", "missed", "false_alarm", "confusion", "der"]
    ]


def _with(report: RegionErrorReport, **changes: Any) -> RegionErrorReport:
    return replace(report, **changes)


#: Columns of :func:`slice_error_spans`.
ERROR_SPAN_COLUMNS = ["recording_id", "recording", "kind", "start", "end", "duration", "final", "model"]


def slice_mask(report: RegionErrorReport, name: str) -> np.ndarray:
    """Which rows of ``report.errors`` are in the slice ``name`` (a row of ``report.slices``)."""
    errors = report.errors
    found = report.slices.loc[report.slices["slice"] == name, "kind"]
    if found.empty:
        raise ValueError(f"no slice {name!r} in this report")
    kind = found.iloc[0]
    if kind == "tag":
        return errors[name].fillna(False).astype(bool).to_numpy()
    col, _, value = name.partition("=")
    column = errors["class"] if kind == "class" else errors[f"meta:{col}"]
    return column.map(lambda v: v == v and v is not None and f"{v}" == value).to_numpy(dtype=bool)


def slice_error_spans(report: RegionErrorReport, name: str | None = None) -> pd.DataFrame:
    """The model's errors as stretches of time (:data:`ERROR_SPAN_COLUMNS`), longest first: every
    one, or those charged to a region of the slice ``name`` (missed and confused time to the final
    region, false alarms to the model's). ``final`` and ``model`` are the classes each side has there."""
    errors = report.errors
    if errors.empty:
        return pd.DataFrame(columns=ERROR_SPAN_COLUMNS)
    spans = error_spans(errors)
    if name is not None:
        inside = pd.Series(slice_mask(report, name), index=errors.index)
        spans = spans[inside.reindex(spans["row"]).to_numpy()]
    names = (
        errors.drop_duplicates("recording_id").set_index("recording_id")["recording"]
        if "recording" in errors.columns
        else report.per_recording.set_index("recording_id")["recording"]
    )
    spans = spans.assign(recording=names.reindex(spans["recording_id"]).to_numpy())
    spans = spans.rename(columns={"reference": "final", "hypothesis": "model"})
    return (
        spans.sort_values(["duration", "recording_id", "start"], ascending=[False, True, True], kind="stable")
        .reset_index(drop=True)
        .loc[:, ERROR_SPAN_COLUMNS]
    )


def error_audio(
    s: Session, store: AudioStorage, project: str | int, recording_id: int, start: float, end: float
) -> bytes:
    """``[start, end)`` seconds of a recording as WAV bytes, read from the stored file by seeking to
    the span (the rest of the recording is never read), its samples as stored.

    Raises
    ------
    FileNotFoundError
        The recording's audio is missing from the store.
    """
    info = regions_project(s, project)
    rec = recording(s, info, int(recording_id))
    path = store.path(rec.storage_key)
    if not path.is_file():
        raise FileNotFoundError(f"the audio of {rec.name!r} is missing from the audio store")
    y, sr, subtype = cut_span(path, max(0.0, float(start)), float(end))
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV", subtype=subtype)
    return buf.getvalue()
