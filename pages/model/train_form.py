"""The "train the fixed model" form of the Error analysis and Runs pages (no page of its own): on the
current final labels or on a frozen dataset version, so Runs can show the data diff between runs."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from labeling.data.projects import ProjectInfo
from labeling.data.versions import list_versions
from labeling.model.runs import RunError, RunSummary, get_run
from labeling.platform.auth import UserInfo
from labeling.platform.workspace import Workspace
from pages.widgets import job_status

CURRENT = ""


def _data_of(run: Any) -> str:
    if not isinstance(run.version, str):
        return "live labels (stored before runs were frozen)"
    return f"version {run.version}" if run.version_kind == "named" else run.version


def run_labels(runs: pd.DataFrame) -> dict[int, str]:
    """``#3 fixed model on v2 · builtin · version v2`` per run id of :func:`labeling.model.runs.list_runs`."""
    return {int(r.run_id): f"#{r.run_id} {r.name} · {r.kind} · {_data_of(r)}" for r in runs.itertuples()}


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
                "the current final labels (frozen as a snapshot first)" if v == CURRENT else f"version {v}"
            ),
            help="Every run reads frozen data, so it can be repeated and compared, data diff included: "
            "a dataset version, or the current labels frozen as a snapshot when training starts. "
            "Freeze and name versions on the Data page.",
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
