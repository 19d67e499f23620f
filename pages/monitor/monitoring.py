"""Monitoring: production batches against the live model's reference — drift per measure, the software,
input and output families side by side, the clips in the tails, and the loop back into labeling."""

from __future__ import annotations

import streamlit as st

from labeling.monitor.alarms import missing_labels_note
from labeling.monitor.settings import MonitoringError
from labeling.monitor.view import MonitoringView, monitoring_fingerprint, monitoring_view, tag_breakdown
from pages.monitor import charts_monitoring as charts
from pages.monitor import monitoring_loop
from pages.widgets import common, job_status, plots

user = common.require_permission("manage_data")
project = common.current_project()
ws = common.workspace()
ss = st.session_state


@st.cache_data(ttl=60, max_entries=8, show_spinner="Reading the batches…")
def _view(project_id: int, token: tuple[object, ...]) -> MonitoringView:
    # Keyed on labels and monitoring changes: a click on a tile or the batch box reruns for free.
    # The short ttl lets a snooze run out on time.
    return monitoring_view(ws, project_id)


@st.cache_data(ttl=60, max_entries=16, show_spinner=False)
def _tags(project_id: int, batch: str, token: tuple[object, ...]):
    return tag_breakdown(ws, project_id, batch)


with ws.db.read() as s:
    token = (*common.data_token(project.id), *monitoring_fingerprint(s, project.id))
st.title("Monitoring")
view = _view(project.id, token)
monitoring_loop.live_model_panel(ws, project, user, view, token)
batches = view.summary.batches
if batches.empty:
    st.info(
        "No production traffic yet. Log a batch with `earmark import LOG --project "
        f"{project.name} --production --batch NAME` (a prediction log, or a folder the live model scores)."
    )
    st.stop()

if view.summary.alarm:  # every batch whose alarm stands, not only the newest
    st.error(
        "Alarm (stands until acknowledged or snoozed): " + "; ".join(view.summary.reasons),
        icon=":material/notifications_active:",
    )
elif view.summary.snoozed_until is not None:
    st.info(
        f"Alarms snoozed until {view.summary.snoozed_until:%Y-%m-%d %H:%M} UTC.", icon=":material/snooze:"
    )

names = batches["name"].tolist()
left, right = st.columns([3, 1])
batch = left.selectbox(
    "Batch", names, index=len(names) - 1, key="monitoring.batch", on_change=monitoring_loop.forget_pick
)
row = batches[batches["name"] == batch].iloc[-1]
right.metric(
    "Level",
    str(row["level"]).replace("_", " "),
    help="none: no drift · warning: one drifted batch · alarm: two in a row, a very small p-value or "
    f"an accuracy or WER change · too small: under {view.min_batch} clips, no verdict (never an alarm)",
)
if right.button("Check for drift", key="monitoring.check", icon=":material/radar:"):
    job_status.start("drift", user, project_id=project.id, params={"batch": batch})
monitoring_loop.drift_job(job_status.latest("drift", project_id=project.id), user)
if row["reasons"]:
    st.caption("Why: " + row["reasons"])
note = row["accuracy_note"]
if isinstance(note, str) and note and note not in row["reasons"]:  # accuracy said, drifted or not
    st.caption(note[0].upper() + note[1:] + ".")
wer = row.get("wer")
if isinstance(wer, dict) and (wer.get("batch") or {}).get("n"):  # transcription: concept drift by WER
    ref_wer, bat_wer = (wer.get("reference") or {}).get("wer"), (wer.get("batch") or {}).get("wer")
    change = wer.get("change") or {}
    st.metric(
        "WER on the labelled random sample",
        "—" if bat_wer is None else f"{100 * bat_wer:.1f}%",
        delta=None if change.get("difference") is None else f"{change['difference']:+.1f} points",
        delta_color="inverse",
        help="word error rate of the live model's transcripts against the final ones; the change is "
        "against the reference"
        + ("" if ref_wer is None else f" ({100 * ref_wer:.1f}%)")
        + (
            ""
            if change.get("ci_low") is None
            else f", {100 * change['confidence']:g}% bootstrap interval "
            f"{change['ci_low']:+.1f} to {change['ci_high']:+.1f} points"
        ),
    )
    said = row["wer_note"]
    if isinstance(said, str) and said and said not in row["reasons"]:
        st.caption(said[0].upper() + said[1:] + ".")
missing = missing_labels_note(int(row["labels_missing"]), view.summary.min_labels)
if missing and row["level"] != "unchecked":
    st.caption(missing[0].upper() + missing[1:] + ".")

measures = view.measures
families = [("Software", "software"), ("Input", "input"), ("Output", "output")]
columns = st.columns(3)
for (title, family), col in zip(families, columns, strict=True):
    col.subheader(title)
    if family == "software":
        for column, label, unit in (
            ("latency_p50", "Latency p50", "ms"),
            ("latency_p95", "Latency p95", "ms"),
            ("requests_per_min", "Requests per minute", ""),
            ("error_rate", "Errors", "%"),
            ("empty_rate", "Empty outputs", "%"),
            ("retry_rate", "Retries", "%"),
            ("typing_rate", "Switched to typing", "%"),
        ):
            fig = charts.software_tile(
                view.software, column, label=label, unit=unit, min_batch=view.min_batch
            )
            plots.show(col, fig, key=f"monitoring.sw.{column}")
        continue
    if measures.empty:
        col.caption("No drift check yet: check a batch above.")
        continue
    for name in [m for m in view.order if (measures["measure"] == m).any()]:
        rows = measures[(measures["measure"] == name) & (measures["family"] == family)]
        if rows.empty:
            continue
        key = f"monitoring.tile.{name}"
        plots.show(
            col,
            charts.measure_tile(rows, min_batch=view.min_batch),
            key=key,
            on_select=lambda k=key: monitoring_loop.pick_measure(k),
            selection_mode="points",
        )
st.caption(
    "Points: the batch's median (or share); green band: the reference's 5th–95th percentile; red: drifted; "
    "grey: too few clips to judge. Click a point to compare its distributions and listen to its tails."
)

picked = ss.get("monitoring.measure")
if picked:
    monitoring_loop.measure_panel(ws, project, ss.get("monitoring.picked_batch", batch), picked, token)

st.subheader("By tag")
try:
    st.dataframe(
        _tags(project.id, batch, token),
        hide_index=True,
        key="monitoring.tags",
        column_config={
            "n_labelled": st.column_config.NumberColumn(
                "labelled",
                help="clips of the slice in the labelled random sample, which accuracy is measured on",
            ),
            "accuracy": st.column_config.NumberColumn(format="percent"),
        },
    )
except MonitoringError as exc:
    st.caption(str(exc))

monitoring_loop.loop_panel(ws, project, user, batch, view, token)
