"""Jobs: the background work of every project (training, label issues, features, imports, exports,
drift), live, with its log and result; start one, or cancel one."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from labeling.platform.auth import allowed
from labeling.platform.jobs import JobError, get_job, job_kinds, list_jobs
from pages.widgets import common, job_status

user = common.require_permission("manage_data")
ws = common.workspace()
st.title("Jobs")
st.caption(
    "Long work runs in the background on `earmark worker` processes (`make run` starts one), so it "
    "goes on when you close the tab; any app server shows it."
)

projects = {p.id: p.name for p in common.projects()}
left, right = st.columns([2, 1])
only_this = left.toggle("Only the selected project", value=False, key="jobs.only_project")
show_routine = left.toggle(
    "Show report refreshes",
    value=False,
    key="jobs.show_routine",
    help="Earmark refreshes stored reports (agreement, review ranking) in the background after each "
    "change. They are hidden unless one failed.",
)
selected = next((p for p in common.projects() if p.name == st.session_state.get("app.project")), None)

# Kinds that need more than a project (imports, exports) start from their own pages.
startable = {
    name: kind
    for name, kind in job_kinds().items()
    if kind.needs_project and not kind.needs_params and allowed(user.role, kind.permission)
}
if selected is not None and startable:
    with right.popover("Start a job", icon=":material/play_arrow:"):
        kind = st.selectbox(
            "Kind", list(startable), format_func=lambda k: startable[k].title, key="jobs.start_kind"
        )
        if st.button(f"Start on {selected.name}", key="jobs.start", type="primary"):
            job_status.start(kind, user, project_id=selected.id)


@st.fragment(run_every=2.0)
def job_table() -> None:
    with ws.db.read() as s:
        frame = list_jobs(
            s, project_id=selected.id if only_this and selected else None, hide_routine=not show_routine
        )
    if frame.empty:
        st.info("No jobs yet. Training, label-issue detection, imports from the server and exports run here.")
        return
    frame.insert(1, "project", frame["project_id"].map(projects))
    st.dataframe(
        frame.drop(columns=["project_id"]),
        hide_index=True,
        key="jobs.table",
        column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0)},
    )


job_table()

with ws.db.read() as s:
    recent = list_jobs(
        s, project_id=selected.id if only_this and selected else None, limit=50, hide_routine=not show_routine
    )
# No state in the label: a selectbox keeps showing the label it was chosen with when the label changes
# (a job cancelled or finished meanwhile would read "running"). The table and the panel say the state.
label = dict(zip(recent["job_id"], "#" + recent["job_id"].astype(str) + " " + recent["kind"], strict=True))
job_id = st.selectbox(
    "Details of",
    list(label),
    index=None,
    format_func=label.__getitem__,
    key="jobs.pick",
    placeholder="choose a job",
)
if job_id is not None:
    try:
        with ws.db.read() as s:
            job = get_job(s, int(job_id))
    except JobError as exc:
        st.warning(str(exc))
    else:
        job_status.show(job, user, key="jobs.detail")
        if job.result:
            with st.expander("Result"):
                shown = {k: v for k, v in job.result.items() if k != "candidates"}
                if shown.get("zip"):  # a zip to download: its name, not where the server keeps it
                    shown["zip"] = shown["out"] = Path(str(shown["zip"])).name
                st.json(shown)
