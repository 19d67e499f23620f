"""The Monitoring page's panels (no page of its own): the live model, a measure's distributions and tail
clips, and the loop back — send to labeling, add to the next version, acknowledge / snooze /
rebaseline, shadow comparison. Each bulk action shows what it will change before it is confirmed."""

from __future__ import annotations

from typing import Any

import streamlit as st

from labeling.data.projects import ProjectInfo
from labeling.data.versions import list_versions
from labeling.model.runs import list_runs
from labeling.monitor.alarms import acknowledge, snooze
from labeling.monitor.live import mark_live, rebaseline
from labeling.monitor.loop import admit_labelled, labeling_sample, sample_sent, send_to_labeling
from labeling.monitor.settings import MonitoringError, project_settings
from labeling.monitor.shadow import shadow_comparison
from labeling.monitor.view import MeasureDetail, MonitoringView, measure_detail
from labeling.platform.auth import UserInfo
from labeling.platform.jobs import JobInfo
from labeling.platform.workspace import Workspace
from pages.model.train_form import run_labels
from pages.monitor import charts_monitoring as charts
from pages.widgets import common, job_status, plots
from pages.widgets.charts import raw_value

ss = st.session_state
Token = tuple[object, ...]  # the Monitoring page's cache key: labels and monitoring changes
#: How a finished drift check shows a level worth attention.
LEVEL_BOXES = {
    "alarm": (st.error, ":material/notifications_active:"),
    "warning": (st.warning, ":material/warning:"),
}


@st.cache_data(ttl=60, max_entries=8, show_spinner=False)
def _runs(project_id: int, token: Token):
    with common.workspace().db.read() as s:
        return list_runs(s, project_id)


@st.cache_data(ttl=60, max_entries=16, show_spinner="Reading the distributions…")
def _detail(project_id: int, batch: Any, measure: str, token: Token) -> MeasureDetail:
    return measure_detail(common.workspace(), project_id, batch, measure)


def pick_measure(chart: str) -> None:
    """A tile's point was clicked: show that measure of that batch below."""
    points = (ss.get(chart) or {}).get("selection", {}).get("points") or []
    if points and points[0].get("customdata"):
        batch_id, measure = raw_value(points[0]["customdata"][:2])
        ss["monitoring.measure"] = str(measure)
        ss["monitoring.picked_batch"] = int(batch_id)


def forget_pick() -> None:
    """Another batch was chosen: the measure picked on the last one's tiles no longer applies."""
    for key in ("monitoring.measure", "monitoring.picked_batch"):
        ss.pop(key, None)


def live_model_panel(
    ws: Workspace, project: ProjectInfo, user: UserInfo, view: MonitoringView, token: Token
) -> None:
    live = view.live
    if live is not None:
        st.caption(
            f"Live model: run {live.run_id} ({live.run_name}) · reference: {live.reference_version or 'none'}"
            f" (its dev/test clips) · since {live.since:%Y-%m-%d %H:%M} UTC"
        )
    runs = _runs(project.id, token)
    with st.expander("Mark the live model", expanded=live is None, icon=":material/rocket_launch:"):
        if runs.empty:
            st.caption("Train a model first (Error analysis page, or `earmark train`).")
            return
        labels = run_labels(runs)
        with st.form("monitoring.live_form"):
            run_id = st.selectbox(
                "Deployed run", list(labels), format_func=labels.__getitem__, key="monitoring.live_run"
            )
            go = st.form_submit_button("Mark as live", key="monitoring.live_go")
        if go and run_id is not None:
            try:
                mark_live(ws, project.id, int(run_id), actor_id=user.id)
            except MonitoringError as exc:
                st.error(str(exc))
            else:
                st.rerun()


def _audio(ws: Workspace, key: str, where: Any) -> None:
    # Production clips are not project clips: a missing file is reported, never flagged on a clip.
    ws.store.fetch_many([key])
    path = ws.store.path(key)
    if path.is_file():
        where.audio(str(path))
    else:
        where.warning("This request's audio is missing from the store.", icon=":material/music_off:")


