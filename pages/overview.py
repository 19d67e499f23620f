"""Overview: how much audio, how it is labelled and split, where it came from."""

from __future__ import annotations

import streamlit as st

from labeling.clips import batch_frame, metadata_columns, project_summary
from pages import charts, common

common.require_permission("analyse")  # checked on every rerun, also when opened by URL
project = common.current_project()
ws = common.workspace()
with ws.db.read() as s:
    summary = project_summary(s, project.id)
    batches = batch_frame(s, project.id)
frame = common.cached_clip_frame(project.id)

st.title(project.name)
st.caption(
    f"{project.task_kind} · {len(project.classes)} classes · "
    f"{project.annotations_per_clip} annotation(s) required per clip"
)
cols = st.columns(4)
cols[0].metric("Clips", f"{summary['n_clips']:,}")
cols[1].metric("Hours of audio", f"{summary['hours']:.2f}")
cols[2].metric("With a final label", f"{summary['n_resolved']:,}")
cols[3].metric("Import batches", f"{summary['n_batches']:,}")

if frame.empty:
    st.info("This project has no clips yet. Add some on the Import page.")
    st.stop()

left, right = st.columns(2)
if frame["label"].notna().any():
    left.plotly_chart(charts.bar_counts(frame["label"], title="Final labels"), key="overview.labels")
else:
    left.info("No final labels yet.")
right.plotly_chart(charts.bar_counts(frame["split"], title="Split"), key="overview.split")

left, right = st.columns(2)
left.plotly_chart(
    charts.histogram(frame["duration_s"], title="Duration", unit="seconds"), key="overview.duration"
)
right.plotly_chart(
    charts.histogram(frame["rms_dbfs"], title="Loudness (RMS)", unit="dBFS"), key="overview.loudness"
)

meta_cols = metadata_columns(frame)
tags = frame["tags"].explode().dropna()
if meta_cols or not tags.empty:
    st.subheader("Metadata and tags")
    left, right = st.columns(2)
    if meta_cols:
        column = left.selectbox("Metadata field", meta_cols, key="overview.meta")
        left.plotly_chart(
            charts.bar_counts(frame[column].rename(column), title=column), key="overview.meta_chart"
        )
    if not tags.empty:
        right.plotly_chart(charts.bar_counts(tags.rename("tag"), title="Tags"), key="overview.tags")

st.subheader("Import batches")
st.dataframe(batches, hide_index=True, key="overview.batches")
