"""Error analysis: which slice of the data the model fails on, and which is worth fixing first."""

from __future__ import annotations

import json

import streamlit as st

from labeling.model import error_analysis as ea
from labeling.model.runs import list_runs
from pages.model import charts_errors, error_analysis_regions, error_browser
from pages.model.train_form import run_labels, train_form
from pages.widgets import common, plots

user = common.require_permission("manage_data")
project = common.current_project()
ws = common.workspace()
ss = st.session_state
if project.labels_regions:  # long recordings: a model's regions against the final regions
    error_analysis_regions.show(project, user, ws)
    st.stop()

st.title("Error analysis")

with ws.db.read() as s:
    runs = list_runs(s, project.id)
with st.expander("Train the fixed model", expanded=runs.empty, icon=":material/model_training:"):
    st.caption("The same model code every time, trained on the train split of the labels you choose.")
    trained = train_form(ws, project, user, key="errors")
    if trained is not None:
        ss["errors.run"] = trained.id
        scored = "test" if trained.metrics.get("test", {}).get("n") else "overall"
        st.toast(f"Run {trained.id}: {scored} accuracy {trained.metrics[scored]['accuracy']:.1%}")
        with ws.db.read() as s:
            runs = list_runs(s, project.id)
if runs.empty:
    st.info("No model runs yet: train the model above, or run `earmark train --project ...`.")
    st.stop()

by_id = runs.set_index("run_id")
labels = run_labels(runs)
left, right = st.columns([3, 1])
run_id = left.selectbox(
    "Run",
    by_id.index.tolist(),
    key="errors.run",
    format_func=labels.__getitem__,
    on_change=error_browser.reset,
)
assert run_id is not None  # a selectbox with options and no placeholder always has a value
split = right.selectbox(
    "Split", ["test", "dev", "train", "all"], key="errors.split", on_change=error_browser.reset
)
st.caption(f"Code fingerprint `{by_id.at[run_id, 'code_fingerprint']}`")


@st.cache_data(ttl=600, max_entries=16, show_spinner=False)
def _analysis(run_id: int, split: str, data: tuple[object, ...], hlp: str) -> ea.RunAnalysis:
    """The run's tables, recomputed only when the project's data or its hand-entered HLP change."""
    working = st.empty()  # made in here, so a cache hit replays it (and its clearing) harmlessly
    with common.workspace().db.read() as s:
        result = ea.run_analysis(
            s,
            run_id,
            split=split,
            progress=common.on_bar_by_stage(working),
        )
    working.empty()
    return result


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
plots.show(
    left,
    charts_errors.priority_bars(report),
    key=error_browser.chart_key("errors.priority_chart"),
    on_select=lambda: error_browser.pick_slice("errors.priority_chart", "y"),
    selection_mode="points",
)
plots.show(
    right,
    charts_errors.accuracy_vs_hlp(report, metric=metric),
    key=error_browser.chart_key("errors.hlp_chart"),
    on_select=lambda: error_browser.pick_slice("errors.hlp_chart", "x"),
    selection_mode="points",
)
if not confusion.empty:
    left, right = st.columns([3, 2])
    plots.show(
        left,
        charts_errors.confusion_heatmap(confusion),
        key=error_browser.chart_key("errors.confusion"),
        on_select=error_browser.pick_pair,
        selection_mode="points",
    )
    right.dataframe(
        per_class, key="errors.per_class", column_config={"support": st.column_config.NumberColumn()}
    )
st.caption("Click a slice's bar or a cell of the confusion matrix to listen to those errors below.")

st.subheader("Where the errors concentrate")
st.dataframe(
    found,
    key="errors.discovered",
    hide_index=True,
    column_config={c: st.column_config.NumberColumn(c, format="percent") for c in ("share", "error_rate")},
)

error_browser.render(ws, project, user, run_id=run_id, split=split, slices=[*report["tag"], *found["slice"]])
