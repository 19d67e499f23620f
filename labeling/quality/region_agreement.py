"""How consistently a regions project's annotators draw regions: call :func:`project_region_agreement`.

The figures are :func:`analysis.region_agreement.region_agreement`'s (frame-level Fleiss' and
Cohen's kappa at 10 ms, onset/offset F1 within a tolerance, Krippendorff's unitizing alpha) over the
project's stored regions of people (drawn in Earmark or imported with a name); proposals and final
regions are no one's judgement and are left out.

Every recording with regions of two or more annotators counts, each among the annotators who drew
on it (an annotator who never drew on a recording is not read as "nothing here"): pairwise figures
(Cohen's kappa, boundary F1, DER/JER) compare each pair on the recordings both labelled, Fleiss' kappa
and unitizing alpha take each recording among its own annotators. ``coverage`` and the pairs'
``n_recordings`` say how many recordings and annotators each figure rests on; recordings one
annotator labelled are counted in ``left_out`` and annotators with only such recordings named in
``others``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from analysis.region_agreement import (
    RegionAgreement,
    frame_agreement_by_item,
    pairwise_diarization_error,
    region_agreement,
)
from analysis.regions import FRAME_STEP
from db.models import Clip
from labeling.data.clips import data_fingerprint
from labeling.data.regions import (
    ANNOTATOR_SOURCES,
    RegionsError,
    changed_after_final,
    list_regions,
    region_fingerprint,
    regions_project,
)
from labeling.quality.report_store import Report, stored_or_computed

if TYPE_CHECKING:
    from db.engine import Database


@dataclass(frozen=True)
class RegionAgreementReport:
    """Region agreement of a project: who was compared, on how many recordings, and the figures."""

    project: str
    annotators: list[str]
    n_recordings: int
    left_out: dict[str, int] = field(default_factory=dict)
    others: list[str] = field(default_factory=list)
    agreement: RegionAgreement | None = None
    names: dict[int, str] = field(default_factory=dict)  # recording id -> file name
    diarization: pd.DataFrame | None = None  # pairwise DER and JER (pairwise_diarization_error)
    #: Recordings per number of annotators who labelled them (2, 3, …), among those compared.
    annotators_per_recording: dict[int, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (NaN as None)."""

        def clean(value: Any) -> Any:
            if isinstance(value, float) and not math.isfinite(value):
                return None
            return value

        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return [{k: clean(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]

        out: dict[str, Any] = {
            "project": self.project,
            "annotators": self.annotators,
            "n_recordings": self.n_recordings,
            "left_out": self.left_out,
            "others": self.others,
            "coverage": {
                "recordings": self.n_recordings,
                "annotators": len(self.annotators),
                "annotators_per_recording": {str(k): v for k, v in self.annotators_per_recording.items()},
            },
        }
        a = self.agreement
        if a is not None:
            out |= {
                "fleiss_kappa": clean(a.fleiss_kappa),
                "unitizing_alpha": clean(a.unitizing.alpha),
                "unitizing_by_class": records(a.unitizing.per_label.reset_index()),
                "cohen_kappa_pairs": records(a.cohen_kappa),
                "boundaries": records(a.boundaries),
                "by_recording": [
                    {**row, "recording": self.names.get(int(row["recording_id"]))}
                    for row in records(a.by_item.reset_index())
                ],
            }
        if self.diarization is not None:
            out["diarization_pairs"] = records(self.diarization)
        return out


def project_region_agreement(
    s: Session, project: str | int, *, tolerance: float = 0.2, step: float = FRAME_STEP
) -> RegionAgreementReport:
    """Region agreement of the project's annotators (see the module docstring for which recordings).

    ``tolerance`` is the onset/offset window in seconds (±200 ms by default), ``step`` the frame
    step of the kappas and the resolution of uα.
    """
    info = regions_project(s, project)
    frame = list_regions(s, info.id, sources=ANNOTATOR_SOURCES)
    frame = frame[frame["annotator"].notna()]
    annotated = frame[["recording_id", "annotator"]].drop_duplicates()
    per_recording = annotated.groupby("recording_id")["annotator"].size()
    recordings = [int(r) for r in per_recording.index[per_recording >= 2]]
    left_out: dict[str, int] = {}
    alone = int((per_recording < 2).sum())
    if alone:
        left_out["labelled by one annotator"] = alone
    annotated = annotated[annotated["recording_id"].isin(recordings)]
    team = sorted(set(annotated["annotator"]))
    others = sorted(set(frame["annotator"]) - set(team))
    if not recordings:
        return RegionAgreementReport(info.name, [], 0, left_out, others)
    regions = frame[frame["recording_id"].isin(recordings)]
    durations = pd.Series(
        {
            int(i): float(d)
            for i, d in s.execute(select(Clip.id, Clip.duration_s).where(Clip.id.in_(recordings)))
        },
        dtype="float64",
    )
    columns = ["recording_id", "annotator", "start", "end", "label"]
    try:
        agreement = region_agreement(
            regions[columns],
            durations=durations,
            step=step,
            tolerance=tolerance,
            labels=sorted(set(regions["label"])),
            annotated=annotated,
        )
        diarization = pairwise_diarization_error(regions[columns], durations=durations, annotated=annotated)
    except ValueError as exc:
        raise RegionsError(f"region agreement of {info.name!r}: {exc}") from None
    names = dict(zip(regions["recording_id"].astype(int), regions["recording"], strict=True))
    sizes = per_recording[per_recording >= 2].value_counts().sort_index()
    return RegionAgreementReport(
        info.name,
        team,
        len(recordings),
        left_out,
        others,
        agreement,
        names,
        diarization,
        {int(k): int(v) for k, v in sizes.items()},
    )


REGION_AGREEMENT_VIEW = "region_agreement"
REGION_REVIEW_QUEUE = "region_review_queue"
#: The tolerance of the report kept current after every change (the page's and the command's default).
DEFAULT_TOLERANCE_S = 0.2


def region_data_fingerprint(s: Session, project_id: int) -> tuple[object, ...]:
    """The clips, labels and regions of a project as they are now (a cache key of region views)."""
    return (*data_fingerprint(s, project_id), *region_fingerprint(s, project_id))


def region_view_params(tolerance: float = DEFAULT_TOLERANCE_S) -> dict[str, int]:
    """The stored-report parameters of :func:`region_agreement_view` at ``tolerance`` seconds."""
    return {"tolerance_ms": round(tolerance * 1000)}


def region_agreement_view(
    db: Database,
    project_id: int,
    *,
    tolerance: float = DEFAULT_TOLERANCE_S,
    allow_stale: bool = False,
    recompute: bool = False,
) -> Report:
    """:meth:`RegionAgreementReport.to_dict` of :func:`project_region_agreement` as a stored
    :class:`~labeling.quality.report_store.Report`, kept per regions change and tolerance, so a page
    or the command shows it at once; ``allow_stale`` and ``recompute`` as in
    :func:`~labeling.quality.report_store.stored_or_computed` (the ``region_agreement`` job keeps the
    default tolerance's report current after every save)."""
    return stored_or_computed(
        db,
        project_id,
        REGION_AGREEMENT_VIEW,
        region_view_params(tolerance),
        lambda s: project_region_agreement(s, project_id, tolerance=tolerance).to_dict(),
        allow_stale=allow_stale,
        recompute=recompute,
        fingerprint=region_data_fingerprint,
    )


def region_review_ranking(
    db: Database, project_id: int, *, allow_stale: bool = False, recompute: bool = False
) -> Report:
    """:func:`region_review_queue` as a stored report (kept current by the ``region_review_queue``
    job after every save), as :func:`region_agreement_view` keeps the agreement report."""
    return stored_or_computed(
        db,
        project_id,
        REGION_REVIEW_QUEUE,
        {},
        lambda s: region_review_queue(s, project_id),
        allow_stale=allow_stale,
        recompute=recompute,
        fingerprint=region_data_fingerprint,
    )


#: The columns of :func:`region_review_queue`.
QUEUE_COLUMNS = [
    "recording_id",
    "recording",
    "duration",
    "annotators",
    "n_annotators",
    "fleiss_kappa",
    "unanimous",
    "disagreement",
    "final",
    "changed_after_final",
]


def region_review_queue(s: Session, project: str | int) -> pd.DataFrame:
    """Recordings drawn by two or more annotators, those they disagree on most first.

    Each recording is judged among its own annotators: ``fleiss_kappa`` is frame-level Fleiss' kappa
    (:func:`~analysis.region_agreement.frame_agreement_by_item`), ``unanimous`` the share of frames
    all agree on, and ``disagreement`` 1 − kappa (0 when every frame is unanimous, where kappa is
    undefined). ``final`` counts the recording's final regions (None: not adjudicated yet);
    ``changed_after_final`` names the annotators who changed their regions after the final set was
    saved (None: none did), whose recording wants reviewing again.
    """
    info = regions_project(s, project)
    frame = list_regions(s, info.id, sources=(*ANNOTATOR_SOURCES, "final"))
    final = frame[frame["source"] == "final"].groupby("recording_id").size()
    people = frame[frame["source"].isin(ANNOTATOR_SOURCES) & frame["annotator"].notna()]
    annotated = people[["recording_id", "annotator"]].drop_duplicates()
    who = annotated.groupby("recording_id")["annotator"].agg(lambda a: sorted(set(a)))
    ids = [int(i) for i, names in who.items() if len(names) >= 2]
    durations = dict(s.execute(select(Clip.id, Clip.duration_s).where(Clip.id.in_(ids))).all())
    stale = changed_after_final(s, info.id)
    people = people[people["recording_id"].isin(ids)]
    # Every recording at once, each among its own annotators.
    table = (
        frame_agreement_by_item(
            people[["recording_id", "annotator", "start", "end", "label"]],
            durations={rid: float(durations[rid]) for rid in ids},
            labels=sorted(set(people["label"])),
            annotated=annotated[annotated["recording_id"].isin(ids)],
        )
        if ids
        else pd.DataFrame(columns=["fleiss_kappa", "unanimous"])
    )
    names = people.drop_duplicates("recording_id").set_index("recording_id")["recording"]
    kappas = table["fleiss_kappa"].astype("float64").to_dict()
    shares = table["unanimous"].astype("float64").to_dict()
    rows = []
    for rid in ids:
        kappa, unanimous = kappas[rid], shares[rid]
        disagreement = 0.0 if unanimous >= 1.0 else (1.0 - kappa if math.isfinite(kappa) else 1.0)
        rows.append(
            (
                rid,
                str(names[rid]),
                float(durations[rid]),
                ", ".join(who[rid]),
                len(who[rid]),
                kappa if math.isfinite(kappa) else None,
                unanimous,
                disagreement,
                int(final[rid]) if rid in final.index else None,
                ", ".join(stale[rid]) if rid in stale else None,
            )
        )
    out = pd.DataFrame(rows, columns=QUEUE_COLUMNS)
    out["final"] = out["final"].astype("Int64")
    return out.sort_values(["disagreement", "recording_id"], ascending=[False, True]).reset_index(drop=True)
