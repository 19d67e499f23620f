"""My labels: an annotator's recent annotations, editable until a reviewer adjudicates the clip."""

from __future__ import annotations

import streamlit as st

from labeling.annotate.annotations import AnnotationError, edit_annotation, my_annotations
from pages.labeling import my_labels_regions
from pages.widgets import common

user = common.require_permission("label")
project = common.current_project()
ws = common.workspace()
if project.labels_regions:  # long recordings: the recordings submitted, with their regions
    my_labels_regions.show(project, user, ws)
    st.stop()

st.title("My labels")
st.caption("Your most recent labels in this project. Select one to change it; adjudicated clips are locked.")
with ws.db.read() as s:
    recent = my_annotations(s, project.id, user.id, limit=50)
if recent.empty:
    st.info("You have not labelled anything in this project yet.")
    st.stop()

shown = ["clip_id", "label", "transcript", "tags", "unsure", "cannot_label_reason", "updated_at", "locked"]
columns = [c for c in shown if c != "transcript" or project.transcribes]
event = st.dataframe(
    recent,
    hide_index=True,
    key="my_labels.table",
    on_select="rerun",
    selection_mode="single-row",
    column_order=columns,
)
common.csv_download(recent[columns], file_name=f"my-labels-{project.name}.csv", key="my_labels.download")
if not event.selection.rows:
    st.stop()
row = recent.iloc[event.selection.rows[0]]
if row["locked"]:
    st.info("A reviewer has adjudicated this clip; your label is locked.", icon=":material/lock:")
    st.stop()

aid = int(row["annotation_id"])
with st.form(f"my_labels.edit.{aid}"):
    st.subheader(f"Clip {int(row['clip_id'])}")
    classes = [None, *project.classes]
    new_label = (
        st.selectbox(
            "Class",
            classes,
            index=classes.index(row["label"]) if row["label"] in classes else 0,
            key=f"my_labels.class.{aid}",
        )
        if project.classifies
        else None
    )
    new_text = (
        st.text_input("Transcript", row["transcript"] or "", key=f"my_labels.transcript.{aid}")
        if project.transcribes
        else None
    )
    tags = project.all_tags
    new_tags = st.multiselect(
        "Tags", tags, [t for t in row["tags"] if t in tags], key=f"my_labels.tags.{aid}"
    )
    new_unsure = st.checkbox("Unsure", bool(row["unsure"]), key=f"my_labels.unsure.{aid}")
    saved = st.form_submit_button("Save changes", type="primary", key=f"my_labels.save.{aid}")
if saved:
    try:
        with ws.db.write() as s:
            result = edit_annotation(
                s, aid, user.id, label=new_label, transcript=new_text, tags=new_tags, unsure=new_unsure
            )
    except AnnotationError as exc:
        st.error(str(exc))
    else:
        (st.success if result.ok else st.warning)(f"Clip {result.clip_id}: {result.message}")
