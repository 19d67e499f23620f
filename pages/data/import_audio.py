"""Import: upload audio (files or a zip) with an optional metadata CSV, or read a server folder; or add
a production batch (a prediction log with its audio, or audio the live model scores)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from labeling.data.formats.base import FormatError
from labeling.data.importer import (
    SOURCE_FORMATS,
    ImportRefused,
    ImportReport,
    import_uploads,
    not_imported_table,
)
from labeling.data.projects import TASK_KINDS, ProjectError, create_project, parse_tag_groups, split_names
from pages.data.production_form import production_form
from pages.widgets import common, job_status

FORMAT_NAMES = {
    "auto": "Detect automatically",
    "folder": "Folder or zip of audio files",
    "labelstudio": "Label Studio export (JSON, JSON_MIN or CSV)",
    "commonvoice": "Common Voice release (a TSV beside clips/)",
    "audiofolder": "Hugging Face audiofolder (metadata.csv or .jsonl)",
    "nemo": "NeMo manifest (or a folder of them)",
    "kaldi": "Kaldi data directory (wav.scp, text, utt2spk, segments)",
    "librispeech": "LibriSpeech-style tree (*.trans.txt beside the audio)",
}
user = common.require_permission("manage_data")  # checked on every rerun, also when opened by URL
ss = st.session_state
st.title("Import audio")
st.caption(
    "WAV, FLAC, OGG and anything else libsndfile reads. The same bytes are only ever stored once; "
    "bad files are skipped with a reason and the rest lands in one transaction."
)
existing = [p.name for p in common.projects()]


def _create_project() -> None:
    try:
        with common.workspace().db.write() as s:
            made = create_project(
                s,
                name=ss["import.new.name"],
                task_kind=ss["import.new.kind"],
                classes=split_names(ss["import.new.classes"]),
                tag_groups=parse_tag_groups(ss["import.new.tags"]),
                annotations_per_clip=int(ss["import.new.k"]),
                actor_id=user.id,
            )
    except ProjectError as exc:
        ss["import.flash"] = ("error", f"The project was not created: {exc}.")
        return
    common.select_project(made.name)
    ss["import.project"] = made.name
    ss["import.flash"] = ("success", f"Created {made.name!r}; import its audio below.")


with (
    st.expander("New project", icon=":material/add:", expanded=not existing),
    st.form("import.new_project", clear_on_submit=True),
):
    left, right = st.columns([3, 1])
    left.text_input("Name", key="import.new.name")
    right.selectbox("Task", TASK_KINDS, key="import.new.kind")
    left.text_input("Classes (comma-separated)", key="import.new.classes", placeholder="yes, no, up, down")
    right.number_input("Annotations per clip (k)", 1, 50, 1, key="import.new.k")
    st.text_area(
        "Tag groups (one per line: group: value, value)",
        key="import.new.tags",
        placeholder="noise: car, babble\nchannel: telephone",
        height=80,
    )
    st.form_submit_button("Create project", on_click=_create_project)
flash = ss.pop("import.flash", None)
if flash:
    (st.success if flash[0] == "success" else st.error)(flash[1])
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

upload_tab, folder_tab, production_tab = st.tabs(["Upload", "On the server", "Production traffic"])
report: ImportReport | None = None
progress_slot = st.empty()


def _progress(done: int, total: int) -> None:
    progress_slot.progress(done / max(total, 1), text=f"Reading {done:,} of {total:,} files")


def _run(fn, *args, **kwargs) -> ImportReport | None:
    if not project.strip():
        st.error("Name the project to import into.")
        return None
    try:
        return fn(common.workspace(), *args, **kwargs)
    except (FormatError, ImportRefused, ProjectError) as exc:
        st.error(str(exc))
        return None


with upload_tab, st.form("import.upload_form", clear_on_submit=False):
    files = st.file_uploader("Audio files or zips", accept_multiple_files=True, key="import.files")
    meta = st.file_uploader("Metadata CSV (optional)", type=["csv"], key="import.meta")
    if st.form_submit_button("Import uploaded files", type="primary", key="import.upload") and files:
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
    folder = st.text_input("Folder, zip or exported file on the server", key="import.folder")
    fmt_col, root_col = st.columns(2)
    fmt = fmt_col.selectbox(
        "Format", SOURCE_FORMATS, format_func=lambda f: FORMAT_NAMES.get(f, f), key="import.format"
    )
    audio_root = root_col.text_input(
        "Audio folder (optional)",
        key="import.audio_root",
        help="Where the source's audio references point: Label Studio's upload or local-files folder, "
        "Common Voice's clips/… Nothing outside it (or the source's own folder) is read.",
    )
    meta_path = st.text_input("Metadata CSV on the server (optional)", key="import.meta_path")
    if st.form_submit_button("Import", type="primary", key="import.folder_go") and folder:
        if not project.strip():
            st.error("Name the project to import into.")
        else:
            # A large import: run by a worker (which must see this path), surviving a closed tab.
            source = {"path": folder, "project": project.strip(), "fmt": fmt, "audio_root": audio_root}
            options = {"pattern": pattern, "metadata": meta_path, "join": join, "group_by": group_by}
            job_status.start(
                "import",
                user,
                project_id=None,
                params={**source, **{k: v or None for k, v in options.items()}},
                scope=f"import:{project.strip()}",
            )
with folder_tab:
    job = job_status.show(job_status.latest("import", owner_id=user.id), user, key="import.job")
    left_out = not_imported_table(job.result or {}) if job is not None else None
    if left_out is not None and not left_out.empty:
        st.dataframe(left_out, hide_index=True, key="import.job_rejected")

with production_tab:
    production_form(user, project)

if report is not None:
    ss["import.report"] = report
    if ss.get("app.project") != report.project:
        common.select_project(report.project)  # the sidebar was drawn before this import
        st.rerun()
report = ss.pop("import.report", None)
if report is not None:
    progress_slot.empty()
    (st.success if not report.rejected and not report.ignored else st.warning)(report.summary())
    if report.created_project:
        st.page_link(
            "pages/data/settings.py",
            label=f"Set the classes, tags and k of {report.project!r} in Project settings",
            icon=":material/tune:",
            query_params={common.PROJECT_PARAM: report.project},
        )
    if report.n_annotations or report.n_resolutions:
        st.caption(
            f"Read as {report.source_format}: {report.n_annotations:,} annotations and "
            f"{report.n_resolutions:,} final labels imported."
        )
    left_out = not_imported_table(report.to_dict())
    if not left_out.empty:
        st.subheader(f"Not imported ({len(left_out):,})")
        st.dataframe(left_out, hide_index=True, key="import.rejected")
    if report.warnings:
        st.subheader("Notes")
        st.dataframe(
            pd.DataFrame([{"file": p.ref, "note": p.reason} for p in report.warnings]),
            hide_index=True,
            key="import.warnings",
        )
