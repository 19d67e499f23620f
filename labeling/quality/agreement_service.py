"""How consistently a project's annotators label: call :func:`project_agreement`.

:func:`project_agreement` gathers everything the Agreement page and ``earmark agreement --project``
show, computed by :mod:`analysis.agreement` and :mod:`analysis.text` on the project's annotations
(:func:`labeling.annotate.annotations.annotations_frame`). :func:`disagreements` ranks the clips a reviewer
should look at first, and :func:`project_hlp` is human-level performance per tag, the reference the
model's per-slice accuracy is compared with in error analysis.

Everything returned is plain data (dicts, DataFrames); :func:`agreement_json` turns a
:func:`project_agreement` result into JSON-ready values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from analysis.agreement import (
    Level,
    agreement_by,
    agreement_report,
    annotator_table,
    cohen_kappa_matrix,
    human_level_performance,
    rater_confusion,
)
from analysis.text import NormalizationRules, error_rate_summary, pairwise_error_rates
from db.models import Annotation, Clip, ClipTag, ConventionVersion, GoldExample, Resolution, User
from labeling.data.clip_metadata import deleted_clip_ids, metadata_counts, metadata_keys, metadata_values
from labeling.data.projects import ProjectInfo, get_project
from labeling.platform.columnar import read_frame
from labeling.quality.report_store import stored_or_computed

if TYPE_CHECKING:
    from db.engine import Database

#: Resolution methods reached by people or a project rule; other clips still wait for a reviewer.
SETTLED_METHODS = ("adjudicated", "unanimous", "majority")
# Metadata keys become agreement slices when they take this many distinct values at most (a
# speaker id with hundreds of values is not a slice anyone reads as a bar chart).
_MAX_SLICE_VALUES = 12

SLICE_COLUMNS = (
    "slice",
    "value",
    "n_items",
    "n_pairable",
    "n_ratings",
    "krippendorff_alpha",
    "percent_agreement",
)
DISAGREEMENT_COLUMNS = (
    "clip_id",
    "original_name",
    "storage_key",
    "n",
    "n_labels",
    "top_label",
    "agreement",
    "pair",
    "pair_share",
    "n_unsure",
    "score",
    "why",
    "votes",
    "ratings",
    "tags",
    "resolution_label",
    "resolution_method",
)


def _project(s: Session, project: ProjectInfo | int | str) -> ProjectInfo:
    return project if isinstance(project, ProjectInfo) else get_project(s, project)


def _once(s: Session, key: tuple[Any, ...], read: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """``read()`` once per session: a page that shows the report and the disagreements reads the
    project's ratings once. The frame is shared: callers derive new frames, never change it."""
    cache = s.info.setdefault("agreement_service", {})
    if key not in cache:
        cache[key] = read()
    return cache[key]


def _ratings(s: Session, info: ProjectInfo, *, transcripts: bool = False) -> pd.DataFrame:
    return _once(
        s, ("ratings", info.id, transcripts), lambda: _read_ratings(s, info, transcripts=transcripts)
    )


