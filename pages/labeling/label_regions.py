"""The Label page for a ``regions`` project: the next recording from the queue, drawn in the region editor.

Recordings are handed out as clips are (the same queue, leases, k and skips). Blind: the editor starts
from the annotator's own regions, or the energy-VAD proposal, never anyone else's. Submit validates the
regions on the server and stores them with the hand-out's completion; a refusal is said above the
editor, which keeps what was drawn.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import streamlit as st

from labeling.annotate.annotations import AnnotationError, class_shortcuts
from labeling.annotate.queue import next_clip, progress, skip_clip
from labeling.annotate.region_labels import my_recordings, region_task, submit_regions
from labeling.data.conventions import current_convention, demote_headings
from labeling.data.region_peaks import loudness_file, recording_peaks
from labeling.data.regions import RegionsError
from pages.labeling import region_editor
from pages.widgets import audio

ss = st.session_state


@st.cache_data(max_entries=8, show_spinner=False)
def _peaks(path: str, storage_key: str, cache_dir: str):
    return recording_peaks(Path(path), storage_key=storage_key, cache_dir=Path(cache_dir))


def open_recording(project_id: int, user_id: int, clip_id: int) -> None:
    """Put recording ``clip_id`` in the editor the next time the Label page shows (a recording the
    annotator submitted, to correct it): what "Open a recording you submitted" and My labels do."""
    ss.update({"regions.for": (project_id, user_id), "regions.clip": int(clip_id)})
    ss.update({"regions.shown_at": time.monotonic(), "regions.token": uuid.uuid4().hex})


def show(project: Any, user: Any, ws: Any) -> None:
    """Render the page for ``project`` (a regions project) and the signed-in ``user``."""

    def claim_next() -> None:
        with ws.db.write() as s:
            item = next_clip(s, project.id, user.id)
        ss.update({"regions.for": (project.id, user.id), "regions.clip": item.clip_id if item else None})
        ss.update({"regions.shown_at": time.monotonic(), "regions.token": uuid.uuid4().hex})

    def submit() -> None:
        token = ss.get("regions.token")
        sent = region_editor.submitted(token) if token else None
        if not sent or sent.get("token") != token or ss.get("regions.clip") is None:
            return  # a Submit from a recording no longer on screen
        clip_id = ss["regions.clip"]
        try:
            with ws.db.write() as s:
                result = submit_regions(
                    s,
                    project.id,
                    user.id,
                    clip_id,
                    sent.get("regions") or [],
                    time_spent_ms=int((time.monotonic() - ss["regions.shown_at"]) * 1000),
                    idempotency_key=token,
                )
        except (RegionsError, AnnotationError) as exc:
            ss["regions.flash"] = ("error", f"Nothing was saved: {exc}")
            return
        n = len(sent.get("regions") or [])
        stored = result.status in ("created", "duplicate", "already_labelled")
        said = f"{n} region{'s' if n != 1 else ''} saved" if stored else result.message
        ss["regions.flash"] = ("success" if stored else "warning", f"Recording {clip_id}: {said}")
        ss["regions.saved"] = ss.get("regions.saved", 0) + 1
        claim_next()

    def reopen() -> None:
        chosen = ss.get("regions.reopen")
        if chosen is not None:
            open_recording(project.id, user.id, int(chosen))
            ss["regions.reopen"] = None

    def skip(clip_id: int) -> None:
        with ws.db.write() as s:
            skip_clip(s, project.id, user.id, clip_id)
        ss["regions.flash"] = ("info", f"Skipped recording {clip_id}")
        claim_next()

    if ss.get("regions.for") != (project.id, user.id):
        claim_next()
    with ws.db.read() as s:
        mine = progress(s, project.id, user.id)
    head, stats = st.columns([1, 4], vertical_alignment="bottom")
    head.title("Label")
    stats.caption(
        f"You: {mine.done:,} recordings done, {mine.today:,} today · {mine.open_clips:,} left for you"
    )
    if flash := ss.pop("regions.flash", None):
        getattr(st, flash[0])(flash[1])
    with ws.db.read() as s:
        done = my_recordings(s, project.id, user.id)
    if not done.empty:
        names = dict(zip(done["clip_id"], done["recording"], strict=True))
        st.sidebar.selectbox(
            "Open a recording you submitted",
            list(names),
            index=None,
            format_func=lambda c: f"{names[c]} (recording {c})",
            key="regions.reopen",
            on_change=reopen,
            placeholder="Correct its regions…",
        )
    if ss["regions.clip"] is None:
        st.success(
            "Nothing left for you to label in this project right now. Thank you!", icon=":material/done_all:"
        )
        st.button("Look again", key="regions.again", on_click=claim_next)
        return
    with ws.db.read() as s:
        task = region_task(s, ws.store, project.id, user.id, ss["regions.clip"])
        conv = current_convention(s, project.id)
    if audio.clip_audio(task.clip_id, task.audio_path) is None:
        st.button("Skip this recording", key="regions.skip.missing", on_click=skip, args=(task.clip_id,))
        return
    token = ss["regions.token"]
    title, skip_box = st.columns([4, 1], vertical_alignment="bottom")
    title.subheader(task.name)
    title.caption(
        f"Recording {task.clip_id} · {task.duration_s:,.1f} s"
        + (" · starting from the automatic proposal: accept or redraw it" if task.proposals else "")
    )
    skip_box.button("Skip recording", key=f"regions.skip.{token}", on_click=skip, args=(task.clip_id,))
    if task.adjudicated:
        st.info(
            "A reviewer has already saved this recording's final regions. You can still correct yours; "
            "if you change them, the recording goes back to the reviewer, marked as changed after "
            "adjudication.",
            icon=":material/gavel:",
        )
    peaks = _peaks(str(task.audio_path), task.storage_key, str(ws.settings.cache_dir))
    audio_url, loudness_url = region_editor.recording_urls(
        task.audio_path, loudness_file(ws.settings.cache_dir, task.storage_key)
    )
    if audio_url is None:
        region_editor.hidden_audio(task.audio_path, token)
    region_editor.region_editor(
        token=token,
        peaks=peaks,
        audio_url=audio_url,
        loudness_url=loudness_url,
        tag_groups=project.tag_groups,
        duration=task.duration_s,
        classes=project.classes,
        class_keys=class_shortcuts(project.classes),
        regions=task.regions,
        proposals=task.proposals,
        on_submit=submit,
    )
    with st.expander(f"Conventions v{conv.version}" if conv else "Conventions"):
        st.markdown(demote_headings(conv.text) if conv else "_No conventions written yet for this project._")
