"""Clips: filter by split, label, tags, metadata and quality; listen to one; see its signal."""

from __future__ import annotations

import streamlit as st

from labeling.data.clip_query import ClipFilters, clip_filter_options, clip_page, metadata_options
from labeling.data.clips import clip_detail, load_audio
from pages.widgets import audio, charts, common, plots

PAGE_SIZE = 50
common.require_permission("analyse")  # checked on every rerun, also when opened by URL
project = common.current_project()
ws = common.workspace()


@st.cache_data(ttl=600, max_entries=8, show_spinner="Loading clips…")
def _options(project_id: int, token: tuple[object, ...]):
    with ws.db.read() as s:
        return clip_filter_options(s, project_id)


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def _values(project_id: int, key: str, token: tuple[object, ...]) -> list[str]:
    with ws.db.read() as s:
        return metadata_options(s, project_id, key)


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def _page(project_id: int, filters: ClipFilters, page: int, keys: tuple[str, ...], token: tuple[object, ...]):
    with ws.db.read() as s:
        return clip_page(
            s, project_id, filters, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE, metadata_keys=keys
        )


token = common.data_token(project.id)
options = _options(project.id, token)
st.title("Clips")
if options.n_clips == 0:
    st.info("This project has no clips yet. Add some on the Import page.")
    st.stop()

meta_cols = options.metadata_keys
with st.sidebar.expander("Filters", expanded=True):
    name = st.text_input("Name contains", key="clips.name")
    splits = st.multiselect("Split", options.splits, key="clips.split")
    labels = st.multiselect("Final label", options.labels, key="clips.label")
    tags = st.multiselect("Has all tags", options.tags, key="clips.tags")
    meta_filter: dict[str, list[str]] = {}
    column = st.selectbox("Metadata field", ["(none)", *meta_cols], key="clips.meta_col")
    if column != "(none)":
        values = _values(project.id, column, token)
        meta_filter[column] = st.multiselect(f"{column} is", values, key="clips.meta_values")
    ranges = {}
    for col, label in (
        ("duration_s", "Duration (s)"),
        ("rms_dbfs", "RMS level (dBFS)"),
        ("snr_db", "SNR estimate (dB)"),
    ):
        if col in options.ranges and options.ranges[col][0] < options.ranges[col][1]:
            lo, hi = options.ranges[col]
            chosen = st.slider(label, lo, hi, (lo, hi), key=f"clips.range.{col}")
            if chosen != (lo, hi):
                ranges[col] = chosen

filters = ClipFilters(
    splits=tuple(splits),
    labels=tuple(labels),
    tags_all=tuple(tags),
    metadata={k: tuple(v) for k, v in meta_filter.items()},
    name_contains=name,
    ranges=ranges,
)
shown_cols = tuple(meta_cols[:6])
first, matched = _page(project.id, filters, 1, shown_cols, token)
pages = max(1, -(-matched // PAGE_SIZE))
top = st.columns([3, 1])
top[0].caption(f"{matched:,} of {options.n_clips:,} clips match")
page = top[1].number_input("Page", 1, pages, 1, key="clips.page") if pages > 1 else 1
window = first if page == 1 else _page(project.id, filters, int(page), shown_cols, token)[0]
event = st.dataframe(
    window,
    hide_index=True,
    on_select="rerun",
    selection_mode="single-row",
    key="clips.table",
    column_config={"duration_s": st.column_config.NumberColumn(format="%.2f")},
)
common.csv_download(window, file_name=f"clips-{project.name}-page-{int(page)}.csv", key="clips.download")
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
    plots.show(st, charts.waveform(y, sr), key="clips.waveform")
    plots.show(st, charts.spectrogram(y, sr), key="clips.spectrogram")
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