def _read_ratings(s: Session, info: ProjectInfo, *, transcripts: bool = False) -> pd.DataFrame:
    """The annotations of the project's live clips, as whole columns: ``clip_id, annotator_id,
    annotator, label, unsure, time_spent_ms, convention_version, week`` (and ``transcript``), sorted by
    clip and annotator id. The columns :func:`labeling.annotate.annotations.annotations_frame` would give
    these reports, read without per-row decoding (``week`` is the Monday of the UTC day, computed per day)."""
    if s.get_bind().dialect.name == "postgresql":
        day = func.to_char(func.timezone("UTC", Annotation.created_at), "YYYY-MM-DD")
    else:  # SQLite keeps UTC timestamps as ISO text
        day = func.substr(Annotation.created_at, 1, 10)
    columns = {
        "clip_id": (Annotation.clip_id, "int64"),
        "annotator_id": (Annotation.annotator_id, "int64"),
        "label": (Annotation.label, "object"),
        "unsure": (Annotation.unsure, "bool"),
        "time_spent_ms": (Annotation.time_spent_ms, "Int64"),
        "convention_version": (Annotation.convention_version, "Int64"),
        "day": (day, "object"),
    }
    if transcripts:
        columns["transcript"] = (Annotation.transcript, "object")
    frame = read_frame(
        s,
        select(*(c for c, _ in columns.values())).where(Annotation.project_id == info.id),
        {name: dtype for name, (_, dtype) in columns.items()},
    )
    deleted = deleted_clip_ids(s, info.id)
    if len(deleted):
        frame = frame[~frame["clip_id"].isin(deleted)]
    clip, who = frame["clip_id"].to_numpy(), frame["annotator_id"].to_numpy()
    key = clip * (int(who.max(initial=0)) + 1) + who
    if len(key) and not (key[1:] > key[:-1]).all():
        frame = frame.iloc[np.argsort(key, kind="stable")]
    frame = frame.reset_index(drop=True)
    names = dict(s.execute(select(User.id, User.name)).all())
    ids, uniques = pd.factorize(frame["annotator_id"])
    frame["annotator"] = (
        np.array([names.get(int(u)) for u in uniques], dtype=object)[ids] if len(ids) else None
    )
    # Labels as a Categorical of the labels used, in sorted order: the metrics code values that way
    # anyway, and every report and slice then reuses the codes instead of hashing strings again.
    codes, labels = pd.factorize(frame["label"], sort=True)
    frame["label"] = pd.Categorical.from_codes(codes, categories=pd.Index(labels, dtype="str"))
    days, unique_days = pd.factorize(frame.pop("day"))
    frame["week"] = _week(pd.Series(unique_days)).to_numpy(dtype=object)[days] if len(days) else None
    return frame


