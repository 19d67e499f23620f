"""Error analysis of a regions project: a model's regions against the final regions, by slice.

The Error analysis page hands over to :func:`show` for a project of long recordings. The numbers are
:func:`labeling.model.region_error_analysis.region_error_report`'s.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pandas as pd
import streamlit as st

from labeling.model import region_error_analysis as rea
from pages.model import charts_region_errors
from pages.widgets import common, plots
from pages.widgets.charts import raw_value

SECONDS = ("reference_s", "duration", "correct", "missed", "false_alarm", "confusion")
EVERY_SLICE = "(every slice)"
PLAY_SLICE = "errors.regions.play_slice"
PLAY_ERROR = "errors.regions.play_error"
#: Errors listed to play, the longest first.
SHOWN_ERRORS = 200
PERCENT = ("share", "error_rate", "error_share", "hlp", "gap", "priority", "der", "f1", "wer")


@st.cache_data(ttl=600, max_entries=16, show_spinner="Scoring the regions…")
def _report(
    project_id: int, model: str | None, tolerance: float, token: tuple[object, ...], rules: str
) -> rea.RegionErrorReport:
    """The report, recomputed only when the project's regions, the choices or its normalisation change."""
    with common.workspace().db.read() as s:
        return rea.region_error_report(s, project_id, model=model, tolerance=tolerance)


def _percent(columns: tuple[str, ...] = PERCENT) -> dict[str, Any]:
    return {c: st.column_config.NumberColumn(c, format="percent") for c in columns}


def _seconds(columns: tuple[str, ...] = SECONDS) -> dict[str, Any]:
    return {c: st.column_config.NumberColumn(c, format="%.1f") for c in columns}


def show(project: Any, user: Any, ws: Any) -> None:
    """Render the page for ``project`` (a regions project)."""
    st.title("Error analysis")
    st.caption(
        "A model's regions against the final regions of each recording: detection error rate (missed, "
        "false alarm and confusion time over the final regions' time), event F1 and the WER of region "
        "transcripts. Human level is the annotators' own error against the final regions."
    )
    with ws.db.read() as s:
        models = rea.model_sets(s, project.id)
        token = rea.regions_fingerprint(s, project.id)
    left, right = st.columns([3, 1])
    model = left.selectbox(
        "Model regions",
        list[str | None](models) or [None],
        key="errors.regions.model",
        format_func=lambda k: models.get(k, "none yet") if k else "none yet",
    )
    tolerance = right.number_input(
        "Event tolerance (s)",
        min_value=0.0,
        max_value=2.0,
        value=0.2,
        step=0.05,
        key="errors.regions.tolerance",
        help="An event matches when its onset and its offset are both this close to a final region's.",
    )
    report = _report(
        project.id, model, float(tolerance), token, json.dumps(project.normalization, sort_keys=True)
    )
    if report.note:
        st.info(report.note)
        return

    model_row = report.summary.iloc[0]
    cols = st.columns(6)
    cols[0].metric("DER", f"{model_row['der']:.1%}")
    cols[1].metric("Missed", f"{model_row['missed']:.1f} s")
    cols[2].metric("False alarm", f"{model_row['false_alarm']:.1f} s")
    cols[3].metric("Confusion", f"{model_row['confusion']:.1f} s")
    cols[4].metric(f"Event F1 ±{report.tolerance:g} s", f"{model_row['f1']:.1%}")
    wer = model_row["wer"]
    cols[5].metric(
        "WER",
        "none" if wer != wer else f"{wer:.1%}",
        help="Of the region transcripts, when both the model's and the final regions have them.",
    )
    scored = f"{report.n_recordings:,} recordings with final and model regions scored"
    if report.left_out:
        scored += f"; {report.left_out:,} with final regions but none from the model left out"
    st.caption(scored + ".")

    plots.show(
        st,
        charts_region_errors.der_parts(
            report.summary, name="system", title="DER by part: the model and each annotator"
        ),
        key="errors.regions.der_chart",
    )
    st.dataframe(
        report.summary.drop(columns=["kind"]),
        key="errors.regions.summary",
        hide_index=True,
        column_config=_percent() | _seconds(),
    )

    st.subheader("Slices")
    st.caption(
        "Recording tags and metadata, the final regions' tags and classes. Error rate: missed, false "
        "alarm and confusion seconds over the slice's final seconds; priority = gap to human level × share."
    )
    names = report.slices["slice"].tolist()
    st.dataframe(
        report.slices,
        key="errors.regions.slices",
        hide_index=True,
        column_config=_percent() | _seconds(),
        on_select=functools.partial(_slice_row_picked, names),
        selection_mode="single-row",
    )
    left, right = st.columns(2)
    plots.show(
        left,
        charts_region_errors.priority_bars(report.slices),
        key="errors.regions.priority_chart",
        on_select=functools.partial(_slice_bar_picked, names),
        selection_mode="points",
    )
    plots.show(right, charts_region_errors.error_vs_hlp(report.slices), key="errors.regions.hlp_chart")

    _hear_an_error(project, report, names, (project.id, model, float(tolerance), token))

    st.subheader("Per recording and class")
    left, right = st.columns(2)
    plots.show(
        left,
        charts_region_errors.der_parts(
            report.per_recording, name="recording", title="DER by part, per recording"
        ),
        key="errors.regions.recording_chart",
    )
    right.dataframe(
        report.per_class,
        key="errors.regions.per_class",
        hide_index=True,
        column_config=_percent(("error_rate",)) | _seconds(),
    )
    if not report.transcripts.empty:
        with st.expander("Region transcripts", icon=":material/subtitles:"):
            st.dataframe(
                report.transcripts,
                key="errors.regions.transcripts",
                hide_index=True,
                column_config=_percent(),
            )


