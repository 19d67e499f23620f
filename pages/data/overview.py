"""Overview: how much audio, how it is labelled and split, where it came from.

What it shows is the summary a worker stores after each change to the data
(:mod:`labeling.quality.data_summaries`): one stored row read, however many clips there are.
"""

from __future__ import annotations

import streamlit as st

from labeling.data.overview import metadata_value_counts
from labeling.quality.data_summaries import JOB_KIND, OVERVIEW, PARAMS, Summary, overview_summary
from pages.widgets import charts, common, plots, stored_report

user = common.require_permission("analyse")  # checked on every rerun, also when opened by URL
project = common.current_project()
ws = common.workspace()


@st.cache_data(ttl=600, max_entries=8, show_spinner="Counting clips…")
def _overview(project_id: int, token: tuple[object, ...], stored: object) -> Summary:
    # Keyed on the data and on the stored summary, so one a worker stores shows at once.
    return overview_summary(ws.db, project_id, allow_stale=True)


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def _meta_counts(project_id: int, key: str, n_clips: int, token: tuple[object, ...]):
    with ws.db.read() as s:
        return metadata_value_counts(s, project_id, key, n_clips=n_clips)


def _recompute() -> object:
    return overview_summary(ws.db, project.id, recompute=True)


token = common.data_token(project.id)
watched = stored_report.stamp_or_wait(
    kind=OVERVIEW,
    job_kind=JOB_KIND,
    project_id=project.id,
    params=PARAMS,
    recompute=_recompute,
    what="project overview",
)
stored = _overview(project.id, token, watched.stamp)
view = stored.value
summary = view.summary

st.title(project.name)
st.caption(
    f"{project.task_kind} · {len(project.classes)} classes · "
    f"{project.annotations_per_clip} annotation(s) required per clip"
)
if not stored.fresh:
    watched.notice(
        user,
        stored.computed_at,
        message="Shown as counted at {when}; the clips or labels have changed since.",
    )
cols = st.columns(4)
cols[0].metric("Clips", f"{summary['n_clips']:,}")
cols[1].metric("Hours of audio", f"{summary['hours']:.2f}")
cols[2].metric("With a final label", f"{summary['n_resolved']:,}")
cols[3].metric("Import batches", f"{summary['n_batches']:,}")

if summary["n_clips"] == 0:
    st.info("This project has no clips yet. Add some on the Import page.")
    st.stop()

left, right = st.columns(2)
if len(view.labels):
    plots.show(
        left, charts.bar_from_counts(view.labels, title="Final labels", name="label"), key="overview.labels"
    )
else:
    left.info("No final labels yet.")
plots.show(right, charts.bar_from_counts(view.splits, title="Split", name="split"), key="overview.split")

left, right = st.columns(2)
plots.show(
    left,
    charts.histogram_from_bins(view.duration.edges, view.duration.counts, title="Duration", unit="seconds"),
    key="overview.duration",
)
plots.show(
    right,
    charts.histogram_from_bins(
        view.loudness.edges, view.loudness.counts, title="Loudness (RMS)", unit="dBFS"
    ),
    key="overview.loudness",
)

if view.metadata_keys or len(view.tags):
    st.subheader("Metadata and tags")
    left, right = st.columns(2)
    if view.metadata_keys:
        column = left.selectbox("Metadata field", view.metadata_keys, key="overview.meta")
        counts = view.metadata.get(column)
        if counts is None:  # a field with many values: counted when chosen
            counts = _meta_counts(project.id, column, summary["n_clips"], token)
        plots.show(left, charts.bar_from_counts(counts, title=column, name=column), key="overview.meta_chart")
    if len(view.tags):
        plots.show(right, charts.bar_from_counts(view.tags, title="Tags", name="tag"), key="overview.tags")

st.subheader("Import batches")
st.dataframe(view.batches, hide_index=True, key="overview.batches")
