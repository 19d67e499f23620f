"""Label: hear a clip, see the conventions beside it, choose a class (number keys) and the next one comes.

Blind by construction: everything shown comes from ``label_task``, which carries no one else's label.
Every widget of a clip's form is keyed by the token the clip got when it came on screen, and every
key the player sends names it: nothing chosen for one clip stays selected on the next, and a key
pressed on one clip can only ever act on that clip.
"""

from __future__ import annotations

import time
import uuid

import streamlit as st

from labeling.annotate.annotations import (
    AnnotationError,
    label_keymap,
    label_task,
    submit_annotation,
    undo_annotation,
)
from labeling.annotate.queue import hold_clip, next_clip, progress, skip_clip
from labeling.data.conventions import demote_headings
from labeling.data.queue_order import queue_caption
from labeling.platform.failures import WriteWaitTimeout
from pages.labeling import label_form, label_regions, player
from pages.widgets import audio, common

user = common.require_permission("label")
project = common.current_project()
ws = common.workspace()
ss = st.session_state
if project.labels_regions:  # long recordings: regions drawn in the editor, not one class per clip
    label_regions.show(project, user, ws)
    st.stop()


def claim_next() -> None:
    with ws.db.write() as s:
        item = next_clip(s, project.id, user.id)
    ss.update({"label.for": (project.id, user.id), "label.clip": item.clip_id if item else None})
    ss.update({"label.shown_at": time.monotonic(), "label.key": uuid.uuid4().hex})


def _stale(clip_id: int, key: str | None = None) -> bool:
    # A press that went down while the previous clip was still on screen names that clip (its widgets'
    # keys say so); it must not act on the clip that replaced it, which nobody has heard yet.
    if clip_id != ss.get("label.clip") or (key is not None and key != ss.get("label.key")):
        ss["label.flash"] = ("info", f"Ignored a key press meant for clip {clip_id}: it is already done.")
        return True
    return False


def submit(label: str | None, clip_id: int, key: str, *, cannot: bool = False) -> None:
    if _stale(clip_id, key):
        return
    reason = ss.get(f"label.reason.{key}") if cannot else None
    if cannot and not reason:
        ss["label.need_reason"] = key  # said beside the reason box, where the annotator is looking
        return
    tags = [f"{g}:{v}" for g in project.tag_groups for v in ss.get(f"label.tags.{g}.{key}") or []]
    try:
        with ws.db.write() as s:
            result = submit_annotation(
                s,
                project.id,
                user.id,
                clip_id,
                label=None if cannot else label,
                transcript=ss.get(f"label.transcript.{key}"),
                tags=tags,
                unsure="Unsure" in (ss.get(f"label.flags.{key}") or []),
                cannot_label_reason=reason,
                time_spent_ms=int((time.monotonic() - ss["label.shown_at"]) * 1000),
                convention_version=ss.get("label.version"),
                idempotency_key=key,
            )
    except (AnnotationError, WriteWaitTimeout) as exc:  # the second: the SQLite file is too busy
        ss["label.flash"] = ("error", str(exc))
        return
    said = f"marked as cannot label ({reason})" if cannot and result.status == "created" else result.message
    ss["label.flash"] = ("success" if result.ok else "warning", f"Clip {result.clip_id}: {said}")
    ss["label.last"] = (result.annotation_id, clip_id) if result.status == "created" else None
    ss["label.saved"] = ss.get("label.saved", 0) + 1  # the caption's counts are read afresh
    claim_next()


def skip(clip_id: int, *, missing: bool = False) -> None:
    if _stale(clip_id):
        return
    with ws.db.write() as s:
        skip_clip(s, project.id, user.id, clip_id)
    ss["label.flash"] = (
        (
            "warning",
            f"The audio of clip {clip_id} is missing; it is flagged for a reviewer. Here is the next clip.",
        )
        if missing
        else ("info", f"Skipped clip {clip_id}")
    )
    claim_next()


def undo(clip_id: int, key: str) -> None:
    """Backspace, Ctrl+Z or the Undo button: take back the last label and put its clip back on screen."""
    if _stale(clip_id, key) or (last := ss.pop("label.last", None)) is None:
        return
    with ws.db.write() as s:
        result = undo_annotation(s, project.id, user.id, last[0])
        if result.ok:
            hold_clip(s, project.id, user.id, last[1])
    ss["label.flash"] = ("info" if result.ok else "warning", f"Clip {result.clip_id}: {result.message}")
    if result.ok:
        ss["label.saved"] = ss.get("label.saved", 0) + 1
        claim_next()


