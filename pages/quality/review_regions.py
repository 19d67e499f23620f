"""The Review page of a regions project: settle the recordings annotators disagree on most, region by region.

The queue is :func:`labeling.quality.region_agreement.region_review_queue`; a recording's sets and
spans are :func:`labeling.annotate.region_review.recording_review`; the reviewer picks whose regions
to keep per span (:func:`analysis.region_review.compose_final`), may edit the result, sees what it
changes against the final set and saves it (:func:`labeling.annotate.region_review.adjudicate_regions`,
audited). Final regions can then be cut into a clip project
(:func:`labeling.data.region_clips.cut_final_regions`), previewed first.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd
import streamlit as st

from analysis.region_review import compose_final
from labeling.annotate.region_review import adjudicate_regions, final_changes, recording_review
from labeling.data.region_clips import CUT_KINDS, cut_final_regions, preview_cut
from labeling.data.regions import RegionsError
from labeling.platform import auth
from labeling.quality.region_agreement import (
    REGION_REVIEW_QUEUE,
    region_data_fingerprint,
    region_review_ranking,
)
from labeling.quality.report_store import Report
from pages.quality import charts_regions as charts
from pages.widgets import audio, common, plots, stored_report

ss = st.session_state
NOTHING = "(nothing)"
SET_COLUMNS = ["start", "end", "label", "text"]


def _token(project_id: int) -> tuple[object, ...]:
    with common.workspace().db.read() as s:
        return region_data_fingerprint(s, project_id)


@st.cache_data(ttl=600, show_spinner="Ranking recordings…", max_entries=8)
def load_queue(project_id: int, token: tuple[object, ...], stored: object) -> Report:
    # Keyed on the regions and on the stored ranking, so a ranking a worker stores shows at once.
    return region_review_ranking(common.workspace().db, project_id, allow_stale=True)


def _recompute(project_id: int) -> None:
    region_review_ranking(common.workspace().db, project_id, recompute=True)


def _save(project_id: int, clip_id: int, regions: pd.DataFrame, choices: dict[int, str | None]) -> None:
    try:
        with common.workspace().db.write() as s:
            user = auth.require(common.signed_in_user(), "review")
            changes = adjudicate_regions(
                s, project_id, clip_id, regions, reviewer_id=user.id, choices=choices
            )
    except (RegionsError, auth.PermissionDenied) as exc:
        ss["rreview.flash"] = ("error", f"Nothing was saved: {exc}")
        return
    counts = changes["change"].value_counts()
    ss["rreview.flash"] = (
        "success",
        f"Final regions saved: {len(regions)} regions ({counts.get('added', 0)} added, "
        f"{counts.get('removed', 0)} removed, {counts.get('kept', 0)} kept).",
    )


def _cut(project_id: int, to: str, kind: str) -> None:
    try:
        user = auth.require(common.signed_in_user(), "review")
        report = cut_final_regions(common.workspace(), project_id, to, kind=kind, actor_id=user.id)
    except (RegionsError, auth.PermissionDenied) as exc:
        ss["rreview.flash"] = ("error", f"Nothing was cut: {exc}")
        return
    ss["rreview.flash"] = ("success", report.summary())
    ss["rreview.cut_ok"] = False


def _composer(review: Any) -> tuple[pd.DataFrame, dict[int, str | None]]:
    """The spans with whose regions to keep in each; returns the composed set and the choices."""
    start_from = st.radio(
        "Start from",
        ["span by span", *[f"{a}'s whole set" for a in review.annotators]],
        horizontal=True,
        key=f"rreview.start.{review.clip_id}",
    )
    if start_from != "span by span":
        who = review.annotators[[f"{a}'s whole set" for a in review.annotators].index(start_from)]
        choices: dict[int, str | None] = {int(k): who for k in review.spans["span"]}
        return compose_final(review.regions, choices), choices
    spans = review.spans
    table = pd.DataFrame(
        {
            "span": spans["span"],
            "start": spans["start"],
            "end": spans["end"],
            "agreed": spans["agreed"],
            "keep": review.annotators[0],
            **{a: [said[a] for said in spans["annotators"]] for a in review.annotators},
        }
    )
    edited = st.data_editor(
        table,
        hide_index=True,
        disabled=[c for c in table.columns if c != "keep"],
        key=f"rreview.spans.{review.clip_id}",
        column_config={
            "keep": st.column_config.SelectboxColumn(
                "keep", options=[*review.annotators, NOTHING], required=True
            ),
            "start": st.column_config.NumberColumn(format="%.2f s"),
            "end": st.column_config.NumberColumn(format="%.2f s"),
        },
    )
    st.caption("Pick, in each span where someone drew regions, whose regions the final set keeps.")
    choices = {
        int(k): (None if v == NOTHING else str(v))
        for k, v in zip(edited["span"], edited["keep"], strict=True)
    }
    return compose_final(review.regions, choices), choices


def _adjudicate(project: Any, review: Any) -> None:
    composed, choices = _composer(review)
    digest = hashlib.sha1(composed.to_csv().encode(), usedforsecurity=False).hexdigest()[:10]
    final = st.data_editor(
        composed[SET_COLUMNS],
        num_rows="dynamic",
        hide_index=True,
        key=f"rreview.final.{review.clip_id}.{digest}",
        column_config={
            "label": st.column_config.SelectboxColumn("label", options=project.classes, required=True),
            "start": st.column_config.NumberColumn("start (s)", min_value=0.0, max_value=review.duration),
            "end": st.column_config.NumberColumn("end (s)", min_value=0.0, max_value=review.duration),
        },
    ).dropna(subset=["start", "end", "label"])
    with common.workspace().db.read() as s:
        changes = final_changes(s, project.id, review.clip_id, final)
    replacing = len(review.final) > 0
    if replacing:
        moved = changes[changes["change"] != "kept"]
        st.markdown(f"**Replacing the final set** ({len(review.final)} regions): what changes")
        if moved.empty:
            st.caption("Nothing: the regions above are the final set already.")
        else:
            st.dataframe(moved, hide_index=True, key=f"rreview.changes.{review.clip_id}")
    sure = (
        st.checkbox("Replace the final set", key=f"rreview.sure.{review.clip_id}.{digest}")
        if replacing
        else True
    )
    st.button(
        "Save final regions",
        type="primary",
        key=f"rreview.save.{review.clip_id}",
        disabled=not sure or final.empty,
        on_click=_save,
        args=(project.id, review.clip_id, final, choices),
    )


def _cut_panel(project: Any) -> None:
    with st.expander("Cut final regions into clips"):
        left, right = st.columns([3, 2])
        to = left.text_input("New clip project", value=f"{project.name}-clips", key="rreview.cut_to")
        kind = right.radio("Kind", CUT_KINDS, horizontal=True, key="rreview.cut_kind")
        try:
            with common.workspace().db.read() as s:
                plan = preview_cut(s, project.id, to, kind=kind)
        except RegionsError as exc:
            st.warning(str(exc))
            return
        st.caption(plan.summary())
        if note := plan.changed_after_final_note():
            head, *rows = note.splitlines()
            st.warning(head + "\n\n" + "\n".join(f"- {r.strip()}" for r in rows), icon=":material/history:")
        st.dataframe(plan.clips, hide_index=True, key="rreview.cut_preview", height=220)
        sure = st.checkbox(
            f"Make the project {plan.project!r} with these {len(plan.clips)} clips", key="rreview.cut_ok"
        )
        st.button(
            "Cut into clips", key="rreview.cut", disabled=not sure, on_click=_cut, args=(project.id, to, kind)
        )


def show(project: Any, user: auth.UserInfo) -> None:
    """Render the page for ``project`` (a regions project) to ``user``."""
    watched = stored_report.stamp_or_wait(
        kind=REGION_REVIEW_QUEUE,
        job_kind="region_review_queue",
        project_id=project.id,
        params={},
        recompute=lambda: _recompute(project.id),
        what="ranking of recordings to review",
    )
    st.title("Review")
    if flash := ss.pop("rreview.flash", None):
        getattr(st, flash[0])(flash[1])
    ranked = load_queue(project.id, _token(project.id), watched.stamp)
    if not ranked.fresh:
        watched.notice(user, ranked.computed_at, message="Ranked at {when}; regions have changed since.")
    queue = ranked.value
    if queue.empty:
        st.info("No recording has regions from two annotators yet: there is nothing to adjudicate.")
        _cut_panel(project)
        return
    st.caption(
        f"{len(queue)} recordings with two or more annotators, most disagreement (1 − frame kappa) first; "
        f"{int(queue['final'].notna().sum())} have a final set."
    )
    st.dataframe(
        queue,
        hide_index=True,
        key="rreview.queue",
        height=min(240, 35 * len(queue) + 40),
        column_order=[
            "recording",
            "annotators",
            "disagreement",
            "fleiss_kappa",
            "unanimous",
            "final",
            "duration",
        ],
        column_config={
            "disagreement": st.column_config.ProgressColumn(
                "disagreement", format="%.2f", min_value=0, max_value=1
            ),
            "unanimous": st.column_config.NumberColumn("frames unanimous", format="percent"),
            "final": st.column_config.NumberColumn("final regions"),
            "duration": st.column_config.NumberColumn("seconds", format="%.1f"),
        },
    )
    names = dict(zip(queue["recording_id"].astype(int), queue["recording"], strict=True))
    clip_id = st.selectbox(
        "Recording", list(names), format_func=lambda c: f"{names[c]} (recording {c})", key="rreview.recording"
    )
    with common.workspace().db.read() as s:
        review = recording_review(s, project.id, int(clip_id))
    audio.play_clip(review.clip_id, common.workspace().store.path(review.storage_key))
    rows = pd.concat(
        [
            review.regions.rename(columns={"annotator": "who"})[["who", *SET_COLUMNS]],
            review.final.assign(who="final")[["who", *SET_COLUMNS]],
        ],
        ignore_index=True,
    )
    plots.show(
        st,
        charts.region_timeline(
            rows, order=[*review.annotators, "final"], duration=review.duration, spans=review.spans
        ),
        key=f"rreview.timeline.{review.clip_id}",
    )
    n_split = int((~review.spans["agreed"]).sum())
    st.caption(
        f"{len(review.spans)} spans, {n_split} where the annotators disagree "
        "(boundaries within ±200 ms agree)."
    )
    _adjudicate(project, review)
    _cut_panel(project)