def measure_panel(ws: Workspace, project: ProjectInfo, batch: Any, measure: str, token: Token) -> None:
    try:
        detail = _detail(project.id, batch, measure, token)
    except MonitoringError as exc:
        st.warning(str(exc))
        return
    st.subheader(f"{detail.label}: reference vs batch")
    plots.show(
        st,
        charts.distributions(
            detail.reference, detail.batch, label=detail.label, unit=detail.unit, kind=detail.kind
        ),
        key="monitoring.detail",
    )
    if detail.tails.empty:
        return
    st.caption("The batch's clips furthest out, beyond the reference's 5th–95th percentile where any are:")
    cols = st.columns(3)
    for i, row in enumerate(detail.tails.itertuples()):
        where = cols[i % 3]
        where.markdown(f"**{row.side}** · {row.value:.3g} {detail.unit} · `{row.original_name}`")
        _audio(ws, row.storage_key, where)


def loop_panel(
    ws: Workspace, project: ProjectInfo, user: UserInfo, batch: str, view: MonitoringView, token: Token
) -> None:
    st.subheader("Close the loop")
    label_tab, version_tab, alarm_tab, shadow_tab = st.tabs(
        ["Send to labeling", "Add to the next version", "Alarm", "Shadow comparison"]
    )
    with label_tab:
        _send_to_labeling(ws, project, user, batch)
    with version_tab:
        st.caption(
            "Labelled production clips stay out of dataset versions until added here; the next version "
            "made on the Data page then holds them."
        )
        st.metric("Labelled, waiting", f"{view.waiting:,}")
        if view.waiting and st.button(
            f"Add {view.waiting:,} clips to the next version", key="monitoring.admit"
        ):
            n = admit_labelled(ws, project.id, actor_id=user.id)
            st.success(f"{n:,} clips will be in the next dataset version.")
    with alarm_tab:
        _alarm_actions(ws, project, user, batch)
    with shadow_tab:
        _shadow(ws, project, batch, token)


def _send_to_labeling(ws: Workspace, project: ProjectInfo, user: UserInfo, batch: str) -> None:
    rules = project_settings(project)
    st.caption(
        f"A uniform random {rules['sample_fraction']:.0%} of the batch (at least "
        f"{max(int(rules['sample_minimum']), int(rules['min_labels']))} clips, enough for the accuracy "
        "test once they are labelled), so accuracy estimates stay unbiased, plus its most "
        "atypical, least confident and empty-output clips — with a queue priority. Clips sent before "
        "count toward these numbers."
    )
    sent = sample_sent(ws, project.id, batch)
    if sent.n:
        st.info(
            f"{sent.describe()} Its random sample holds {sent.random:,} of the {sent.random_target:,} "
            "clips the rules ask for.",
            icon=":material/playlist_add_check:",
        )
    more = st.number_input(
        "Extra random clips, beyond the rules",
        min_value=0,
        max_value=max(0, sent.n_batch - sent.random),
        value=0,
        step=5,
        key="monitoring.more_random",
        help="Grows the batch's random sample (a tighter accuracy estimate). Left at 0, a preview "
        "offers only what the sample still lacks.",
    )
    if st.button("Preview the sample", key="monitoring.sample_preview"):
        ss["monitoring.sample"] = (
            batch,
            sent,
            labeling_sample(ws, project.id, batch, more_random=int(more)),
        )
    previewed, seen, sample = ss.get("monitoring.sample") or (None, None, None)
    if sample is None or seen is None or previewed != batch:  # a preview of another batch is not this one's
        return
    if sample.empty:
        st.success(
            "Nothing to add: the batch's sample is complete under the project's rules. "
            "Ask for extra random clips above to grow it.",
            icon=":material/task_alt:",
        )
        return
    st.dataframe(sample, hide_index=True, key="monitoring.sample_table")
    counts = ", ".join(
        f"{n} {reason.replace('_', ' ')}" for reason, n in sample["reason"].value_counts().items()
    )
    n_random = int((sample["reason"] == "random").sum())
    moved = int(sample["sent_before"].notna().sum())
    if seen.n:
        label = (
            f"Add {len(sample):,} clips to this batch's sample ({counts}): its random sample grows "
            f"from {seen.random:,} to {seen.random + n_random:,}"
            + (f"; {moved} of them, queued before for another reason, join it" if moved else "")
        )
    else:
        label = f"Send these {len(sample):,} clips to labeling ({counts})"
    if st.button(label, type="primary", key="monitoring.send"):
        try:
            n = send_to_labeling(ws, project.id, batch, sample, previewed=seen, actor_id=user.id)
        except MonitoringError as exc:
            st.error(str(exc))
        else:
            ss.pop("monitoring.sample", None)
            st.success(f"{n:,} clips queued for labeling.")


