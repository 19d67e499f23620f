"""Clips: filter by split, label, tags, metadata and quality; listen to one; see its signal."""

from __future__ import annotations

import streamlit as st

from analysis.filters import filter_clips
from labeling.clips import QUALITY_COLUMNS, clip_detail, load_audio, metadata_columns
from pages import audio, charts, common

PAGE_SIZE = 50
common.require_permission("analyse")  # checked on every rerun, also when opened by URL
project = common.current_project()
ws = common.workspace()
frame = common.cached_clip_frame(project.id)
st.title("Clips")
if frame.empty:
    st.info("This project has no clips yet. Add some on the Import page.")
    st.stop()

meta_cols = metadata_columns(frame)
all_tags = sorted(set(frame["tags"].explode().dropna()))
with st.sidebar.expander("Filters", expanded=True):
    name = st.text_input("Name contains", key="clips.name")
    splits = st.multiselect("Split", sorted(frame["split"].unique()), key="clips.split")
    labels = st.multiselect("Final label", sorted(frame["label"].dropna().unique()), key="clips.label")
    tags = st.multiselect("Has all tags", all_tags, key="clips.tags")
    meta_filter: dict[str, list[str]] = {}
    column = st.selectbox("Metadata field", ["(none)", *meta_cols], key="clips.meta_col")
    if column != "(none)":
        values = sorted(frame[column].dropna().astype(str).unique())
        meta_filter[column] = st.multiselect(f"{column} is", values, key="clips.meta_values")
    ranges = {}
    for col, label in (
        ("duration_s", "Duration (s)"),
        ("rms_dbfs", "RMS level (dBFS)"),
        ("snr_db", "SNR estimate (dB)"),
    ):
        values = frame[col].dropna()
        if len(values) and values.min() < values.max():
            lo, hi = float(values.min()), float(values.max())
            chosen = st.slider(label, lo, hi, (lo, hi), key=f"clips.range.{col}")
            if chosen != (lo, hi):
                ranges[col] = chosen

shown = filter_clips(
    frame,
    splits=splits,
    labels=labels,
    tags_all=tags,
    metadata=meta_filter,
    name_contains=name,
    ranges=ranges,
)
pages = max(1, -(-len(shown) // PAGE_SIZE))
top = st.columns([3, 1])
top[0].caption(f"{len(shown):,} of {len(frame):,} clips match")
page = top[1].number_input("Page", 1, pages, 1, key="clips.page") if pages > 1 else 1
window = shown.iloc[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
table_cols = [
    "clip_id",
    "original_name",
    "label",
    "split",
    "duration_s",
    *QUALITY_COLUMNS[:2],
    "tags",
    *meta_cols[:6],
]
event = st.dataframe(
    window[table_cols],
    hide_index=True,
    on_select="rerun",
    selection_mode="single-row",
    key="clips.table",
    column_config={"duration_s": st.column_config.NumberColumn(format="%.2f")},
)
rows = event.selection.rows if event and event.selection else []
if not rows:
    st.caption("Select a row to listen to the clip.")
    st.stop()

clip_id = int(window.iloc[rows[0]]["clip_id"])
with ws.db.read() as s:
    detail = clip_detail(s, ws.store, clip_id, project_id=project.id)
st.subheader(detail.original_name)
if audio.play_clip(detail.id, detail.audio_path) is not None:
    y, sr = load_audio(detail.audio_path)
    st.plotly_chart(charts.waveform(y, sr), key="clips.waveform")
    st.plotly_chart(charts.spectrogram(y, sr), key="clips.spectrogram")
left, right = st.columns(2)
left.markdown("**Clip**")
left.json(
    {
        "label": detail.label,
        "transcript": detail.transcript,
        "split": detail.split,
        "tags": detail.tags,
        "duration_s": round(detail.duration_s, 3),
        "sample_rate": detail.sample_rate,
        "channels": detail.channels,
        "sha256": detail.sha256,
        "metadata": detail.metadata,
    }
)
right.markdown("**Audio quality**")
right.json({k: None if v is None else round(v, 4) for k, v in detail.quality.items()})
