"""The "train the fixed model" form of the Error analysis and Runs pages (no page of its own): on the
current final labels or on a frozen dataset version, so Runs can show the data diff between runs."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from labeling.auth import UserInfo
from labeling.projects import ProjectInfo
from labeling.runs import RunError, RunSummary, get_run
from labeling.versions import list_versions
from labeling.workspace import Workspace
from pages import job_status

CURRENT = ""


def run_labels(runs: pd.DataFrame) -> dict[int, str]:
    """``#3 fixed model on v2 · builtin · version v2`` per run id of :func:`labeling.runs.list_runs`."""
    return {
        int(r.run_id): f"#{r.run_id} {r.name} · {r.kind} · "
        + (f"version {r.version}" if isinstance(r.version, str) else "current labels")
        for r in runs.itertuples()
    }


def train_form(ws: Workspace, project: ProjectInfo, user: UserInfo, *, key: str) -> RunSummary | None:
    """Draw the form and the training job's live progress; return the new run once, in the first rerun
    after its job finished (training runs in a worker, so it survives a reload)."""
    with ws.db.read() as s:
        versions = list_versions(s, project.id)
    newest_first = versions["name"].tolist()[::-1]
    with st.form(f"{key}.train_form", border=False):
        left, right = st.columns([3, 1], vertical_alignment="bottom")
        version = left.selectbox(
            "Train on",
            [*newest_first, CURRENT],
            key=f"{key}.train_on",
            format_func=lambda v: (
                "the current final labels (no dataset version)" if v == CURRENT else f"version {v}"
            ),
            help="A run on a dataset version can be compared with another version's run, data diff included. "
            "Freeze a version on the Data page.",
        )
        go = right.form_submit_button("Train the model", type="primary", key=f"{key}.train")
    job = job_status.latest("train", project_id=project.id)
    if go:
        params = {"version": version or None, "name": f"fixed model on {version}" if version else None}
        job = job_status.start("train", user, project_id=project.id, params=params) or job
    job_status.show(job, user, key=f"{key}.train_job")
    seen = f"{key}.train_seen"
    if job is None or job.status != "succeeded" or st.session_state.get(seen) == job.id:
        return None
    st.session_state[seen] = job.id
    run_id = (job.result or {}).get("run_id")
    if run_id is None:
        return None
    with ws.db.read() as s:
        try:
            return get_run(s, int(run_id))
        except RunError:
            return None  # the run was removed since
