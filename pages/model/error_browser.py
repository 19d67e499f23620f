"""The Error analysis page's error browser (no page of its own): every error of a slice, ten at a
time, narrowed to one confusion pair; the page's charts choose the slice or the pair by a click."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from labeling.data.projects import ProjectInfo
from labeling.model import error_analysis as ea
from labeling.platform.auth import UserInfo
from labeling.platform.workspace import Workspace
from pages.widgets import audio
from pages.widgets.charts import raw_value

EVERY_CLIP = "(every clip)"
EVERY_PAIR = ""
SEP = " → "
ss = st.session_state


#: The charts of the page whose clicks choose what the browser plays.
CHARTS = ("errors.priority_chart", "errors.hlp_chart", "errors.confusion")


def chart_key(chart: str) -> str:
    """The widget key to draw ``chart`` (one of :data:`CHARTS`) under. It changes when the choice is
    changed some other way, so the chart lets go of a selection that no longer holds: a click on the
    same bar or cell again then chooses it again instead of doing nothing."""
    return f"{chart}.{ss.get(f'{chart}.round', 0)}"


def _forget_clicks(*, but: str | None = None) -> None:
    for chart in CHARTS:
        # Only a chart holding a selection is drawn anew (which a reader would see).
        if chart != but and _clicked(chart) is not None:
            ss[f"{chart}.round"] = ss.get(f"{chart}.round", 0) + 1


def _every_error() -> None:
    ss["errors.page"] = 0
    ss["errors.pair"] = EVERY_PAIR


def reset() -> None:
    """Back to the first page of every error (the run, split or slice changed, or the choice was
    cleared); the charts let go of their clicks."""
    _every_error()
    _forget_clicks()


def _clicked(chart: str) -> dict | None:
    points = (ss.get(chart_key(chart)) or {}).get("selection", {}).get("points") or []
    # Charts show escaped text (pages.widgets.charts.safe_figure); a click reports it, we want the stored
    # value.
    return {k: raw_value(v) for k, v in points[0].items()} if points else None


def pick_slice(chart: str, axis: str) -> None:
    """A bar of ``chart`` was clicked: browse the errors of its slice (the bar's ``axis`` value)."""
    point = _clicked(chart)
    if point is not None and point.get(axis) is not None:
        _every_error()
        _forget_clicks(but=chart)
        ss["errors.slice"] = str(point[axis])


def pick_pair() -> None:
    """A confusion-matrix cell was clicked: browse every error of that true → predicted pair; a cleared
    selection goes back to every error."""
    chart = "errors.confusion"
    point = _clicked(chart)
    _every_error()
    if point is None:
        return
    true, predicted = point["customdata"][:2] if point.get("customdata") else (point["y"], point["x"])
    ss["errors.slice"] = EVERY_CLIP  # the matrix counts the whole split
    if str(true) == str(predicted):
        ss["errors.flash"] = f"The diagonal holds the clips of {true} the model got right: no errors there."
        _forget_clicks()
    else:
        ss["errors.pair"] = f"{true}{SEP}{predicted}"
        _forget_clicks(but=chart)


def _pair_changed() -> None:
    ss["errors.page"] = 0
    _forget_clicks()  # the matrix's selection, if any, is another pair now


def _turn(step: int) -> None:
    ss["errors.page"] = max(0, ss.get("errors.page", 0) + step)


def render(
    ws: Workspace, project: ProjectInfo, user: UserInfo, *, run_id: int, split: str, slices: Sequence[str]
) -> None:
    st.subheader("Listen to the errors")
    flash = ss.pop("errors.flash", None)
    if flash:
        st.info(flash)
    choices = list(dict.fromkeys([EVERY_CLIP, *slices]))
    if ss.get("errors.slice") not in choices:
        ss["errors.slice"] = EVERY_CLIP
    left, right = st.columns(2)
    chosen = left.selectbox("Slice", choices, key="errors.slice", on_change=reset)
    slice_expr = None if chosen == EVERY_CLIP else chosen
    wanted = ss.get("errors.pair") or EVERY_PAIR
    pair = tuple(wanted.split(SEP, 1)) if wanted else None
    with ws.db.read() as s:
        found = ea.error_page(
            s,
            run_id,
            slice_expr=slice_expr,
            split=split,
            pair=pair,
            page=ss.get("errors.page", 0),
        )
    counts = {f"{r.y_true}{SEP}{r.y_pred}": int(r.n) for r in found.pairs.itertuples()}
    # A matrix cell with no clip (or a pair from another slice) stays chosen, with a count of 0, so
    # the box shows what was chosen and choosing "(every error)" is a change that clears it.
    empty_pair = pair if wanted and wanted not in counts else None
    right.selectbox(
        "Confusion (true → predicted)",
        [EVERY_PAIR, *counts, *([wanted] if empty_pair else [])],
        key="errors.pair",
        format_func=lambda p: f"{p} ({counts.get(p, 0):,})" if p else "(every error)",
        on_change=_pair_changed,
    )
    _slice_actions(ws, project, user, slice_expr)
    if empty_pair is not None:
        _no_such_errors(empty_pair, n_errors=sum(counts.values()), split=split, slice_expr=slice_expr)
        return
    if not found.n_errors:
        st.caption("No mistakes in this slice.")
        return
    last = found.first + len(found.rows) - 1
    prev, where, nxt = st.columns([1, 4, 1], vertical_alignment="center")
    prev.button("Previous", key="errors.prev", on_click=_turn, args=(-1,), disabled=found.page == 0)
    where.caption(
        f"Errors {found.first:,}–{last:,} of {found.n_errors:,}, most confident first "
        f"(page {found.page + 1} of {found.n_pages})"
    )
    nxt.button("Next", key="errors.next", on_click=_turn, args=(1,), disabled=found.page + 1 >= found.n_pages)
    for row in found.rows.itertuples(index=False):
        _error(ws, project, user, row)


def _no_such_errors(pair: Sequence[str], *, n_errors: int, split: str, slice_expr: str | None) -> None:
    """Say what a chosen pair without a clip means, and how many errors there are to listen to instead."""
    where = "" if split == "all" else f" on the {split} split"
    scope = (
        f"The slice {slice_expr}" if slice_expr else ("The run" if split == "all" else f"The {split} split")
    )
    rest = (
        f"{scope} has {n_errors:,} error{'' if n_errors == 1 else 's'}: pick another cell, or clear the "
        "choice to listen to them."
        if n_errors
        else f"{scope} has no errors at all."
    )
    within = f" in the slice {slice_expr}" if slice_expr else ""
    st.info(f"No clip of class {pair[0]}{within} was predicted as {pair[1]} by this run{where}. {rest}")
    st.button("Clear the choice", key="errors.clear_pair", on_click=reset, icon=":material/close:")


def _slice_actions(ws: Workspace, project: ProjectInfo, user: UserInfo, slice_expr: str | None) -> None:
    left, right = st.columns(2)
    hint = None if slice_expr else "Choose a slice above first."
    if left.button(
        "Send this slice to the labeling queue", key="errors.queue", disabled=not slice_expr, help=hint
    ):
        with ws.db.write() as s:
            done = ea.send_slice_to_queue(s, project.id, slice_expr, actor_id=user.id)  # type: ignore[arg-type]
        st.success(f"{done.n_clips} clips moved up the queue ({done.n_open} still need labels).")
    if right.button("Mark for data collection", key="errors.collect", disabled=not slice_expr, help=hint):
        with ws.db.write() as s:
            made = ea.mark_for_collection(s, project.id, slice_expr, actor_id=user.id)  # type: ignore[arg-type]
        st.success(f"Recorded: collect more data like {made.slice!r} ({made.n_clips} clips now).")


def _error(ws: Workspace, project: ProjectInfo, user: UserInfo, row) -> None:
    def retag(clip_id: int, before: list[str]) -> None:
        after = ss[f"errors.tags.{clip_id}"]
        with ws.db.write() as s:
            for tag in set(after) - set(before):
                ea.tag_clip(s, clip_id, tag, actor_id=user.id)
            for tag in set(before) - set(after):
                ea.untag_clip(s, clip_id, tag, actor_id=user.id)

    with st.container(border=True):
        a, b = st.columns([2, 3])
        audio.play_clip(int(row.clip_id), ws.store.path(row.storage_key), where=a)
        a.markdown(f"**{row.original_name}**  \ntrue **{row.y_true}**, predicted **{row.y_pred}**")
        if row.confidence == row.confidence:  # external runs may carry no confidence
            a.progress(float(row.confidence), text=f"confidence {row.confidence:.0%}")
        if row.replaced_by is not None:
            b.caption(
                f"Replaced by a fixed copy (clip {row.replaced_by}) since this run: tag that clip, "
                f"which holds its labels now. Tags when the run was trained: {', '.join(row.tags) or 'none'}."
            )
            return
        b.multiselect(
            "Tags (the clip's, now)",
            sorted({*project.all_tags, *row.tags_now}),
            default=list(row.tags_now),
            key=f"errors.tags.{row.clip_id}",
            on_change=retag,
            args=(int(row.clip_id), list(row.tags_now)),
            accept_new_options=True,
            help="Tags go on the clip at once; this run's tables show the tags it was trained with. "
            "The next run, on a new version or the current labels, slices by them.",
        )
        if sorted(row.tags) != sorted(row.tags_now):
            b.caption(f"When the run was trained: {', '.join(row.tags) or 'no tags'}.")