def try_again() -> None:
    """After the audio store could not be read: look at the same clip again, from a clean slate."""
    audio.played(True)


@st.cache_data(ttl=20, show_spinner=False)
def my_progress(project_id: int, user_id: int, saved: int):
    """``saved`` counts this session's labels and undos: each one reads the counts afresh."""
    with ws.db.read() as s:
        return progress(s, project_id, user_id)


def show_progress() -> None:
    """The caption beside the title: drawn last, as the next clip can be heard without it."""
    mine = my_progress(project.id, user.id, ss.get("label.saved", 0))
    median = f" · {mine.median_seconds:.1f} s per clip" if mine.median_seconds else ""
    counts.caption(
        f"You: {mine.done:,} labelled, {mine.today:,} today{median} · {mine.open_clips:,} clips left for you"
        f" · Order: {queue_caption(project.settings)}"
    )


if ss.get("label.for") != (project.id, user.id):
    claim_next()
head, stats = st.columns([1, 4], vertical_alignment="bottom")
head.title("Label")
counts = stats.empty()
if flash := ss.pop("label.flash", None):
    getattr(stats, flash[0])(flash[1])  # beside the title: the form does not move down

if ss["label.clip"] is None:
    st.success(
        "Nothing left for you to label in this project right now. Thank you!", icon=":material/done_all:"
    )
    st.button("Look again", key="label.again", on_click=claim_next)
    show_progress()
    st.stop()
with ws.db.read() as s:
    task = label_task(s, ws.store, project.id, user.id, ss["label.clip"], project=project)
if not task.audio_path.is_file():
    if audio.store_unreadable(task.clip_id, task.audio_path):
        # Every clip would look missing: flag nothing, set nothing aside, keep the clip claimed.
        audio.played(False)
        st.error(
            "The audio store cannot be read right now, so no clip can be played. Nothing was flagged "
            "or skipped: your clips stay in your queue. Please tell an administrator (the server's log "
            "says why), then try again.",
            icon=":material/cloud_off:",
        )
        st.button("Try again", key="label.retry", on_click=try_again, icon=":material/refresh:")
        show_progress()
        st.stop()
    audio.flag_missing(task.clip_id)
    audio.played(False)
    skip(task.clip_id, missing=True)
    st.rerun()
audio.played(True)
ss["label.version"] = task.convention.version if task.convention else None
token, keys = ss["label.key"], label_keymap(project.classes, project.tag_groups)
left, right = st.columns([3, 2], gap="medium")
with left:
    title, undo_box = st.columns([3, 1], vertical_alignment="bottom")
    title.subheader(f"Clip {task.clip_id}")
    title.caption(f"{task.duration_s:.2f} s · {task.sample_rate:,} Hz")
    if ss.get("label.last"):
        undo_box.button("Undo last", key=f"label.undo.{token}", on_click=undo, args=(task.clip_id, token))
    player.waveform_player(
        task.audio_path,
        clip_id=task.clip_id,
        token=token,
        pills=player.pill_keys(keys, project.tag_groups, token),
        buttons=player.shifted_button_keys(keys, token),
        sheet=keys.sheet(project.classes),
        autoplay=ss.get("label.autoplay", True),
        on_undo=undo,
    )
    if task.prediction:
        p = task.prediction
        st.info(f"Model suggestion: **{p['label'] or p['transcript']}** ({p['confidence'] or 0:.0%})")
    label_form.label_form(
        project,
        task.clip_id,
        keys,
        token,
        submit=submit,
        skip=skip,
        need_reason=ss.pop("label.need_reason", None) == token,
    )
with right:
    conv = task.convention
    st.subheader(f"Conventions v{conv.version}" if conv else "Conventions")
    with st.container(height=460, border=True):
        st.markdown(demote_headings(conv.text) if conv else "_No conventions written yet for this project._")
    if task.gold:
        with st.expander(f"Gold examples ({len(task.gold)})"):
            for g in task.gold:
                audio.play_clip(g.clip_id, ws.store.path(g.storage_key))
                st.markdown(
                    f"**{g.label or ''}** {f'“{g.transcript}”' if g.transcript else ''} — {g.explanation}"
                )

with left:  # last: the rest of the page is usable while it is drawn
    player.spectrogram(task.audio_path, token=token)
show_progress()
st.sidebar.toggle("Autoplay clips", value=True, key="label.autoplay")
