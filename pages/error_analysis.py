"""Error analysis: which slice of the data the model fails on, and which is worth fixing first."""

from __future__ import annotations

import json

import streamlit as st

from labeling import error_analysis as ea
from labeling.runs import list_runs
from pages import charts_errors, common, job_status

user = common.require_role("engineer", "admin")
project = common.current_project()
ws = common.workspace()
ss = st.session_state

st.title("Error analysis")


train_job = job_status.latest("train", project_id=project.id)
with ws.db.read() as s:
    runs = list_runs(s, project.id)
if train_job is not None and train_job.status == "succeeded" and ss.get("errors.seen_job") != train_job.id:
    ss["errors.seen_job"] = train_job.id  # a run just finished: show it
    if (train_job.result or {}).get("run_id") in set(runs.get("run_id", [])):
        ss["errors.run"] = train_job.result["run_id"]  # type: ignore[index]
training = train_job is not None and train_job.active
with st.expander("Train the fixed model", expanded=runs.empty or training, icon=":material/model_training:"):
    st.caption("The same model code every time, trained on the train split of the current final labels.")
    if st.button("Train the model", key="errors.train", type="primary"):
        train_job = job_status.start("train", user, project_id=project.id) or train_job
    job_status.show(train_job, user, key="errors.train_job")
if runs.empty:
    st.info("No model runs yet: train the model above, or run `earmark train --project ...`.")
    st.stop()

by_id = runs.set_index("run_id")
left, right = st.columns([3, 1])
run_id = left.selectbox(
    "Run",
    by_id.index.tolist(),
    key="errors.run",
    format_func=lambda r: (
        f"#{r} {by_id.at[r, 'name']} · {by_id.at[r, 'kind']} · code {by_id.at[r, 'code_fingerprint'][:12]}"
    ),
)
split = right.selectbox("Split", ["test", "dev", "train", "all"], key="errors.split")
st.caption(f"Code fingerprint `{by_id.at[run_id, 'code_fingerprint']}`")


@st.cache_data(ttl=600, max_entries=16, show_spinner="Analysing the run…")
def _analysis(run_id: int, split: str, data: tuple[object, ...], hlp: str) -> ea.RunAnalysis:
    """The run's tables, recomputed only when the project's data or its hand-entered HLP change."""
    with common.workspace().db.read() as s:
        return ea.run_analysis(s, run_id, split=split)


analysis = _analysis(
    run_id, split, common.data_token(project.id), json.dumps(project.settings.get("hlp"), sort_keys=True)
)
overall, report, found = analysis.overall, analysis.report, analysis.discovered
confusion, per_class = analysis.confusion, analysis.per_class
metric = "wer" if "wer" in report.columns else "accuracy"
cols = st.columns(3)
cols[0].metric(metric.upper() if metric == "wer" else "Accuracy", f"{overall.get(metric, float('nan')):.1%}")
cols[1].metric("Clips scored", f"{overall['n']:,}")
cols[2].metric("Errors", f"{overall['errors']:,}")

from_annotations = report[report["hlp_source"] == "annotations"]
auto_hlp = dict(zip(from_annotations["tag"], from_annotations["hlp"], strict=True))
with (
    st.expander("Human-level performance per tag", icon=":material/person_check:"),
    st.form("errors.hlp_form"),
):
    st.caption(
        "A fraction between 0 and 1. Blank: the annotators' agreement with the final label, shown greyed."
    )
    entered = ea.entered_hlp(project)
    tags = list(dict.fromkeys([*project.all_tags, *report.loc[report["kind"] == "tag", "tag"]]))
    grid = st.columns(4)
    values = {
        tag: grid[i % 4].number_input(
            tag,
            min_value=0.0,
            max_value=1.0,
            step=0.01,
            value=entered.get(tag),
            placeholder=f"{auto_hlp[tag]:.3f}"
            if tag in auto_hlp and auto_hlp[tag] == auto_hlp[tag]
            else "none",
            key=f"errors.hlp.{tag}",
        )
        for i, tag in enumerate(tags)
    }
    if st.form_submit_button("Save HLP", key="errors.hlp_save"):
        with ws.db.write() as s:
            for tag, value in values.items():
                if value != entered.get(tag):
                    ea.set_hlp(s, project.id, tag, value, actor_id=user.id)
        st.rerun()

st.subheader("Slices")
st.dataframe(
    report,
    key="errors.table",
    hide_index=True,
    column_config={
        c: st.column_config.NumberColumn(c, format="percent")
        for c in ("share", "accuracy", "error_share", "hlp", "gap", "priority")
    },
)
left, right = st.columns(2)
left.plotly_chart(charts_errors.priority_bars(report), key="errors.priority_chart")
right.plotly_chart(charts_errors.accuracy_vs_hlp(report, metric=metric), key="errors.hlp_chart")

if not confusion.empty:
    left, right = st.columns([3, 2])
    left.plotly_chart(charts_errors.confusion_heatmap(confusion), key="errors.confusion")
    right.dataframe(
        per_class, key="errors.per_class", column_config={"support": st.column_config.NumberColumn()}
    )

st.subheader("Where the errors concentrate")
st.dataframe(
    found,
    key="errors.discovered",
    hide_index=True,
    column_config={c: st.column_config.NumberColumn(c, format="percent") for c in ("share", "error_rate")},
)

st.subheader("Listen to the errors")
choices = ["(every clip)", *report["tag"], *found["slice"]]
chosen = st.selectbox("Slice", list(dict.fromkeys(choices)), key="errors.slice")
slice_expr = None if chosen == "(every clip)" else chosen
left, right = st.columns(2)
hint = None if slice_expr else "Choose a slice above first."
if left.button(
    "Send this slice to the labeling queue", key="errors.queue", disabled=not slice_expr, help=hint
):
    with ws.db.write() as s:
        done = ea.send_slice_to_queue(s, project.id, slice_expr, actor_id=user.id)
    st.success(f"{done.n_clips} clips moved up the queue ({done.n_open} still need labels).")
if right.button("Mark for data collection", key="errors.collect", disabled=not slice_expr, help=hint):
    with ws.db.write() as s:
        done = ea.mark_for_collection(s, project.id, slice_expr, actor_id=user.id)
    st.success(f"Recorded: collect more data like {done.slice!r} ({done.n_clips} clips now).")
with ws.db.read() as s:
    examples = ea.error_examples(s, run_id, slice_expr=slice_expr, split=split, limit=10)
st.caption(
    f"{len(examples)} most confident mistakes shown" if len(examples) else "No mistakes in this slice."
)


def _retag(clip_id: int, before: list[str]) -> None:
    after = ss[f"errors.tags.{clip_id}"]
    with ws.db.write() as s:
        for tag in set(after) - set(before):
            ea.tag_clip(s, clip_id, tag, actor_id=user.id)
        for tag in set(before) - set(after):
            ea.untag_clip(s, clip_id, tag, actor_id=user.id)


for row in examples.itertuples(index=False):
    with st.container(border=True):
        a, b = st.columns([2, 3])
        a.audio(str(ws.store.path(row.storage_key)))
        a.markdown(f"**{row.original_name}**  \ntrue **{row.y_true}**, predicted **{row.y_pred}**")
        a.progress(float(row.confidence), text=f"confidence {row.confidence:.0%}")
        b.multiselect(
            "Tags",
            sorted({*project.all_tags, *row.tags}),
            default=list(row.tags),
            key=f"errors.tags.{row.clip_id}",
            on_change=_retag,
            args=(int(row.clip_id), list(row.tags)),
            accept_new_options=True,
        )
