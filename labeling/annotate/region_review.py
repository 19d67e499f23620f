"""Adjudicating a recording of a regions project: :func:`recording_review`, then :func:`adjudicate_regions`.

The review of a recording holds every annotator's regions, the final set if there is one, and the
spans where someone drew something, cut again where every annotator marks the same classes, with
whether the annotators agree there (:func:`analysis.region_review.disagreement_spans`). The reviewer
picks, per span, whose regions to keep (or starts from one annotator's whole set and edits it);
:func:`adjudicate_regions` stores the result as the recording's final set, audited with the reviewer
and their choices, and says what it changed against the final set it replaces.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from analysis.region_review import assign_spans, disagreement_spans, region_changes
from labeling.data.regions import (
    ANNOTATOR_SOURCES,
    RegionsError,
    changed_after_final,
    list_regions,
    recording,
    regions_project,
    save_final_regions,
)

_SET_COLUMNS = ["start", "end", "label", "text"]


@dataclass(frozen=True)
class RecordingReview:
    """One recording to adjudicate: its audio, everyone's regions, the final set and the spans."""

    clip_id: int
    name: str
    duration: float
    storage_key: str
    annotators: list[str]
    regions: pd.DataFrame  # annotators' regions: annotator, start, end, label, text, span (where it starts)
    final: pd.DataFrame  # start, end, label, text (empty when not adjudicated)
    spans: pd.DataFrame  # analysis.region_review.SPAN_COLUMNS
    #: Annotators who changed their regions after the final set was saved (its review is due again).
    changed_after_final: list[str] = field(default_factory=list)


def recording_review(
    s: Session, project: str | int, clip_id: int, *, tolerance: float = 0.2
) -> RecordingReview:
    """What the Review page shows of one recording (see the module docstring)."""
    info = regions_project(s, project)
    rec = recording(s, info, clip_id)
    frame = list_regions(s, info.id, clip_id=clip_id)
    people = frame[frame["source"].isin(ANNOTATOR_SOURCES) & frame["annotator"].notna()]
    people = people[["annotator", *_SET_COLUMNS]].reset_index(drop=True)
    people = people.assign(span=assign_spans(people))
    annotators = sorted(set(people["annotator"]))
    final = frame.loc[frame["source"] == "final", _SET_COLUMNS].reset_index(drop=True)
    spans = disagreement_spans(people, annotators=annotators, tolerance=tolerance)
    changed = changed_after_final(s, info.id, [rec.id]).get(rec.id, [])
    return RecordingReview(
        rec.id, rec.name, rec.duration, rec.storage_key, annotators, people, final, spans, changed
    )


def final_changes(
    s: Session, project: str | int, clip_id: int, regions: pd.DataFrame | Iterable[Mapping[str, Any]]
) -> pd.DataFrame:
    """What saving ``regions`` as the recording's final set would change (``change``: kept, added,
    removed), against the final set stored now."""
    review = recording_review(s, project, clip_id)
    new = regions if isinstance(regions, pd.DataFrame) else pd.DataFrame(list(regions), columns=_SET_COLUMNS)
    return region_changes(review.final, new)


def adjudicate_regions(
    s: Session,
    project: str | int,
    clip_id: int,
    regions: pd.DataFrame | Iterable[Mapping[str, Any]],
    *,
    reviewer_id: int,
    choices: Mapping[int, str | None] | None = None,
) -> pd.DataFrame:
    """Store ``regions`` as the recording's final set (replacing any), audited with the reviewer and
    ``choices`` (span number → whose regions were kept); returns :func:`final_changes` of the save.

    Raises :class:`~labeling.data.regions.RegionsError` for regions that cannot be stored; nothing
    is written then."""
    new = regions if isinstance(regions, pd.DataFrame) else pd.DataFrame(list(regions), columns=_SET_COLUMNS)
    if new.empty and not len(recording_review(s, project, clip_id).final):
        raise RegionsError("a final set needs at least one region (there is no final set to clear)")
    changes = final_changes(s, project, clip_id, new)
    note = {"kept": {str(k): v for k, v in choices.items()}} if choices else None
    save_final_regions(s, project, clip_id, new, reviewer_id=reviewer_id, note=note)
    return changes
