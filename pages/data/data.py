"""Data versions & checks: freeze and diff dataset versions, check clips against the conventions and fix
them, and augment a slice's training clips."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from labeling.data.checks import FIXES_FOR, CheckError, fix_clips, preview_fix, run_data_checks
from labeling.data.versions import VersionError, VersionFilters, create_version, diff_versions, list_versions
from pages.data.augment_form import augment_form
from pages.widgets import common, plots

REPORT = "data.check_report"

user = common.require_permission("manage_data")
project = common.current_project()
ws = common.workspace()
st.title("Data versions & checks")
versions_tab, checks_tab, augment_tab = st.tabs(["Versions", "Checks", "Augment a slice"])

with versions_tab:
    with ws.db.read() as s:
        versions = list_versions(s, project.id)
    with st.form("data.version_form"):
        left, right = st.columns(2)
        name = left.text_input("Name", value=f"v{len(versions) + 1}", key="data.version_name")
        note = right.text_input("Note", key="data.version_note")
        exclude_flagged = left.checkbox("Leave out clips with an open flag", key="data.version_flagged")
        include_augmented = right.checkbox(
            "Include augmented clips (train only)", True, key="data.version_aug"
        )
        if st.form_submit_button("Freeze the current labels as a version", type="primary"):
            try:
                with ws.db.write() as s:
                    made = create_version(
                        s,
                        project.id,
                        name=name,
                        note=note,
                        filters=VersionFilters(
                            exclude_flagged=exclude_flagged, include_augmented=include_augmented
                        ),
                        actor_id=user.id,
                    )
                st.success(made.summary())
                with ws.db.read() as s:
                    versions = list_versions(s, project.id)
                # The selectors below (drawn after this) compare the new version with the one before.
                st.session_state["data.diff_b"] = made.name
                st.session_state["data.diff_a"] = (
                    versions["name"].iloc[-2] if len(versions) > 1 else made.name
                )
            except VersionError as exc:
                st.error(str(exc))
    if versions.empty:
        st.info("No dataset versions yet: freeze the current labels above.")
    else:
        st.dataframe(
            versions.assign(content_hash=versions["content_hash"].str[:12]),
            hide_index=True,
            key="data.versions",
        )
    if len(versions) >= 2:
        names = versions["name"].tolist()
        left, right = st.columns(2)
        a = left.selectbox("Compare", names, index=len(names) - 2, key="data.diff_a")
        b = right.selectbox("with", names, index=len(names) - 1, key="data.diff_b")
        ids = dict(zip(versions["name"], versions["id"], strict=True))
        with ws.db.read() as s:
            diff = diff_versions(s, int(ids[a]), int(ids[b]))
        summary = diff.summary()
        cols = st.columns(5)
        for col, key in zip(cols, ("added", "removed", "relabelled", "retagged", "resplit"), strict=True):
            col.metric(
                key.replace("retagged", "re-tagged").replace("resplit", "re-split"), f"{summary[key]:,}"
            )
        changed = diff.by_tag[diff.by_tag["delta"] != 0]
        if not changed.empty:
            long = changed.melt(
                id_vars="tag", value_vars=["old", "new"], var_name="version", value_name="clips"
            )
            long["version"] = long["version"].map({"old": a, "new": b})
            fig = px.bar(long, x="tag", y="clips", color="version", barmode="group", title="Clips per slice")
            fig.update_layout(height=340, margin=dict(t=40, b=10, l=10, r=10))
            plots.show(st, fig, key="data.diff_chart")
        if len(diff.relabelled):
            st.caption("Relabelled clips")
            st.dataframe(diff.relabelled, hide_index=True, key="data.relabelled")


def fix_prompt(check: str, clip_ids: list[int]) -> bool:
    """The fix button, then what the fix would change and a yes or no; True once the answer is yes."""
    plan = (project.id, check, tuple(clip_ids))
    if st.button(f"Fix these {len(clip_ids):,} clips", key="data.fix"):
        st.session_state["data.fix_plan"] = plan
    if st.session_state.get("data.fix_plan") != plan:
        return False
    try:
        preview = preview_fix(ws, project.id, clip_ids, actions=[FIXES_FOR[check]])
    except CheckError as exc:
        st.error(str(exc))
        return False
    st.warning(preview.summary(), icon=":material/info:")
    with st.container(horizontal=True):
        go = st.button(f"Yes, fix {len(clip_ids):,} clips", key="data.fix_confirm", type="primary")
        if st.button("Cancel", key="data.fix_cancel"):
            del st.session_state["data.fix_plan"]
            st.rerun()
    return go


def run_fix(check: str, clip_ids: list[int]) -> None:
    """Fix the clips (nothing was written before the yes), then forget the checks they answered."""
    del st.session_state["data.fix_plan"]
    bar = st.progress(0.0, text="Fixing…")
    try:
        fixed = fix_clips(
            ws,
            project.id,
            clip_ids,
            actions=[FIXES_FOR[check]],
            actor_id=user.id,
            progress=common.on_bar(bar, lambda d, t: f"Fixing clip {d:,} of {t:,}"),
        )
        st.success(fixed.summary() + ". Run the checks again to see what is left.")
        del st.session_state[REPORT]
    except CheckError as exc:
        st.error(str(exc))
    bar.empty()


with checks_tab:
    st.caption(
        "Silence at the edges and loudness against the current conventions' rules, clipping, sample rates, "
        "duration outliers, the same audio twice and near duplicates. A fix writes a new clip that takes "
        "over the original's annotations, final label, flags and queue place, and retires the original; "
        "its audio is kept for older versions. You see what a fix changes before it runs."
    )
    if st.button("Run the checks", key="data.run_checks", type="primary"):
        bar = st.progress(0.0, text="Decoding audio…")
        try:
            st.session_state[REPORT] = run_data_checks(
                ws,
                project.id,
                progress=common.on_bar(bar, lambda d, t: f"Decoding audio {d}/{t}"),
            )
        except CheckError as exc:
            st.error(str(exc))
        bar.empty()
    report, confirmed = st.session_state.get(REPORT), False
    findings = st.empty()  # cleared once a fix has run: they describe clips that are now retired
    if report is not None and report.project == project.name:
        with findings.container():
            margins, level = report.rules["silence_margin_ms"], report.rules["loudness_dbfs"]
            st.caption(
                f"{report.n_clips:,} clips checked against the rules of the {report.rules_source}: silence "
                f"{margins['min']:g}–{margins['max']:g} ms at each end, loudness {level['target']:g} ± "
                f"{level['tolerance']:g} dBFS"
            )
            fig = px.bar(report.summary, x="check", y="n_clips", title="Clips per finding")
            fig.update_layout(height=300, margin=dict(t=40, b=10, l=10, r=10))
            plots.show(st, fig, key="data.check_chart")
            found = report.summary[report.summary["n_clips"] > 0]["check"].tolist()
            if found:
                check = st.selectbox("Finding", found, key="data.check")
                rows = report.findings[report.findings["check"] == check]
                st.dataframe(rows, hide_index=True, key="data.findings")
                if report.summary.set_index("check").loc[check, "fixable"]:
                    confirmed = fix_prompt(check, rows["clip_id"].tolist())
            else:
                st.success("No findings.")
    if confirmed:
        findings.empty()
        run_fix(check, rows["clip_id"].tolist())

with augment_tab:
    augment_form(
        ws,
        project,
        user,
        sorted(set(project.all_tags) | set(common.cached_project_tags(project.id))),
    )