def _tags_long(s: Session, project_id: int) -> pd.DataFrame:
    """``clip_id, tag``: every tag of the project's live clips."""
    q = (
        select(ClipTag.clip_id, ClipTag.tag)
        .join(Clip, Clip.id == ClipTag.clip_id)
        .where(Clip.project_id == project_id, Clip.deleted_at.is_(None))
    )
    return _once(s, ("tags", project_id), lambda: read_frame(s, q, {"clip_id": "int64", "tag": "object"}))


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two labellings of the same clips split them the same way (a one-to-one map between
    their values; clips missing either value are left out)."""
    ca, _ = pd.factorize(a)
    cb, _ = pd.factorize(b)
    both = (ca >= 0) & (cb >= 0)
    pairs = np.unique(ca[both].astype(np.int64) * (int(cb.max(initial=0)) + 1) + cb[both])
    if not len(pairs):
        return False
    return len(pairs) == len(np.unique(ca[both])) == len(np.unique(cb[both]))


def _meta_slices(s: Session, project_id: int, tags: pd.DataFrame) -> pd.DataFrame:
    """Metadata keys with a handful of values, one column each, indexed by clip id (every live clip
    that has a value for one of them).

    A key that splits the clips exactly as a tag group does (``noise=car`` beside ``noise:car``,
    a voice per accent) is left out: it would repeat that group's rows under another name.
    """
    counts = metadata_counts(s, project_id)
    n_values = counts.groupby("key")["value"].nunique()
    keys = [k for k in metadata_keys(s, project_id) if 2 <= n_values.get(k, 0) <= _MAX_SLICE_VALUES]
    if not keys:
        return pd.DataFrame(index=pd.Index([], dtype="int64", name="clip_id"))
    long = metadata_values(s, project_id, keys)
    per_key = {key: part.set_index("clip_id")["value"] for key, part in long.groupby("key", sort=False)}
    wide = pd.DataFrame(per_key)
    codes, uniques = pd.factorize(tags["tag"])
    group_of = np.array([str(t).split(":", 1)[0] for t in uniques], dtype=object)
    groups = tags.assign(group=group_of[codes] if len(codes) else [])
    # A clip with two tags of one group is represented by the last in sorted order.
    groups = groups.sort_values(["clip_id", "tag"]).drop_duplicates(["clip_id", "group"], keep="last")
    columns: dict[str, pd.Series] = {}
    everyone = wide.index.union(pd.Index(groups["clip_id"].unique()))
    tag_columns = [
        part.set_index("clip_id")["tag"].reindex(everyone).to_numpy(dtype=object)
        for _, part in groups.groupby("group", sort=False)
    ]
    for key in keys:
        # Object dtype, not "string": a string column's map() keeps the string dtype, which
        # human_level_performance cannot reduce when it checks for list-valued slices.
        values = wide[key].astype(object).where(wide[key].notna(), None)
        aligned = values.reindex(everyone).to_numpy(dtype=object)
        if any(_same_partition(aligned, tagged) for tagged in tag_columns):
            continue
        if any(
            _same_partition(aligned, earlier.reindex(everyone).to_numpy(dtype=object))
            for earlier in columns.values()
        ):
            continue
        columns[key] = values
    return pd.DataFrame(columns, index=wide.index).rename_axis(None)


def _resolutions(s: Session, project_id: int) -> pd.DataFrame:
    q = select(Resolution.clip_id, Resolution.label, Resolution.method).where(
        Resolution.project_id == project_id
    )
    return _once(
        s,
        ("resolutions", project_id),
        lambda: read_frame(s, q, {"clip_id": "int64", "label": "object", "method": "object"}),
    )


def gold_labels(s: Session, project_id: int) -> pd.Series:
    """The gold label of each clip that is a gold example (the newest conventions version wins)."""
    rows = s.connection().execute(
        select(GoldExample.clip_id, GoldExample.label)
        .join(ConventionVersion, ConventionVersion.id == GoldExample.convention_version_id)
        .where(ConventionVersion.project_id == project_id, GoldExample.label.is_not(None))
        .order_by(ConventionVersion.version)
    )
    gold = {clip_id: label for clip_id, label in rows}
    return pd.Series(gold, name="gold", dtype="object").rename_axis("clip_id")


def _week(stamps: pd.Series) -> pd.Series:
    """Monday of each timestamp's UTC week, as ``YYYY-MM-DD`` (sorts in time order)."""
    utc = pd.to_datetime(stamps, utc=True).dt.tz_convert(None)
    return (utc.dt.normalize() - pd.to_timedelta(utc.dt.day_of_week, unit="D")).dt.strftime("%Y-%m-%d")


def _labelled(ann: pd.DataFrame) -> pd.DataFrame:
    return ann[ann["label"].notna()].reset_index(drop=True)


def _slice_agreement(
    ratings: pd.DataFrame, tags: pd.DataFrame, slices: pd.DataFrame, level: Level
) -> pd.DataFrame:
    """Alpha and percent agreement per tag and per metadata value."""
    parts = []
    rated = ratings[["clip_id", "annotator", "label"]]
    tagged = rated.merge(tags.rename(columns={"tag": "value"}), on="clip_id")
    if not tagged.empty:
        parts.append(agreement_by(tagged, by="value", level=level).assign(slice="tag"))
    for key in slices.columns:
        part = rated.assign(value=rated["clip_id"].map(slices[key]))
        part = part[part["value"].notna()]
        if not part.empty:
            parts.append(agreement_by(part, by="value", level=level).assign(slice=key))
    if not parts:
        return pd.DataFrame(columns=list(SLICE_COLUMNS))
    out = pd.concat(parts, ignore_index=True)
    out["value"] = out["value"].astype(str)
    return out[list(SLICE_COLUMNS)]


