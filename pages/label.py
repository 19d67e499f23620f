"""Label: hear a clip, see the conventions beside it, choose a class (number keys) and the next one comes.

Blind by construction: everything shown comes from ``label_task``, which carries no one else's label.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import streamlit as st

from labeling.annotations import (
    AnnotationError,
    action_shortcuts,
    class_shortcuts,
    label_task,
    submit_annotation,
)
from labeling.clips import load_audio
from labeling.conventions import demote_headings
from labeling.queue import next_clip, progress, skip_clip
from pages import charts, common

REASONS = ("unintelligible", "no speech", "wrong language", "broken audio", "other")
user = common.require_permission("label")
project = common.current_project()
ws = common.workspace()
ss = st.session_state


def claim_next() -> None:
    with ws.db.write() as s:
        item = next_clip(s, project.id, user.id)
    # Every widget of the form is keyed by this token: a new clip gets new widgets (nothing chosen
    # for the last clip stays selected), and a press on the last clip's widgets names the last clip.
    ss.update({"label.for": (project.id, user.id), "label.clip": item.clip_id if item else None})
    ss.update({"label.shown_at": time.monotonic(), "label.key": uuid.uuid4().hex})


def _stale(clip_id: int) -> bool:
    # A press that went down while the previous clip was still on screen names that clip (its widgets'
    # keys say so); it must not label the clip that replaced it, which nobody has heard yet.
    if clip_id != ss.get("label.clip"):
        ss["label.flash"] = ("info", f"Ignored a key press meant for clip {clip_id}: it is already done.")
        return True
    return False


def submit(label: str | None, clip_id: int, key: str, *, cannot: bool = False) -> None:
    if _stale(clip_id):
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
                cannot_label_reason=ss.get(f"label.reason.{key}") if cannot else None,
                time_spent_ms=int((time.monotonic() - ss["label.shown_at"]) * 1000),
                convention_version=ss.get("label.version"),
                idempotency_key=key,
            )
    except AnnotationError as exc:
        ss["label.flash"] = ("error", str(exc))
        return
    ss["label.flash"] = ("success" if result.ok else "warning", f"Clip {result.clip_id}: {result.message}")
    claim_next()


def skip(clip_id: int) -> None:
    if _stale(clip_id):
        return
    with ws.db.write() as s:
        skip_clip(s, project.id, user.id, clip_id)
    ss["label.flash"] = ("info", f"Skipped clip {clip_id}")
    claim_next()


@st.cache_data(ttl=20, show_spinner=False)
def my_progress(project_id: int, user_id: int):  # type: ignore[no-untyped-def]
    with ws.db.read() as s:
        return progress(s, project_id, user_id)


@st.cache_data(max_entries=16, show_spinner=False)
def figures(path: str):  # type: ignore[no-untyped-def]
    y, sr = load_audio(Path(path))
    wave, spec = charts.waveform(y, sr), charts.spectrogram(y, sr)
    wave.update_layout(height=140)
    spec.update_layout(height=200)
    return wave, spec


if ss.get("label.for") != (project.id, user.id):
    claim_next()
st.title("Label")
mine = my_progress(project.id, user.id)
median = f"{mine.median_seconds:.1f} s per clip · " if mine.median_seconds else ""
st.caption(
    f"You: {mine.done:,} labelled, {mine.today:,} today · {median}{mine.open_clips:,} clips still open"
)
if flash := ss.pop("label.flash", None):
    getattr(st, flash[0])(flash[1])

if ss["label.clip"] is None:
    st.success(
        "Nothing left for you to label in this project right now. Thank you!", icon=":material/done_all:"
    )
    st.button("Look again", key="label.again", on_click=claim_next)
else:
    with ws.db.read() as s:
        task = label_task(s, ws.store, project.id, user.id, ss["label.clip"])
    ss["label.version"] = task.convention.version if task.convention else None
    token = ss["label.key"]
    keys = class_shortcuts(project.classes)
    actions = action_shortcuts(keys)
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.subheader(f"Clip {task.clip_id}")
        st.caption(f"{task.duration_s:.2f} s · {task.sample_rate:,} Hz")
        st.audio(str(task.audio_path), autoplay=ss.get("label.autoplay", True))
        if task.prediction:
            p = task.prediction
            st.info(f"Model suggestion: **{p['label'] or p['transcript']}** ({p['confidence'] or 0:.0%})")
        with st.form(f"label.form.{token}", border=True):
            if project.transcribes:
                st.text_area("Transcript", key=f"label.transcript.{token}", height=90)
            if project.classifies:
                cols = st.columns(min(len(project.classes), 5) or 1)
                for i, name in enumerate(project.classes):
                    cols[i % len(cols)].form_submit_button(
                        name,
                        key=f"label.class.{i}.{token}",
                        on_click=submit,
                        args=(name, task.clip_id, token),
                        width="stretch",
                        shortcut=keys[i],
                        type="primary",
                    )
            else:
                st.form_submit_button(
                    "Submit",
                    key=f"label.submit.{token}",
                    on_click=submit,
                    args=(None, task.clip_id, token),
                    shortcut="ctrl+enter",
                    type="primary",
                )
            with st.container(horizontal=True, gap="large"):
                for group, values in project.tag_groups.items():
                    st.pills(group, values, selection_mode="multi", key=f"label.tags.{group}.{token}")
                st.pills("Flags", ["Unsure"], selection_mode="multi", key=f"label.flags.{token}")
            c1, c2, c3 = st.columns([2, 1, 1], vertical_alignment="bottom")
            c1.selectbox("Cannot label because", REASONS, key=f"label.reason.{token}")
            c2.form_submit_button(
                "Cannot label",
                key=f"label.cannot.{token}",
                on_click=submit,
                args=(None, task.clip_id, token),
                kwargs={"cannot": True},
                shortcut=actions["cannot"],
            )
            c3.form_submit_button(
                "Skip",
                key=f"label.skip.{token}",
                on_click=skip,
                args=(task.clip_id,),
                shortcut=actions["skip"],
            )
        wave, spec = figures(str(task.audio_path))
        st.plotly_chart(wave, key="label.waveform", config={"displayModeBar": False})
        st.plotly_chart(spec, key="label.spectrogram", config={"displayModeBar": False})
    with right:
        conv = task.convention
        st.subheader(f"Conventions v{conv.version}" if conv else "Conventions")
        with st.container(height=460, border=True):
            st.markdown(
                demote_headings(conv.text) if conv else "_No conventions written yet for this project._"
            )
        if task.gold:
            with st.expander(f"Gold examples ({len(task.gold)})"):
                for g in task.gold:
                    st.audio(str(ws.store.path(g.storage_key)))
                    st.markdown(
                        f"**{g.label or ''}** {f'“{g.transcript}”' if g.transcript else ''} — {g.explanation}"
                    )

st.sidebar.toggle("Autoplay clips", value=True, key="label.autoplay")
