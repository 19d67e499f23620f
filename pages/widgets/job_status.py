"""Starting a background job from a page, and its live progress (read from the database, so it shows
after a reload and on every app server)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from labeling.platform.auth import UserInfo, allowed
from labeling.platform.jobs import (
    JobBusy,
    JobError,
    JobInfo,
    cancel_job,
    get_job,
    job_kinds,
    latest_job,
    submit_job,
)
from pages.widgets import common

#: How often a running job's panel looks at the database again.
REFRESH_S = 1.0
STATUS_ICONS = {
    "queued": ":material/schedule:",
    "running": ":material/progress_activity:",
    "succeeded": ":material/check_circle:",
    "failed": ":material/error:",
    "cancelled": ":material/cancel:",
}


def start(
    kind: str,
    user: UserInfo,
    *,
    project_id: int | None,
    params: Mapping[str, Any] | None = None,
    scope: str | None = None,
) -> JobInfo | None:
    """Queue a job; when one of its kind is already active there, say so and return None."""
    needs = job_kinds()[kind].permission
    if not allowed(user.role, needs):
        st.error(f"The {user.role} role cannot start this job.")
        return None
    try:
        with common.workspace().db.write() as s:
            job = submit_job(s, kind, project_id=project_id, owner_id=user.id, params=params, scope=scope)
    except JobBusy as exc:
        st.warning(str(exc), icon=":material/hourglass_top:")
        return None
    except JobError as exc:
        st.error(str(exc))
        return None
    st.toast(f"{job.title} queued as job {job.id}")
    return job


def latest(
    kind: str, *, project_id: int | None = None, scope: str | None = None, owner_id: int | None = None
) -> JobInfo | None:
    with common.workspace().db.read() as s:
        return latest_job(s, kind, project_id=project_id, scope=scope, owner_id=owner_id)


def _cancel(job_id: int, user_id: int) -> None:
    try:
        with common.workspace().db.write() as s:
            cancel_job(s, job_id, actor_id=user_id)
    except JobError as exc:
        st.toast(str(exc))


def describe(job: JobInfo) -> str:
    who = f" · started by {job.owner}" if job.owner else ""
    attempt = f" · attempt {job.attempts} of {job.max_attempts}" if job.attempts > 1 else ""
    return f"Job {job.id} · {job.title} · {job.state}{who}{attempt}"


def render(job: JobInfo, user: UserInfo, *, key: str) -> None:
    """One job's state: progress and a cancel button while active, the outcome once finished."""
    icon = STATUS_ICONS.get(job.status)
    if job.active:
        text = job.message + (" — is a worker running? (`earmark worker`)" if job.unclaimed else "")
        st.progress(job.fraction, text=text)
        st.caption(describe(job))
        if not job.cancel_requested:
            st.button(
                "Cancel",
                key=f"{key}.cancel",
                on_click=_cancel,
                args=(job.id, user.id),
                icon=":material/stop_circle:",
            )
    elif job.status == "succeeded":
        st.success(f"{job.message} ({describe(job)})", icon=icon)
    elif job.status == "failed":
        st.error(f"{job.title} failed: {job.error} ({describe(job)})", icon=icon)
    else:
        st.info(f"{job.title} was cancelled ({describe(job)})", icon=icon)
    with st.expander("Log"):
        st.code(job.log or "(empty)", language=None)


@st.fragment(run_every=REFRESH_S)
def _live(job_id: int, user: UserInfo, key: str) -> None:
    with common.workspace().db.read() as s:
        job = get_job(s, job_id)
    if not job.active:
        st.rerun()  # the whole page: it shows the job's result now
    render(job, user, key=key)


def show(job: JobInfo | None, user: UserInfo, *, key: str) -> JobInfo | None:
    """The job's panel: live while it is queued or running, its outcome afterwards."""
    if job is None:
        return None
    if job.active:
        _live(job.id, user, key)
    else:
        render(job, user, key=key)
    return job