def _hlp(ratings: pd.DataFrame, tags: pd.DataFrame, slices: pd.DataFrame, res: pd.DataFrame) -> pd.DataFrame:
    """:func:`~analysis.agreement.human_level_performance` per tag and metadata slice.

    Tags are a clip's list; rather than a list column exploded after the merge, each rating is
    repeated once per tag of its clip, which groups to the same rows."""
    resolved = res.loc[res["label"].notna(), ["clip_id", "label"]]
    rated = ratings[["clip_id", "annotator", "label"]]
    # ``slices`` is indexed by clip id.
    by_meta = human_level_performance(
        rated,
        resolved.merge(slices, left_on="clip_id", right_index=True, how="left"),
        slice_cols=list(slices.columns),
    )
    by_tag = human_level_performance(rated.merge(tags, on="clip_id"), resolved, slice_cols=["tag"])
    return pd.concat(
        [
            by_meta[by_meta["slice"] == "all"],
            by_tag[by_tag["slice"] == "tag"],
            by_meta[by_meta["slice"] != "all"],
        ],
        ignore_index=True,
    )


def _with_clip_slices(s: Session, project: ProjectInfo) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ann = _ratings(s, project, transcripts=project.transcribes)
    tags = _tags_long(s, project.id)
    return ann, tags, _meta_slices(s, project.id, tags)


def project_agreement(
    s: Session,
    project: ProjectInfo | int | str,
    *,
    level: Level = "nominal",
    n_boot: int = 500,
    random_state: int = 0,
) -> dict[str, Any]:
    """The agreement report of a project's class labels, with everything the Agreement page shows.

    Annotations without a class (transcription only, or "cannot label") are left out of the label
    statistics. Every statistic is computed by :mod:`analysis.agreement` on the long frame
    ``clip_id, annotator, label``.

    Returns
    -------
    dict
        The keys of :meth:`analysis.agreement.AgreementReport.to_dict` (``krippendorff_alpha``,
        ``krippendorff_alpha_ci``, ``fleiss_kappa``, ``percent_agreement``, ``cohen_kappa_pairs``,
        ``per_class``, ``n_items``, ``n_raters``…) as JSON values, then ``project``, and these
        DataFrames:

        - ``kappa_matrix``: Cohen's kappa, annotators x annotators;
        - ``annotators``: :func:`~analysis.agreement.annotator_table` with gold labels from the
          conventions' gold examples, plus ``unsure_rate`` and ``median_seconds``;
        - ``confusion``: :func:`~analysis.agreement.rater_confusion` (class x class, rating pairs);
        - ``by_version`` and ``by_week``: :func:`~analysis.agreement.agreement_by` per conventions
          version and per UTC week (``week`` is the Monday);
        - ``by_slice``: alpha per tag and per low-cardinality metadata value (:data:`SLICE_COLUMNS`);
        - ``hlp``: :func:`~analysis.agreement.human_level_performance` against the resolved labels,
          per tag and metadata slice;

        and ``transcripts``: None unless the project transcribes, else ``{"overall": {...},
        "per_clip": DataFrame, "pairs": DataFrame}`` of WER/CER between annotators after the project's
        normalisation rules.
    """
    info = _project(s, project)
    ann, tags, slices = _with_clip_slices(s, info)
    ratings = _labelled(ann)
    report = agreement_report(ratings, level=level, n_boot=n_boot, random_state=random_state).to_dict()
    gold = gold_labels(s, info.id)
    annotators = annotator_table(ratings, gold=gold if len(gold) else None)
    if not ann.empty:
        habits = ann.groupby("annotator").agg(
            unsure_rate=("unsure", "mean"),
            median_seconds=(
                "time_spent_ms",
                lambda t: t.dropna().median() / 1000 if t.notna().any() else math.nan,
            ),
        )
        annotators = annotators.merge(habits, left_on="annotator", right_index=True, how="left")
    by_version = agreement_by(
        ratings.rename(columns={"convention_version": "version"}), by="version", level=level
    )
    by_week = agreement_by(ratings, by="week", level=level)
    res = _resolutions(s, info.id)
    transcripts = None
    if info.transcribes:
        rules = NormalizationRules.from_dict(info.normalization)
        pairs = pairwise_error_rates(ann, rules=rules)
        summary = error_rate_summary(pairs)
        transcripts = {"overall": summary.overall, "per_clip": summary.per_clip, "pairs": pairs}
    return {
        **report,
        "project": info.name,
        "kappa_matrix": cohen_kappa_matrix(ratings),
        "annotators": annotators,
        "confusion": rater_confusion(ratings),
        "by_version": by_version,
        "by_week": by_week,
        "by_slice": _slice_agreement(ratings, tags, slices, level),
        "hlp": _hlp(ratings, tags, slices, res),
        "transcripts": transcripts,
    }


