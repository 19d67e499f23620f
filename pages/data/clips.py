"""Clips: filter by split, label, tags, metadata and quality; listen to one; see its signal.

The filter options and the clip count come from the summary a worker stores after each change
(:mod:`labeling.quality.data_summaries`); the table is read a page at a time by clip id, so turning
to the next page costs the same on the first page and the thousandth.
"""

from __future__ import annotations

import streamlit as st

from labeling.data.clip_query import ClipFilters, clip_page, count_matching, metadata_options
from labeling.data.clips import clip_detail, load_audio
from labeling.quality.data_summaries import CLIP_FACETS, JOB_KIND, PARAMS, Summary, clip_facets
from pages.widgets import audio, charts, common, plots, stored_report

PAGE_SIZE = 50
user = common.require_permission("analyse")  # checked on every rerun, also when opened by URL
project = common.current_project()
ws = common.workspace()


@st.cache_data(ttl=600, max_entries=8, show_spinner="Loading clips…")
def _facets(project_id: int, token: tuple[object, ...], stored: object) -> Summary:
    # Keyed on the data and on the stored summary, so one a worker stores shows at once.
    return clip_facets(ws.db, project_id, allow_stale=True)


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def _values(project_id: int, key: str, token: tuple[object, ...]) -> list[str]:
    with ws.db.read() as s:
        return metadata_options(s, project_id, key)


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def _count(project_id: int, filters: ClipFilters, token: tuple[object, ...]) -> int:
    with ws.db.read() as s:
        return count_matching(s, project_id, filters)


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def _page(
    project_id: int, filters: ClipFilters, after: int | None, keys: tuple[str, ...], token: tuple[object, ...]
):
    with ws.db.read() as s:
        return clip_page(
            s, project_id, filters, after=after, limit=PAGE_SIZE, metadata_keys=keys, count=False
        )[0]


def _recompute() -> object:
    return clip_facets(ws.db, project.id, recompute=True)


token = common.data_token(project.id)
watched = stored_report.stamp_or_wait(
    kind=CLIP_FACETS,
    job_kind=JOB_KIND,
    project_id=project.id,
    params=PARAMS,
    recompute=_recompute,
    what="summary of the clips",
)
facets = _facets(project.id, token, watched.stamp)
options = facets.value
st.title("Clips")
if not facets.fresh:
    watched.notice(
        user,
        facets.computed_at,
        message="Filter options and the clip count as of {when}; the clips have changed since.",
    )
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
matched = options.n_clips if filters.empty else _count(project.id, filters, token)
# The last clip id of each page before this one: the next page starts after the last of them.
if st.session_state.get("clips.paged_for") != (project.id, repr(filters)):
    st.session_state["clips.paged_for"] = (project.id, repr(filters))
    st.session_state["clips.cursor"] = []
cursor: list[int] = st.session_state["clips.cursor"]
window = _page(project.id, filters, cursor[-1] if cursor else None, shown_cols, token)
page = len(cursor) + 1
pages = max(1, -(-matched // PAGE_SIZE))


def _next(last: int) -> None:
    st.session_state["clips.cursor"] = [*st.session_state["clips.cursor"], last]


def _previous() -> None:
    st.session_state["clips.cursor"] = st.session_state["clips.cursor"][:-1]


top = st.columns([4, 1, 1, 1], vertical_alignment="center")
top[0].caption(f"{matched:,} of {options.n_clips:,} clips match")
top[1].button("Previous", key="clips.previous", on_click=_previous, disabled=not cursor)
top[2].markdown(f"Page {page:,} of {pages:,}")
top[3].button(
    "Next",
    key="clips.next",
    on_click=_next,
    args=(int(window["clip_id"].iloc[-1]) if len(window) else 0,),
    disabled=page >= pages or len(window) < PAGE_SIZE,
)
event = st.dataframe(
    window,
    hide_index=True,
    on_select="rerun",
    selection_mode="single-row",
    key="clips.table",
    column_config={"duration_s": st.column_config.NumberColumn(format="%.2f")},
)
common.csv_download(window, file_name=f"clips-{project.name}-page-{page}.csv", key="clips.download")
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
