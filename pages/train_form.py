"""The "train the fixed model" form of the Error analysis and Runs pages (no page of its own): on the
current final labels or on a frozen dataset version, so Runs can show the data diff between runs."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from labeling.auth import UserInfo
from labeling.progress import fraction, progress_text
from labeling.projects import ProjectInfo
from labeling.runs import RunError, RunSummary, train_run
from labeling.versions import list_versions
from labeling.workspace import Workspace

CURRENT = ""


def run_labels(runs: pd.DataFrame) -> dict[int, str]:
    """``#3 fixed model on v2 · builtin · version v2`` per run id of :func:`labeling.runs.list_runs`."""
    return {
        int(r.run_id): f"#{r.run_id} {r.name} · {r.kind} · "
        + (f"version {r.version}" if isinstance(r.version, str) else "current labels")
        for r in runs.itertuples()
    }


def train_form(ws: Workspace, project: ProjectInfo, user: UserInfo, *, key: str) -> RunSummary | None:
    """Draw the form; return the new run in the rerun that trained it, else None."""
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
    if not go:
        return None
    bar = st.progress(0.0, text="Reading the labels…")
    try:
        return train_run(
            ws,
            project.id,
            version=version or None,
            name=f"fixed model on {version}" if version else None,
            actor_id=user.id,
            progress=lambda stage, done, total: bar.progress(
                fraction(done, total), text=progress_text(stage, done, total)
            ),
        )
    except RunError as exc:
        st.error(str(exc))
        return None
    finally:
        bar.empty()