def project_hlp(s: Session, project: ProjectInfo | int | str) -> Mapping[str, float]:
    """Human-level performance per clip tag: the share of annotations equal to the resolved label.

    Keys are tags (``"noise:car"``) and ``"all"`` for every resolved clip; a tag whose clips have no
    resolved label is absent. Majority resolutions include each annotator's own vote, which makes HLP
    optimistic; adjudicated or imported labels do not.
    """
    info = _project(s, project)
    ratings = _labelled(_ratings(s, info))
    no_slices = pd.DataFrame(index=pd.Index([], dtype="int64"))
    table = _hlp(ratings, _tags_long(s, info.id), no_slices, _resolutions(s, info.id))
    keep = table[table["slice"].isin(["all", "tag"]) & table["hlp"].notna()]
    return {str(v): float(h) for v, h in zip(keep["value"], keep["hlp"], strict=True)}


def disagreements(
    s: Session,
    project: ProjectInfo | int | str,
    *,
    limit: int | None = 50,
    open_only: bool = True,
    min_annotations: int | None = None,
) -> pd.DataFrame:
    """Clips whose annotators disagree (or hesitated), most instructive first.

    A clip ranks high when its annotators split evenly, when many of them rated it, when the classes
    they split on are a pair annotators confuse often across the project (settling it teaches a rule
    that applies to many clips), and when annotators marked it unsure. The score is::

        (1 - agreement) * (0.5 + 0.5 * n / max n) * (1 + pair_share) + 0.25 * unsure share

    where ``agreement`` is the top label's share of the votes and ``pair_share`` the clip's top two
    classes' share of all cross-class rating pairs in the project, scaled so the most confused pair
    is 1.

    Parameters
    ----------
    limit : int or None
        Rows to return (None: all).
    open_only : bool
        Leave out clips a reviewer adjudicated or a project rule resolved (:data:`SETTLED_METHODS`).
    min_annotations : int, optional
        Only clips with at least this many class labels (default: the project's k, at least 2), so a
        split that a later annotator may settle does not reach a reviewer too early.

    Returns
    -------
    DataFrame
        :data:`DISAGREEMENT_COLUMNS`, and ``attrs["n_total"]``, the number of clips before ``limit``.
        ``votes`` is ``{label: count}`` (in a transcription-only
        project, ``{normalised transcript: count}``), ``ratings`` a list of
        ``{annotator, label, transcript, unsure}`` (names: show them to reviewers only), ``why``
        a sentence saying why the clip ranks where it does.
    """
    info = _project(s, project)
    ann = _ratings(s, info, transcripts=not info.classifies)
    need = max(2, min_annotations if min_annotations is not None else info.annotations_per_clip)
    if not info.classifies:
        # Transcripts disagree when they still differ after the project's normalisation rules.
        rules = NormalizationRules.from_dict(info.normalization)
        ann = ann.assign(
            label=ann["transcript"].map(lambda t: rules.normalize(t) if isinstance(t, str) else None)
        )
    ratings = _labelled(ann)
    empty = pd.DataFrame(columns=list(DISAGREEMENT_COLUMNS))
    if ratings.empty:
        return empty
    confusion = rater_confusion(ratings)
    off_diagonal = confusion.to_numpy(copy=True)
    np.fill_diagonal(off_diagonal, 0.0)
    top_pair = off_diagonal.max(initial=0.0)
    n = ratings.groupby("clip_id").size()
    max_n = int(n.max())
    unsure = ann.groupby("clip_id")["unsure"].sum().reindex(n.index, fill_value=0)
    res = _resolutions(s, info.id).set_index("clip_id")
    # Pick the candidates with whole-column operations first: most clips are unanimous and settled,
    # and the per-clip work below is for the few a reviewer will see.
    divided = ratings.drop_duplicates(["clip_id", "label"]).groupby("clip_id").size() > 1
    wanted = (n >= need) & (divided | (unsure > 0))
    if open_only:
        wanted &= ~n.index.isin(res.index[res["method"].isin(SETTLED_METHODS)])
    candidates = n.index[wanted]
    if candidates.empty:
        return empty
    counts = (
        ratings[ratings["clip_id"].isin(candidates)]
        .groupby(["clip_id", "label"], observed=True)
        .size()
        .rename("count")
        .reset_index()
        .sort_values(["clip_id", "count", "label"], ascending=[True, False, True], ignore_index=True)
    )
    rank = counts.groupby("clip_id").cumcount()
    first = counts[rank == 0].set_index("clip_id")
    second = counts[rank == 1].set_index("clip_id").reindex(first.index)
    table = pd.DataFrame(
        {
            "n": n[first.index],
            "n_labels": counts.groupby("clip_id").size(),
            "agreement": first["count"] / n[first.index],
            "n_unsure": unsure[first.index].astype(int),
        }
    )
    has_pair = second["label"].notna()
    a = first["label"].where(has_pair).astype(object)
    b = second["label"].astype(object)
    low = np.where(has_pair, np.minimum(a.fillna("").astype(str), b.fillna("").astype(str)), None)
    high = np.where(has_pair, np.maximum(a.fillna("").astype(str), b.fillna("").astype(str)), None)
    table["pair"] = pd.Series(
        [f"{x}/{y}" if x is not None else None for x, y in zip(low, high, strict=True)],
        index=first.index,
        dtype=object,
    )
    share = np.zeros(len(first))
    if top_pair > 0 and has_pair.any():
        where = confusion.index
        rows_ix = where.get_indexer(pd.Index(first["label"][has_pair]))
        cols_ix = where.get_indexer(pd.Index(second["label"][has_pair]))
        share[has_pair.to_numpy()] = confusion.to_numpy()[rows_ix, cols_ix] / top_pair
    table["pair_share"] = share
    table["top_label"] = first["label"].where(~(second["count"] == first["count"]), None).astype(object)
    table["score"] = (1 - table["agreement"]) * (0.5 + 0.5 * table["n"] / max_n) * (
        1 + table["pair_share"]
    ) + 0.25 * table["n_unsure"] / table["n"]
    table = table.reset_index().sort_values(["score", "clip_id"], ascending=[False, True], ignore_index=True)
    if limit is not None:
        table = table.head(limit)
    # Details (votes, who said what, names, tags) only for the rows returned.
    shown = table["clip_id"]
    details = _clip_details(s, info, [int(c) for c in shown])
    votes = {
        cid: dict(zip(g["label"], g["count"].astype(int), strict=True))
        for cid, g in counts[counts["clip_id"].isin(shown)].groupby("clip_id", sort=False)
    }
    table["why"] = [
        _why(votes[c], pair, share, n_unsure)
        for c, pair, share, n_unsure in zip(
            shown, table["pair"], table["pair_share"], table["n_unsure"], strict=True
        )
    ]
    table["votes"] = [votes[c] for c in shown]
    table["ratings"] = [details["ratings"].get(c, []) for c in shown]
    table["original_name"] = [details["original_name"].get(c) for c in shown]
    table["storage_key"] = [details["storage_key"].get(c) for c in shown]
    table["tags"] = [details["tags"].get(c, []) for c in shown]
    table["resolution_label"] = [res["label"].get(c) for c in shown]
    table["resolution_method"] = [res["method"].get(c) for c in shown]
    table["clip_id"] = table["clip_id"].astype(int)
    out = table[list(DISAGREEMENT_COLUMNS)]
    out.attrs["n_total"] = len(candidates)
    return out