def _slice_row_picked(names: list[str]) -> None:
    """A row of the slice table picked: hear that slice's errors."""
    rows = st.session_state["errors.regions.slices"].selection.rows
    if rows:
        st.session_state[PLAY_SLICE] = names[rows[0]]
        st.session_state.pop(PLAY_ERROR, None)


def _slice_bar_picked(names: list[str]) -> None:
    """A bar of the priority chart clicked: hear that slice's errors."""
    points = st.session_state["errors.regions.priority_chart"].selection.points
    picked = raw_value(points[0].get("y")) if points else None
    if picked in names:
        st.session_state[PLAY_SLICE] = picked
        st.session_state.pop(PLAY_ERROR, None)


def _error_row_picked() -> None:
    rows = st.session_state["errors.regions.spans"].selection.rows
    if rows:
        st.session_state[PLAY_ERROR] = rows[0]


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def _spans(_report: rea.RegionErrorReport, key: tuple[object, ...], name: str | None) -> pd.DataFrame:
    return rea.slice_error_spans(_report, name).head(SHOWN_ERRORS)


def _hear_an_error(
    project: Any, report: rea.RegionErrorReport, names: list[str], key: tuple[object, ...]
) -> None:
    """Pick a slice (here, in the table or on the priority chart) and one of its errors; hear it."""
    st.subheader("Hear an error")
    st.caption(
        "The model's errors in a slice as stretches of a recording, the longest first: pick one (or a row "
        "of the slice table, or a bar of the priority chart) to hear exactly that stretch."
    )
    options = [EVERY_SLICE, *names]
    if st.session_state.get(PLAY_SLICE) not in options:
        st.session_state[PLAY_SLICE] = names[0] if names else EVERY_SLICE
    chosen = st.selectbox(
        "Slice", options, key=PLAY_SLICE, on_change=lambda: st.session_state.pop(PLAY_ERROR, None)
    )
    spans = _spans(report, key, None if chosen == EVERY_SLICE else chosen)
    if spans.empty:
        st.caption("No error in this slice.")
        return
    st.dataframe(
        spans.drop(columns=["recording_id"]),
        key="errors.regions.spans",
        hide_index=True,
        height=min(240, 35 * len(spans) + 40),
        column_config=_seconds(("start", "end", "duration")),
        on_select=_error_row_picked,
        selection_mode="single-row",
    )
    if st.session_state.get(PLAY_ERROR) not in range(len(spans)):
        st.session_state[PLAY_ERROR] = 0
    labels = [f"{r.kind} {r.start:.2f}–{r.end:.2f} s of {r.recording}" for r in spans.itertuples()]
    i = st.selectbox("Error", range(len(spans)), key=PLAY_ERROR, format_func=labels.__getitem__)
    span = spans.iloc[int(i)]
    ws = common.workspace()
    try:
        with ws.db.read() as s:
            data = rea.error_audio(
                s, ws.store, project.id, int(span["recording_id"]), span["start"], span["end"]
            )
    except FileNotFoundError as exc:
        st.warning(str(exc), icon=":material/music_off:")
    else:
        st.audio(data, format="audio/wav")
    st.caption(
        f"{span['kind'].capitalize()}, {span['duration']:.2f} s of {span['recording']}: the final regions "
        f"have {span['final'] or 'nothing'} there, the model {span['model'] or 'nothing'}."
    )
    plots.show(
        st,
        charts_region_errors.error_window(
            report.errors,
            recording_id=int(span["recording_id"]),
            start=float(span["start"]),
            end=float(span["end"]),
            kind=str(span["kind"]),
        ),
        key="errors.regions.error_window",
    )
