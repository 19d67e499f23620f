"""The Agreement page of a ``regions`` project: do annotators draw the same regions on the same recordings?

Everything shown is :func:`labeling.quality.region_agreement.region_agreement_view`: the report of
``project_region_agreement`` (boundary F1 within a tolerance, frame-level Fleiss' and Cohen's kappa,
unitizing alpha, pairwise DER/JER), stored per regions change and tolerance
(``earmark agreement --project NAME --json --tolerance S`` prints the same report). A worker keeps
the ±200 ms report current after every save; while it computes, the page shows the stored one with
its age (:mod:`pages.widgets.stored_report`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from labeling.data.regions import RegionsError
from labeling.platform.auth import UserInfo
from labeling.quality.region_agreement import (
    REGION_AGREEMENT_VIEW,
    region_agreement_view,
    region_data_fingerprint,
    region_view_params,
)
from labeling.quality.report_store import Report
from pages.quality import charts_regions as charts
from pages.widgets import common, plots, stored_report

TOLERANCES_MS = (50, 100, 200, 300, 500, 1000)


def _token(project_id: int) -> tuple[object, ...]:
    with common.workspace().db.read() as s:
        return region_data_fingerprint(s, project_id)


@st.cache_data(ttl=600, show_spinner="Computing region agreement…", max_entries=16)
def load(project_id: int, token: tuple[object, ...], stored: object, tolerance_ms: int) -> Report:
    # Keyed on the regions and on the stored report, so a report a worker stores shows at once.
    return region_agreement_view(
        common.workspace().db, project_id, tolerance=tolerance_ms / 1000, allow_stale=True
    )


def _recompute(project_id: int, tolerance_ms: int) -> None:
    region_agreement_view(common.workspace().db, project_id, tolerance=tolerance_ms / 1000, recompute=True)


def fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def show(project: Any, user: UserInfo) -> None:
    """Render the page for ``project`` (a regions project) to ``user``."""
    st.title("Agreement")
    tolerance_ms = st.select_slider(
        "Boundary tolerance (ms)",
        options=TOLERANCES_MS,
        value=200,
        key="ragree.tolerance",
        help="How far apart two annotators' onsets (or offsets) may be and still count as the same boundary.",
    )
    params = region_view_params(int(tolerance_ms) / 1000)
    watched = stored_report.stamp_or_wait(
        kind=REGION_AGREEMENT_VIEW,
        job_kind="region_agreement",
        project_id=project.id,
        params=params,
        recompute=lambda: _recompute(project.id, int(tolerance_ms)),
        what="region agreement report",
    )
    try:
        view = load(project.id, _token(project.id), watched.stamp, int(tolerance_ms))
    except RegionsError as exc:
        st.error(str(exc))
        return
    if not view.fresh:
        watched.notice(
            user, view.computed_at, message="Shown as computed at {when}; regions have changed since."
        )
    report = view.value
    if not report["annotators"]:
        st.info(
            "No recording has regions from two annotators yet: agreement appears here once two people "
            "have drawn regions on the same recordings."
        )
        return
    left_out = "; ".join(f"{n} {why}" for why, n in report["left_out"].items())
    spread = (report.get("coverage") or {}).get("annotators_per_recording") or {}
    covers = ", ".join(f"{n:,} by {k}" for k, n in spread.items())
    st.caption(
        f"{report['n_recordings']:,} recordings labelled by two or more of {len(report['annotators'])} "
        f"annotators ({', '.join(report['annotators'])})"
        + (f": {covers}" if covers else "")
        + (f" · left out: {left_out}" if left_out else "")
        + (f" · not compared: {', '.join(report['others'])}" if report["others"] else "")
    )
    st.caption(
        "Fleiss' kappa and unitizing alpha cover all of these recordings, each among its own annotators; "
        "the pairwise figures (F1, Cohen's kappa, DER/JER) cover the recordings each pair shares "
        "(column n_recordings)."
    )
    boundaries = pd.DataFrame(report["boundaries"])
    cohen = pd.DataFrame(report["cohen_kappa_pairs"])
    der = pd.DataFrame(report.get("diarization_pairs") or [])
    f1 = boundaries.groupby("kind")["f1"].mean()
    c1, c2, c3, c4, c5 = st.columns(5)
    c1.metric(
        "Onset F1",
        fmt(f1.get("onset")),
        help=f"Onsets matched one to one within ±{tolerance_ms} ms, mean over annotator pairs.",
        border=True,
    )
    c2.metric("Offset F1", fmt(f1.get("offset")), border=True)
    c3.metric(
        "Frame kappa (Fleiss)",
        fmt(report["fleiss_kappa"]),
        help="Chance-corrected agreement on what each 10 ms frame is (which classes are active).",
        border=True,
    )
    c4.metric(
        "Unitizing alpha",
        fmt(report["unitizing_alpha"]),
        help="Krippendorff's uα: judges where units are and how long, 1 perfect, 0 chance.",
        border=True,
    )
    c5.metric(
        "Mean DER",
        fmt(float(der["der"].mean()) if len(der) else None),
        help="Diarization error rate of one annotator against another (classes as speakers), "
        "mean over annotator pairs; 0 is perfect.",
        border=True,
    )

    tabs = st.tabs(["Boundaries", "Annotator pairs", "Recordings", "Classes"])
    with tabs[0]:
        plots.show(st, charts.boundary_bars(boundaries, tolerance_ms=int(tolerance_ms)), key="ragree.bounds")
        st.dataframe(boundaries, hide_index=True, key="ragree.bounds_table")
    with tabs[1]:
        left, right = st.columns(2)
        plots.show(
            left,
            charts.pair_heatmap(cohen, value="kappa", title="Frame Cohen's kappa by annotator pair"),
            key="ragree.cohen",
        )
        if len(der):
            plots.show(
                right,
                charts.pair_heatmap(
                    der, value="der", title="DER by annotator pair", good_high=False, symmetric=False
                ),
                key="ragree.der",
            )
        table = (
            cohen.merge(der[["rater_a", "rater_b", "der", "jer"]], on=["rater_a", "rater_b"], how="left")
            if len(der)
            else cohen
        )
        st.dataframe(table, hide_index=True, key="ragree.pairs")
        st.caption("DER and JER take the first of each pair as the reference and classes as speakers.")
    with tabs[2]:
        by_recording = pd.DataFrame(report["by_recording"])
        plots.show(st, charts.recording_distribution(by_recording), key="ragree.recordings")
        st.dataframe(
            by_recording,
            hide_index=True,
            key="ragree.recordings_table",
            column_order=[
                "recording",
                "recording_id",
                "n_annotators",
                "fleiss_kappa",
                "unanimous",
                "n_frames",
            ],
            column_config={"unanimous": st.column_config.ProgressColumn("frames unanimous", format="%.2f")},
        )
        st.caption("Least agreement first: the Review page settles these recordings.")
    with tabs[3]:
        st.dataframe(pd.DataFrame(report["unitizing_by_class"]), hide_index=True, key="ragree.classes")
        st.caption("Unitizing alpha of each class on its own.")
