"""The Error analysis page's error browser (no page of its own): every error of a slice, ten at a
time, narrowed to one confusion pair; the page's charts choose the slice or the pair by a click."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from labeling import error_analysis as ea
from labeling.auth import UserInfo
from labeling.projects import ProjectInfo
from labeling.workspace import Workspace
from pages import audio
from pages.charts import raw_value

EVERY_CLIP = "(every clip)"
EVERY_PAIR = ""
SEP = " → "
ss = st.session_state


def reset() -> None:
    """Back to the first page of every error (the run, split or slice changed)."""
    ss["errors.page"] = 0
    ss["errors.pair"] = EVERY_PAIR


def _clicked(chart: str) -> dict | None:
    points = (ss.get(chart) or {}).get("selection", {}).get("points") or []
    # Charts show escaped text (pages.charts.safe_figure); a click reports it, we want the stored value.
    return {k: raw_value(v) for k, v in points[0].items()} if points else None


def pick_slice(chart: str, axis: str) -> None:
    """A bar of ``chart`` was clicked: browse the errors of its slice (the bar's ``axis`` value)."""
    point = _clicked(chart)
    if point is not None and point.get(axis) is not None:
        reset()
        ss["errors.slice"] = str(point[axis])


def pick_pair() -> None:
    """A confusion-matrix cell was clicked: browse every error of that true → predicted pair."""
    point = _clicked("errors.confusion")
    if point is None:
        return
    true, predicted = point["customdata"][:2] if point.get("customdata") else (point["y"], point["x"])
    reset()
    ss["errors.slice"] = EVERY_CLIP  # the matrix counts the whole split
    if str(true) == str(predicted):
        ss["errors.flash"] = f"The diagonal holds the clips of {true} the model got right: no errors there."
    else:
        ss["errors.pair"] = f"{true}{SEP}{predicted}"


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
            pair=pair,  # type: ignore[arg-type]
            page=ss.get("errors.page", 0),
        )
    counts = {f"{r.y_true}{SEP}{r.y_pred}": int(r.n) for r in found.pairs.itertuples()}
    if wanted and wanted not in counts:
        st.info(f"No clip of this slice is {wanted.replace(SEP, ' predicted as ')}.")
        ss["errors.pair"] = wanted = EVERY_PAIR
    right.selectbox(
        "Confusion (true → predicted)",
        [EVERY_PAIR, *counts],
        key="errors.pair",
        format_func=lambda p: f"{p} ({counts[p]:,})" if p else "(every error)",
        on_change=lambda: ss.update({"errors.page": 0}),
    )
    _slice_actions(ws, project, user, slice_expr)
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


def _error(ws: Workspace, project: ProjectInfo, user: UserInfo, row) -> None:  # type: ignore[no-untyped-def]
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
        b.multiselect(
            "Tags",
            sorted({*project.all_tags, *row.tags}),
            default=list(row.tags),
            key=f"errors.tags.{row.clip_id}",
            on_change=retag,
            args=(int(row.clip_id), list(row.tags)),
            accept_new_options=True,
        )
