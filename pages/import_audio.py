"""Import: upload audio (files or a zip) with an optional metadata CSV, or read a server folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from labeling.formats.folder import SourceError
from labeling.importer import ImportRefused, ImportReport, import_path, import_uploads
from labeling.projects import ProjectError
from pages import common

common.require_permission("manage_data")  # checked on every rerun, also when opened by URL
st.title("Import audio")
st.caption(
    "WAV, FLAC, OGG and anything else libsndfile reads. The same bytes are only ever stored once; "
    "bad files are skipped with a reason and the rest lands in one transaction."
)
existing = [p.name for p in common.projects()]
project = st.text_input(
    "Project",
    value=st.session_state.get("app.project", ""),
    key="import.project",
    help="An existing project, or a new name to create one.",
)
with st.expander("Names and metadata", expanded=False):
    pattern = st.text_input(
        "File-name pattern (regular expression with named groups)",
        key="import.pattern",
        placeholder=r"(?P<label>\d)_(?P<speaker>[a-z]+)_(?P<index>\d+)\.wav",
        help="Groups become metadata; a group named label or transcript is the clip's existing label.",
    )
    join = st.text_input(
        "Join the metadata CSV on",
        key="import.join",
        placeholder="file_name",
        help="A pattern group (e.g. speaker) or file_name.",
    )
    group_by = st.text_input(
        "Keep each value of this field in one split", value="speaker", key="import.group_by"
    )

upload_tab, folder_tab = st.tabs(["Upload", "Server folder"])
report: ImportReport | None = None
progress_slot = st.empty()


def _progress(done: int, total: int) -> None:
    progress_slot.progress(done / max(total, 1), text=f"Reading {done:,} of {total:,} files")


def _run(fn, *args, **kwargs) -> ImportReport | None:  # type: ignore[no-untyped-def]
    if not project.strip():
        st.error("Name the project to import into.")
        return None
    try:
        return fn(common.workspace(), *args, **kwargs)
    except (SourceError, ImportRefused, ProjectError) as exc:
        st.error(str(exc))
        return None


with upload_tab, st.form("import.upload_form", clear_on_submit=False):
    files = st.file_uploader("Audio files or zips", accept_multiple_files=True, key="import.files")
    meta = st.file_uploader("Metadata CSV (optional)", type=["csv"], key="import.meta")
    if st.form_submit_button("Import uploaded files", type="primary") and files:
        report = _run(
            import_uploads,
            project.strip(),
            [(f.name, f.getvalue()) for f in files],
            metadata=(meta.name, meta.getvalue()) if meta else None,
            pattern=pattern or None,
            join=join or None,
            group_by=group_by or "speaker",
            progress=_progress,
        )

with folder_tab, st.form("import.folder_form"):
    folder = st.text_input("Folder or zip on the server", key="import.folder")
    meta_path = st.text_input("Metadata CSV on the server (optional)", key="import.meta_path")
    if st.form_submit_button("Import folder", type="primary") and folder:
        report = _run(
            import_path,
            Path(folder).expanduser(),
            project.strip(),
            pattern=pattern or None,
            metadata=Path(meta_path).expanduser() if meta_path else None,
            join=join or None,
            group_by=group_by or "speaker",
            progress=_progress,
        )

if report is not None:
    progress_slot.empty()
    st.session_state["app.project"] = report.project
    (st.success if not report.rejected else st.warning)(report.summary())
    if report.rejected:
        st.subheader(f"Rejected ({len(report.rejected):,})")
        st.dataframe(
            pd.DataFrame([{"file": p.ref, "reason": p.reason} for p in report.rejected]),
            hide_index=True,
            key="import.rejected",
        )
    if report.warnings:
        st.subheader("Notes")
        st.dataframe(
            pd.DataFrame([{"file": p.ref, "note": p.reason} for p in report.warnings]),
            hide_index=True,
            key="import.warnings",
        )