def _clip_details(s: Session, info: ProjectInfo, clip_ids: list[int]) -> dict[str, dict[int, Any]]:
    """Name, storage key, tags and who said what, for a page of clips (``original_name``,
    ``storage_key``, ``tags``, ``ratings`` keyed by clip id; ratings in annotator-id order)."""
    out: dict[str, dict[int, Any]] = {"original_name": {}, "storage_key": {}, "tags": {}, "ratings": {}}
    for start in range(0, len(clip_ids), 500):
        chunk = clip_ids[start : start + 500]
        for cid, name, key in s.execute(
            select(Clip.id, Clip.original_name, Clip.storage_key).where(Clip.id.in_(chunk))
        ):
            out["original_name"][cid], out["storage_key"][cid] = name, key
        for cid, tag in s.execute(
            select(ClipTag.clip_id, ClipTag.tag)
            .where(ClipTag.clip_id.in_(chunk))
            .order_by(ClipTag.clip_id, ClipTag.tag)
        ):
            out["tags"].setdefault(cid, []).append(tag)
        said = s.execute(
            select(Annotation.clip_id, User.name, Annotation.label, Annotation.transcript, Annotation.unsure)
            .join(User, User.id == Annotation.annotator_id)
            .where(Annotation.clip_id.in_(chunk))
            .order_by(Annotation.clip_id, Annotation.annotator_id)
        )
        for cid, name, label, transcript, unsure in said:
            out["ratings"].setdefault(cid, []).append(
                {
                    "annotator": name,
                    "label": label if info.classifies else None,
                    "transcript": transcript,
                    "unsure": bool(unsure),
                }
            )
    return out


