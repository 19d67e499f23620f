"""The Label page's form for one clip: class buttons, tags, Unsure, cannot-label and skip.

Every widget is keyed by ``token``, the clip's claim token: a new clip gets new widgets, so nothing
chosen for one clip stays selected on the next, and a press on them names their own clip.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import streamlit as st

from labeling.annotate.annotations import Keymap
from labeling.data.projects import ProjectInfo

REASONS = ("unintelligible", "no speech", "wrong language", "broken audio", "other")


def _with_key(keys: Keymap, group: str, value: str) -> str:
    """A tag pill's text: the value, and its key in grey."""
    return f"{value} :gray[{keys.tags.get(f'{group}:{value}', '')}]"


def label_form(
    project: ProjectInfo,
    clip_id: int,
    keys: Keymap,
    token: str,
    *,
    submit: Callable[..., None],
    skip: Callable[..., None],
    need_reason: bool = False,
) -> None:
    """The form; ``submit(label, clip_id, token, cannot=False)`` and ``skip(clip_id)`` are its callbacks.
    ``need_reason``: Cannot label was pressed without a reason, which the reason box asks for."""
    # Ctrl+Enter in the transcript would submit the form as well as press the button whose shortcut
    # it is: one submit is enough, and with class buttons the form's would be the first class's.
    with st.form(f"label.form.{token}", border=True, enter_to_submit=False):
        if project.transcribes:
            st.text_area("Transcript", key=f"label.transcript.{token}", height=80)
        with st.container(horizontal=True, gap="small"):
            choices = list(zip(project.classes, keys.classes, strict=True)) if project.classifies else []
            for i, (name, key) in enumerate(choices or [(None, "ctrl+enter")]):
                st.form_submit_button(
                    name or "Submit",
                    key=f"label.class.{i}.{token}" if name else f"label.submit.{token}",
                    on_click=submit,
                    args=(name, clip_id, token),
                    shortcut=key,
                    type="primary",
                    width="content",
                )
        groups = st.columns(2)
        for i, (group, values) in enumerate(project.tag_groups.items()):
            groups[i % 2].pills(
                group,
                values,
                selection_mode="multi",
                key=f"label.tags.{group}.{token}",
                wrap=True,
                format_func=functools.partial(_with_key, keys, group),
            )
        with st.container(horizontal=True, vertical_alignment="bottom", gap="small"):
            st.pills(
                "Flags",
                ["Unsure"],
                selection_mode="multi",
                key=f"label.flags.{token}",
                format_func=lambda v: f"{v} :gray[{keys.unsure or ''}]",
            )
            st.selectbox(
                # Cannot label pressed without a reason: asked here, where the annotator is looking.
                ":orange[:material/warning: Why can it not be labelled?]"
                if need_reason
                else "Cannot label because",
                REASONS,
                index=None,
                placeholder="Choose the reason…",
                key=f"label.reason.{token}",
                width=190,
            )
            st.form_submit_button(
                "Cannot label",
                key=f"label.cannot.{token}",
                on_click=submit,
                args=(None, clip_id, token),
                kwargs={"cannot": True},
                shortcut=keys.cannot,
            )
            st.form_submit_button(
                "Skip", key=f"label.skip.{token}", on_click=skip, args=(clip_id,), shortcut=keys.skip
            )
