"""The Import page's production-traffic tab (no page of its own): a prediction log with its audio, or
audio for the live model to score, logged as a production batch by a worker."""

from __future__ import annotations

import streamlit as st

from labeling.data.importer import not_imported_table
from labeling.monitor.production import ProductionError
from labeling.monitor.production_upload import discard_upload, live_model_missing, production_job_params
from labeling.platform.auth import UserInfo
from pages.widgets import common, job_status

MONITORING = "pages/monitor/monitoring.py"


def production_form(user: UserInfo, project_name: str) -> None:
    """The form, or why it cannot be used yet, and the latest production batch job's progress."""
    project = next((p for p in common.projects() if p.name == project_name.strip()), None)
    if project is None:
        st.info("Production traffic goes into an existing project: name one above.")
        return
    ws = common.workspace()
    missing = live_model_missing(ws, project.id)
    if missing:
        st.warning(missing, icon=":material/rocket_launch:")
        # A button rather than a link: this shows on the page's first render, where a link would need
        # the app's navigation to exist (it does not when the page runs on its own).
        if st.button("Mark the live model on Monitoring", key="import.production.to_monitoring"):
            st.switch_page(MONITORING, query_params=common.project_params())
        return
    st.caption(
        "A prediction log (JSON Lines, one request per line, its audio named relative to it) zipped with "
        "its audio, or plain audio that the live model scores. Kept apart from train/dev/test; lines "
        "that cannot be taken are listed with the reason. A worker does the work: it goes on if you "
        "close the tab."
    )
    with st.form("import.production_form"):
        batch = st.text_input(
            "Batch name", key="import.production.batch", placeholder="2026-11-30", help="Usually the day."
        )
        files = st.file_uploader(
            "A zip holding the log and its audio, or audio files",
            accept_multiple_files=True,
            key="import.production.files",
        )
        left, right = st.columns(2)
        path = left.text_input(
            "…or a log, folder of audio or zip on the server",
            key="import.production.path",
            help="Read on the worker's machine.",
        )
        audio_root = right.text_input(
            "Audio folder of that log (optional)",
            key="import.production.audio_root",
            help="Where the log's audio paths point; by default the log's own folder.",
        )
        go = st.form_submit_button("Log the batch", type="primary", key="import.production.go")
    if go:
        try:
            params = production_job_params(
                ws,
                project.id,
                batch=batch,
                files=[(f.name, f.getvalue()) for f in files or []],
                path=path,
                audio_root=audio_root,
            )
        except ProductionError as exc:
            st.error(str(exc))
        else:
            started = job_status.start("production_import", user, project_id=project.id, params=params)
            if started is None and params.get("upload"):
                discard_upload(params["upload"])
            elif started is not None and st.session_state.get("app.project") != project.name:
                common.select_project(project.name)  # Monitoring, linked below, shows this project
                st.rerun()
    job = job_status.show(
        job_status.latest("production_import", project_id=project.id), user, key="import.production.job"
    )
    if job is None:
        return
    left_out = not_imported_table(job.result or {})
    if not left_out.empty:
        st.subheader(f"Not taken ({len(left_out):,})")
        st.dataframe(left_out, hide_index=True, key="import.production.rejected")
    if job.status == "succeeded" and job.result and job.result.get("batch_id"):
        st.page_link(
            MONITORING,
            label=f"Check batch {job.result['batch']!r} for drift on Monitoring",
            icon=":material/monitor_heart:",
            query_params=common.project_params(),
        )
