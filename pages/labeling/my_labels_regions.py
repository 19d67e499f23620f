"""My labels of a ``regions`` project: the recordings the annotator submitted, with their regions.

Each row is :func:`labeling.annotate.region_labels.my_recordings`: how many regions, of which classes,
how many seconds, and whether a reviewer has settled the recording. "Open in the editor" puts the
recording on the Label page, as its "Open a recording you submitted" does.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from labeling.annotate.region_labels import my_recordings
from pages.labeling.label_regions import open_recording
from pages.widgets import common

LABEL_PAGE = "pages/labeling/label.py"


def show(project: Any, user: Any, ws: Any) -> None:
    """Render the page for ``project`` (a regions project) and the signed-in ``user``."""
    st.title("My labels")
    st.caption(
        "The recordings you submitted in this project, newest first, with your regions as they are now. "
        "Open one in the editor to correct it."
    )
    with ws.db.read() as s:
        recent = my_recordings(s, project.id, user.id, limit=50)
    if recent.empty:
        st.info("You have not submitted a recording in this project yet.")
        st.stop()
    columns = ["recording", "n_regions", "classes", "seconds", "submitted_at", "adjudicated"]
    st.dataframe(
        recent,
        hide_index=True,
        key="my_labels.regions",
        column_order=columns,
        column_config={
            "n_regions": st.column_config.NumberColumn("regions"),
            "seconds": st.column_config.NumberColumn("seconds", format="%.1f"),
            "adjudicated": st.column_config.CheckboxColumn("final set saved"),
        },
    )
    common.csv_download(recent, file_name=f"my-recordings-{project.name}.csv", key="my_labels.download")
    names = dict(zip(recent["clip_id"].astype(int), recent["recording"], strict=True))
    left, right = st.columns([4, 1], vertical_alignment="bottom")
    clip_id = left.selectbox(
        "Open a recording you submitted",
        list(names),
        format_func=lambda c: f"{names[c]} (recording {c})",
        key="my_labels.recording",
    )
    row = recent.set_index("clip_id").loc[clip_id]
    if row["changed_after_final"]:
        st.warning(
            "You changed your regions of this recording after a reviewer saved its final set: it is "
            "back on the Review page.",
            icon=":material/history:",
        )
    elif row["adjudicated"]:
        st.info(
            "A reviewer has saved this recording's final regions. You can still correct yours; a change "
            "sends the recording back to the reviewer.",
            icon=":material/gavel:",
        )
    if right.button("Open in the editor", key="my_labels.open", type="primary"):
        open_recording(project.id, user.id, int(clip_id))
        st.switch_page(LABEL_PAGE, query_params=common.project_params())