def _why(votes: Mapping[str, int], pair: str | None, share: float, n_unsure: int) -> str:
    """Why a clip ranks where it is, e.g. ``2-1 split, on off/on, the most confused pair, 1 unsure``."""
    parts = [f"{'-'.join(str(v) for v in votes.values())} split" if pair else "all agree"]
    if pair:
        parts.append(f"on {pair}" + (", the most confused pair" if share == 1.0 else ""))
    if n_unsure:
        parts.append(f"{n_unsure} unsure")
    return ", ".join(parts)


def _frame_records(frame: pd.DataFrame, *, index: bool = False) -> list[dict[str, Any]]:
    if index:
        frame = frame.reset_index()
    return [{str(k): _json(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _json(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _json(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json(v) for v in x]
    if x is None or x is pd.NA:
        return None
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, pd.Timestamp):
        return x.isoformat()
    return x


def agreement_json(result: Mapping[str, Any]) -> dict[str, Any]:
    """A :func:`project_agreement` result as JSON values: each DataFrame becomes a list of row dicts
    (``kappa_matrix`` and ``confusion`` keep their row names in ``annotator`` / ``label``)."""
    out: dict[str, Any] = {}
    for key, value in result.items():
        if key in ("kappa_matrix", "confusion"):
            out[key] = _frame_records(value, index=True)
        elif isinstance(value, pd.DataFrame):
            out[key] = _frame_records(value)
        elif key == "transcripts" and value is not None:
            out[key] = {
                "overall": _json(value["overall"]),
                "per_clip": _frame_records(value["per_clip"]),
            }
        else:
            out[key] = _json(value)
    return out


# --- the stored report -------------------------------------------------------------------------------

#: ``stored_reports`` kind of what the Agreement page shows (the report and the split clips).
AGREEMENT_VIEW = "agreement_view"
#: Split clips the Agreement page plays.
VIEW_EXAMPLES = 12


def view_params(n_boot: int = 500) -> dict[str, int]:
    """The stored Agreement view's parameters (part of its key in ``stored_reports``)."""
    return {"n_boot": n_boot, "examples": VIEW_EXAMPLES}


@dataclass(frozen=True)
class AgreementView:
    """The Agreement page's data: the report, the most instructive split clips, and how current they are.

    ``fresh`` is False when labels changed after the stored report was computed (it is then shown as
    it was, with ``computed_at``, while a worker computes the new one).
    """

    report: dict[str, Any]
    split: pd.DataFrame
    fresh: bool
    computed_at: datetime
    seconds: float


def agreement_view(
    db: Database,
    project_id: int,
    *,
    n_boot: int = 500,
    allow_stale: bool = False,
    recompute: bool = False,
) -> AgreementView:
    """What the Agreement page shows, from ``stored_reports`` while the labels are unchanged.

    A large project's report takes seconds (every rating is read), so it is computed once per data
    change and shared by every process and app server; ``allow_stale`` and ``recompute`` as in
    :func:`~labeling.quality.report_store.stored_or_computed`.
    """

    def compute(s: Session) -> tuple[dict[str, Any], pd.DataFrame]:
        report = project_agreement(s, project_id, n_boot=n_boot)
        return report, disagreements(s, project_id, limit=VIEW_EXAMPLES, open_only=False)

    params = view_params(n_boot)
    r = stored_or_computed(
        db, project_id, AGREEMENT_VIEW, params, compute, allow_stale=allow_stale, recompute=recompute
    )
    report, split = r.value
    return AgreementView(report, split, r.fresh, r.computed_at, r.seconds)


def stored_agreement(
    db: Database,
    project: int | str,
    *,
    level: Level = "nominal",
    n_boot: int = 500,
    random_state: int = 0,
) -> dict[str, Any]:
    """:func:`project_agreement`, from ``stored_reports`` while the labels are unchanged, so that
    ``earmark agreement --project`` asked twice, or from a cron job, reads every rating only once."""
    with db.read() as s:
        project_id = _project(s, project).id
    params = {"level": level, "n_boot": n_boot, "seed": random_state}
    return stored_or_computed(
        db,
        project_id,
        "agreement",
        params,
        lambda s: project_agreement(s, project_id, level=level, n_boot=n_boot, random_state=random_state),
    ).value


#: ``stored_reports`` kind of the Review page's ranked queue of open disagreements.
REVIEW_QUEUE = "review_queue"
#: How many ranked disagreements the Review page lists (and the stored ranking keeps).
REVIEW_SHOWN = 200


@dataclass(frozen=True)
class ReviewQueue:
    """The Review page's ranked disagreements; ``fresh`` False when labels changed after the ranking
    was computed (clips settled since are already left out; new splits join when it is recomputed)."""

    queue: pd.DataFrame
    fresh: bool
    computed_at: datetime
    seconds: float


def review_queue(
    db: Database,
    project_id: int,
    *,
    limit: int = REVIEW_SHOWN,
    allow_stale: bool = False,
    recompute: bool = False,
) -> ReviewQueue:
    """:func:`disagreements` (open ones, the first ``limit``), from ``stored_reports`` per data change.

    Ranking reads every rating, seconds at a million clips; a reviewer settling one clip must not pay
    that. With ``allow_stale`` (and a ranking that took :data:`~labeling.quality.report_store.INLINE_S` or
    more) the stored ranking is returned without the clips settled since it was computed (one indexed
    look-up of the listed clips), so the next clip shows at once while a worker re-ranks.
    """
    r = stored_or_computed(
        db,
        project_id,
        REVIEW_QUEUE,
        {"limit": limit},
        lambda s: disagreements(s, project_id, limit=limit),
        allow_stale=allow_stale,
        recompute=recompute,
    )
    if r.fresh:
        return ReviewQueue(r.value, True, r.computed_at, r.seconds)
    queue = r.value
    with db.read() as s:
        settled = set(
            s.scalars(
                select(Resolution.clip_id).where(
                    Resolution.project_id == project_id,
                    Resolution.clip_id.in_([int(c) for c in queue["clip_id"]]),
                    Resolution.method.in_(SETTLED_METHODS),
                )
            )
        )
    left = queue[~queue["clip_id"].isin(settled)].reset_index(drop=True)
    left.attrs = {**queue.attrs, "n_total": max(0, queue.attrs.get("n_total", len(queue)) - len(settled))}
    return ReviewQueue(left, False, r.computed_at, r.seconds)
