"""Playing a clip, the same way on every page: :func:`play_clip` (and :func:`clip_audio` for pages that
draw their own player). A clip whose audio file is missing from the store never stops a page: the page
says so, the clip gets a ``missing_audio`` flag that reviewers see, and the page goes on. When the store
itself cannot be read (see :func:`labeling.data.missing_audio.store_can_be_read`) nothing is flagged: the page
says the store cannot be read, and the reason, with the store's address, goes to the server's log."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import streamlit as st

from labeling.data.missing_audio import (
    flag_missing_audio,
    has_open_flag,
    missing_audio_frame,
    recheck_missing_audio,
    store_can_be_read,
)
from pages.widgets import common

log = logging.getLogger("earmark")
#: Clips not found one after another in this session (a clip that plays resets it).
MISSES = "audio.misses_in_a_row"
UNREADABLE = (
    "The audio store cannot be read right now, so no clip can be played. Nothing was flagged. "
    "An administrator can find the reason in the server's log."
)


def played(found: bool) -> None:
    """Count a clip found (the run of misses ends) or not found (one more in a row)."""
    st.session_state[MISSES] = 0 if found else st.session_state.get(MISSES, 0) + 1


def store_unreadable(clip_id: int, audio_path: Path) -> bool:
    """Whether ``clip_id``'s file is missing because the store cannot be read (then logged)."""
    ws = common.workspace()
    if store_can_be_read(ws.store, misses_in_a_row=st.session_state.get(MISSES, 0)):
        return False
    log.error(
        "the audio store %s cannot be read: clip %s (%s) not found, %s in a row",
        ws.store.url,
        clip_id,
        audio_path,
        st.session_state.get(MISSES, 0) + 1,
    )
    return True


def flag_missing(clip_id: int) -> None:
    ws, user = common.workspace(), common.signed_in_user()
    with ws.db.write() as s:
        flag_missing_audio(s, clip_id, actor_id=user.id if user else None)


def clip_audio(clip_id: int, audio_path: Path, *, where: Any = st) -> Path | None:
    """``audio_path`` when the file is there; else a warning in ``where``, a flag on the clip (unless the
    store cannot be read), and None."""
    if audio_path.is_file():
        played(True)
        return audio_path
    ws = common.workspace()
    with ws.db.read() as s:
        known = has_open_flag(s, clip_id)
    if not known and store_unreadable(clip_id, audio_path):
        played(False)
        where.error(f"Clip {clip_id}: {UNREADABLE}", icon=":material/cloud_off:")
        return None
    if not known:
        flag_missing(clip_id)
        played(False)  # a clip already flagged says nothing new about the store
    where.warning(
        f"The audio of clip {clip_id} is missing from the store; the clip is flagged for a reviewer.",
        icon=":material/music_off:",
    )
    return None


def play_clip(clip_id: int, audio_path: Path, *, where: Any = st) -> Path | None:
    """An audio player for the clip in ``where`` (a column, a container, ``st``); None without audio."""
    path = clip_audio(clip_id, audio_path, where=where)
    if path is not None:
        where.audio(str(path))
    return path


def missing_audio_panel(project_id: int) -> None:
    """For reviewers: the clips whose audio is missing, and a way to close their flags once it is back."""
    ws = common.workspace()
    with ws.db.read() as s:
        missing = missing_audio_frame(s, project_id)
    if missing.empty:
        return
    with st.expander(f"Clips whose audio is missing ({len(missing):,})", icon=":material/music_off:"):
        st.caption(
            "Annotators are handed the next clip instead of these. Restore the files to the audio store "
            "(from a backup, or import the recordings again), then look again: the flags of clips whose "
            "audio is back close."
        )
        st.dataframe(missing, hide_index=True, key="audio.missing")
        if st.button("Look for their audio again", key="audio.recheck"):
            if not ws.store.readable():
                log.error("the audio store %s cannot be read", ws.store.url)
                st.error(UNREADABLE, icon=":material/cloud_off:")
                return
            user = common.signed_in_user()
            with ws.db.write() as s:
                back, still = recheck_missing_audio(
                    s, ws.store, project_id, actor_id=user.id if user else None
                )
            st.success(f"{back:,} clips have their audio back; {still:,} are still missing.")
