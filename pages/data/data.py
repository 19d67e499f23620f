"""Data versions & checks: freeze and diff dataset versions, check clips against the conventions and fix
them, and augment a slice's training clips.

The checks shown are the report a worker stores after each change to the clips or the conventions
(:mod:`labeling.quality.check_summary`): one stored row read, however many clips there are. The
duplicate checks, which decode every clip, run as a job when asked for.
"""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from labeling.data.checks import FIXES_FOR, CheckError, CheckReport, fix_clips, preview_fix
from labeling.data.versions import VersionError, VersionFilters, create_version, diff_versions, list_versions
from labeling.platform.jobs import JobBusy, JobError, latest_job, submit_job
from labeling.quality.check_summary import (
    CHECKS,
    DUPLICATES_JOB_KIND,
    JOB_KIND,
    PARAMS,
    StoredChecks,
    checks_fingerprint,
    stored_checks,
    stored_duplicate_checks,
)
from labeling.quality.data_summaries import CLIP_FACETS, clip_facets
from labeling.quality.data_summaries import PARAMS as SUMMARY_PARAMS
from pages.data.augment_form import augment_form
from pages.widgets import common, plots, stored_report

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


@st.cache_data(ttl=600, max_entries=8, show_spinner=False)
def _stored_tags(project_id: int, stored: object) -> list[str]:
    # The Clips filter options the worker stores list the tags: no read of every clip's tags.
    return clip_facets(ws.db, project_id, allow_stale=True).value.tags


with augment_tab:
    facets_stamp = stored_report.stamp(project.id, CLIP_FACETS, SUMMARY_PARAMS)
    used = (
        _stored_tags(project.id, facets_stamp)
        if facets_stamp is not None
        else common.cached_project_tags(project.id)
    )
    augment_form(ws, project, user, sorted(set(project.all_tags) | set(used)))


@st.cache_data(ttl=600, max_entries=8, show_spinner="Reading the checks…")
def _checks(project_id: int, token: tuple[object, ...], stored: object) -> StoredChecks:
    # Keyed on the clips and rules, and on the stored report, so one a worker stores shows at once.
    return stored_checks(ws.db, project_id, allow_stale=True)


def _recompute() -> object:
    return stored_checks(ws.db, project.id, recompute=True)


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
    """Fix the clips (nothing was written before the yes); the checks are computed again after it."""
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
        st.success(fixed.summary() + ". The checks are computed again in the background.")
    except CheckError as exc:
        st.error(str(exc))
    bar.empty()


def show_report(report: CheckReport, *, key: str) -> tuple[str, list[int]] | None:
    """The findings per check and one check's clips; the (check, clips) a confirmed fix is for."""
    margins, level = report.rules["silence_margin_ms"], report.rules["loudness_dbfs"]
    st.caption(
        f"{report.n_clips:,} clips checked against the rules of the {report.rules_source}: silence "
        f"{margins['min']:g}–{margins['max']:g} ms at each end, loudness {level['target']:g} ± "
        f"{level['tolerance']:g} dBFS"
    )
    fig = px.bar(report.summary, x="check", y="n_clips", title="Clips per finding")
    fig.update_layout(height=300, margin=dict(t=40, b=10, l=10, r=10))
    plots.show(st, fig, key=f"{key}.chart")
    counts = report.summary.set_index("check")
    found = counts.index[counts["n_clips"] > 0].tolist()
    if not found:
        st.success("No findings.")
        return None
    check = st.selectbox("Finding", found, key=f"{key}.check")
    rows = report.findings[report.findings["check"] == check]
    total = int(counts.loc[check, "n_clips"])
    if total > len(rows):
        st.caption(f"The first {len(rows):,} of {total:,} clips with this finding, by clip id.")
    st.dataframe(rows, hide_index=True, key=f"{key}.findings")
    if key == "data" and counts.loc[check, "fixable"]:
        clip_ids = [int(c) for c in rows["clip_id"]]
        if fix_prompt(check, clip_ids):
            return check, clip_ids
    return None


def ask_for_duplicates() -> None:
    if st.button(
        "Look for duplicates",
        key="data.duplicates",
        help="Decodes every clip's audio in a background job: the same recording twice, and near duplicates",
    ):
        try:
            with ws.db.write() as s:
                submit_job(s, DUPLICATES_JOB_KIND, project_id=project.id, owner_id=user.id)
            st.toast("The duplicate checks are queued; follow them on the Jobs page.")
        except JobBusy:
            st.info("The duplicate checks are already running.")
        except JobError as exc:
            st.error(str(exc))


with checks_tab:
    st.caption(
        "Silence at the edges and loudness against the current conventions' rules, clipping, sample rates "
        "and duration outliers, kept current by a background job after each change. A fix writes a new "
        "clip that takes over the original's annotations, final label, flags and queue place, and retires "
        "the original; its audio is kept for older versions. You see what a fix changes before it runs."
    )
    watched = stored_report.stamp_or_wait(
        kind=CHECKS,
        job_kind=JOB_KIND,
        project_id=project.id,
        params=PARAMS,
        recompute=_recompute,
        what="data checks",
    )
    with ws.db.read() as s:
        token = checks_fingerprint(s, project.id)
    stored = _checks(project.id, token, watched.stamp)
    if not stored.fresh:
        watched.notice(
            user,
            stored.computed_at,
            message="Shown as checked at {when}; the clips or the conventions have changed since.",
        )
    else:
        st.caption(f"Checked at {stored.computed_at.strftime('%Y-%m-%d %H:%M UTC')}.")
    findings = st.empty()  # cleared once a fix has run: they describe clips that are now retired
    with findings.container():
        confirmed = show_report(stored.report, key="data")
    if confirmed:
        findings.empty()
        run_fix(*confirmed)

    st.subheader("Duplicates")
    with ws.db.read() as s:
        running = latest_job(s, DUPLICATES_JOB_KIND, project_id=project.id)
    dupes = stored_duplicate_checks(ws, project.id)
    if running is not None and running.active:
        st.info(f"The duplicate checks are running: {running.message}", icon=":material/hourglass_top:")
    elif dupes is None:
        st.caption("Not looked for yet.")
        ask_for_duplicates()
    else:
        when = dupes.computed_at.strftime("%Y-%m-%d %H:%M UTC")
        st.caption(f"As found at {when}" + ("" if dupes.fresh else "; the clips have changed since") + ".")
        ask_for_duplicates()
        report = dupes.report
        report.summary = report.summary[report.summary["check"].isin(["exact_duplicate", "near_duplicate"])]
        show_report(report, key="data.dupes")
