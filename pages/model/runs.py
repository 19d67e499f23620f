"""Runs: two model runs side by side (metrics, slices, McNemar, confusion change, data diff), and the
clips whose labels the fixed model doubts."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from labeling.data.clips import ClipNotFound, clip_detail
from labeling.model.compare import CompareError, compare_runs
from labeling.model.runs import learning_curve_points, learning_curve_summary, list_runs
from labeling.quality.label_issues import flag_label_issues
from pages.model.run_pair import run_pair
from pages.model.train_form import train_form
from pages.widgets import audio, common, job_status, plots

user = common.require_permission("manage_data")
project = common.current_project()
ws = common.workspace()
st.title("Runs")

with ws.db.read() as s:
    runs = list_runs(s, project.id)
with st.expander("Train the fixed model", expanded=len(runs) < 2, icon=":material/model_training:"):
    st.caption("Train on one dataset version, change the data, freeze the next version and train on it.")
    if train_form(ws, project, user, key="runs") is not None:
        with ws.db.read() as s:
            runs = list_runs(s, project.id)  # the new run: the pickers below move to it
if len(runs) < 2:
    st.info("Compare needs two runs: train one above, change the data, freeze a version and train again.")
else:
    a, b = run_pair(runs, key="runs")
    cmp = None
    if a == b:
        st.info("A and B are the same run: choose another run on one side to compare the two.")
    else:
        try:
            with ws.db.read() as s:
                cmp = compare_runs(s, a, b)
        except CompareError as exc:
            st.warning(str(exc))
    if cmp is not None:
        for warning in cmp.warnings:
            st.warning(warning, icon=":material/warning:")
        verdict = st.error if cmp.code_changed else st.info if cmp.no_change else st.success
        verdict(cmp.verdict(), icon=":material/code:" if cmp.code_changed else ":material/dataset:")
    if cmp is not None and not cmp.no_change:
        overall = cmp.overall.set_index("metric")
        cols = st.columns(4)
        cols[0].metric("Accuracy A", f"{overall.loc['accuracy', 'a']:.3f}")
        cols[1].metric(
            "Accuracy B", f"{overall.loc['accuracy', 'b']:.3f}", f"{overall.loc['accuracy', 'delta']:+.3f}"
        )
        cols[2].metric(
            "Macro F1 B", f"{overall.loc['macro_f1', 'b']:.3f}", f"{overall.loc['macro_f1', 'delta']:+.3f}"
        )
        cols[3].metric(
            "McNemar p",
            f"{cmp.mcnemar.p_value:.3g}",
            help=f"{cmp.mcnemar.only_a} clips only A got right, "
            f"{cmp.mcnemar.only_b} only B, on {cmp.n_shared:,} shared {cmp.split} clips",
        )
        chart, diff = st.columns(2)
        if not cmp.slices.empty:
            fig = px.bar(
                cmp.slices.sort_values("delta"),
                x="delta",
                y="slice",
                orientation="h",
                color="delta",
                color_continuous_scale="RdYlGn",
                color_continuous_midpoint=0,
                title="Accuracy change per slice (B − A)",
                hover_data=["n", "a", "b"],
            )
            fig.update_layout(
                height=max(300, 22 * len(cmp.slices)),
                margin=dict(t=40, b=10, l=10, r=10),
                coloraxis_showscale=False,  # the x axis already reads the change; the bar needs the room
            )
            plots.show(chart, fig, key="runs.slices_chart")
        heat = px.imshow(
            cmp.confusion_diff,
            text_auto=True,
            color_continuous_scale="RdBu",
            color_continuous_midpoint=0,
            title="Confusion change (B − A): rows true, columns predicted",
        )
        heat.update_layout(height=420, margin=dict(t=40, b=10, l=10, r=10))
        plots.show(diff, heat, key="runs.confusion")
        with st.expander("Per-slice table"):
            st.dataframe(cmp.slices, hide_index=True, key="runs.slices")

    if cmp is not None:
        st.subheader("The data between them")
        if cmp.data_diff is None:
            st.caption("One of the runs was not trained on a dataset version, so there is no data diff.")
        else:
            d = cmp.data_diff.summary()
            st.caption(
                f"{cmp.version_a} → {cmp.version_b}: +{d['added']:,} −{d['removed']:,} clips, "
                f"{d['relabelled']:,} relabelled, {d['retagged']:,} re-tagged, {d['resplit']:,} re-split"
            )
            changed = cmp.data_diff.by_tag[cmp.data_diff.by_tag["delta"] != 0]
            if not changed.empty:
                st.dataframe(changed, hide_index=True, key="runs.data_diff")

st.header("Learning curve")
with ws.db.read() as s:
    points = learning_curve_points(s, project.id)
if points.empty:
    st.caption(
        "Each run trained from now on adds a point: its accuracy against the labels given so far, "
        "coloured by the queue strategy that chose the clips (Project settings → Queue order)."
    )
else:
    curve = px.line(
        points,
        x="labels_spent",
        y="accuracy",
        color="strategy",
        markers=True,
        hover_data=["run_id", "name"],
        labels={"labels_spent": "labels given", "accuracy": "accuracy of the fixed model"},
        title="Accuracy against labels spent, per queue strategy",
    )
    curve.update_layout(height=360, margin=dict(t=40, b=10, l=10, r=10), yaxis_tickformat=".0%")
    plots.show(st, curve, key="runs.learning_curve")
    st.caption(
        "Mean accuracy over each strategy's span of labels: "
        + "; ".join(
            f"{r.strategy} {r.mean_accuracy:.1%} over {r.runs} runs"
            if pd.notna(r.mean_accuracy)
            else f"{r.strategy}: one point ({r.accuracy:.1%} at {r.labels:,} labels)"
            for r in learning_curve_summary(points).itertuples()
        )
    )

st.header("Label-issue candidates")
st.caption(
    "Every labelled clip, in every split, predicted by the fixed model trained without it; confident "
    "learning lists the clips whose final label looks wrong, least confident first."
)
if st.button("Find label-issue candidates", key="runs.find_issues"):
    job_status.start("label_issues", user, project_id=project.id)
job = job_status.show(job_status.latest("label_issues", project_id=project.id), user, key="runs.issues_job")
if job is not None and job.status == "succeeded" and job.result:
    candidates = pd.DataFrame(job.result["candidates"], columns=job.result["columns"])
    if candidates.empty:
        st.success("No label-issue candidates.")
    else:
        st.dataframe(candidates, hide_index=True, key="runs.candidates_table")
        pick = st.selectbox(
            "Listen to",
            candidates["clip_id"].tolist(),
            format_func=lambda c: candidates.set_index("clip_id").loc[c, "original_name"],
            key="runs.listen",
        )
        try:
            with ws.db.read() as s:
                detail = clip_detail(s, ws.store, int(pick), project_id=project.id)
            audio.play_clip(detail.id, detail.audio_path)
        except ClipNotFound as exc:
            st.warning(str(exc))
        if st.button(f"Send all {len(candidates):,} to review", key="runs.send_review", type="primary"):
            with ws.db.write() as s:
                n = flag_label_issues(s, project.id, candidates, actor_id=user.id)
            st.success(f"{n:,} clips flagged as label issues and moved up the review queue.")