def drift_job(job: JobInfo | None, user: UserInfo) -> None:
    """The latest drift check: live while it runs; once done, in the colour of the level it found
    (an alarm is not a green success)."""
    level = (job.result or {}).get("level") if job is not None and job.status == "succeeded" else None
    if job is None or level not in LEVEL_BOXES:
        job_status.show(job, user, key="monitoring.job")
        return
    box, icon = LEVEL_BOXES[level]
    who = f", started by {job.owner}" if job.owner else ""
    box(f"{job.message} (drift check, job {job.id}{who})", icon=icon)
    with st.expander("Log"):
        st.code(job.log or "(empty)", language=None)


def _alarm_actions(ws: Workspace, project: ProjectInfo, user: UserInfo, batch: str) -> None:
    def answer(action: str) -> None:
        # A button callback: the note is used once, then cleared, and the tab says what was done.
        note = ss.pop("monitoring.note", "") or ""
        if action == "ack":
            acknowledge(ws, project.id, batch, note=note, actor_id=user.id)
            ss["monitoring.alarm_flash"] = f"Alarm of batch {batch!r} acknowledged."
        else:
            hours = float(ss.get("monitoring.snooze_h", 24))
            snooze(ws, project.id, hours=hours, note=note, actor_id=user.id)
            ss["monitoring.alarm_flash"] = f"Alarms snoozed for {hours:g} h."

    if flash := ss.pop("monitoring.alarm_flash", None):
        st.success(flash)
    left, right = st.columns(2)
    left.text_input("Note", key="monitoring.note", placeholder="why")
    left.button(f"Acknowledge {batch!r}", key="monitoring.ack", on_click=answer, args=("ack",))
    right.number_input("Snooze hours", min_value=1, max_value=720, value=24, key="monitoring.snooze_h")
    right.button("Snooze alarms", key="monitoring.snooze", on_click=answer, args=("snooze",))
    with ws.db.read() as s:
        versions = list_versions(s, project.id)
    if versions.empty:
        return
    with st.form("monitoring.rebaseline"):
        st.caption("Rebaseline: measure every batch from now on against another version (audited).")
        version = st.selectbox(
            "Reference version", versions["name"].tolist(), key="monitoring.rebase_version"
        )
        why = st.text_input("Why (required)", key="monitoring.rebase_note")
        if st.form_submit_button("Rebaseline", key="monitoring.rebase_go"):
            try:
                rebaseline(ws, project.id, version, note=why, actor_id=user.id)
            except MonitoringError as exc:
                st.error(str(exc))
            else:
                st.success(f"The reference is now {version!r}.")


def _shadow(ws: Workspace, project: ProjectInfo, batch: str, token: Token) -> None:
    runs = _runs(project.id, token)
    runs = runs[runs["kind"] == "builtin"] if "kind" in runs else runs
    if runs.empty:
        st.caption("No candidate runs: train one on a newer version first.")
        return
    labels = run_labels(runs)
    candidate = st.selectbox(
        "Candidate run", list(labels), format_func=labels.__getitem__, key="monitoring.candidate"
    )
    if st.button("Compare on this batch", key="monitoring.shadow_go") and candidate is not None:
        with st.spinner("Scoring the batch with the candidate…"):
            try:
                ss["monitoring.shadow"] = shadow_comparison(ws, project.id, batch, int(candidate))
            except MonitoringError as exc:
                st.error(str(exc))
    report = ss.get("monitoring.shadow")
    if report is None:
        return
    cols = st.columns(4)
    cols[0].metric("Disagreement", f"{report.disagreement:.1%}", help=f"on {report.n:,} requests")
    fmt = lambda a: "—" if a is None else f"{a:.1%}"  # noqa: E731
    cols[1].metric("Live accuracy", fmt(report.live_accuracy), help=f"{report.n_labelled} labelled")
    cols[2].metric("Candidate accuracy", fmt(report.candidate_accuracy))
    cols[3].metric("McNemar p", f"{report.p_value:.3g}")
    st.info(report.recommendation)
    if not report.per_tag.empty:
        st.dataframe(report.per_tag, hide_index=True, key="monitoring.shadow_tags")
