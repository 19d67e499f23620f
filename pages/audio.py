"""Playing a clip, the same way on every page: :func:`play_clip` (and :func:`clip_audio` for pages that
draw their own player). A clip whose audio file is missing from the store never stops a page: the page
says so, the clip gets a ``missing_audio`` flag that reviewers see, and the page goes on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from labeling.missing_audio import flag_missing_audio, missing_audio_frame, recheck_missing_audio
from pages import common


def clip_audio(clip_id: int, audio_path: Path, *, where: Any = st) -> Path | None:
    """``audio_path`` when the file is there; else a warning in ``where``, a flag on the clip, and None."""
    if audio_path.is_file():
        return audio_path
    ws, user = common.workspace(), common.signed_in_user()
    with ws.db.write() as s:
        flag_missing_audio(s, clip_id, actor_id=user.id if user else None)
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
            user = common.signed_in_user()
            with ws.db.write() as s:
                back, still = recheck_missing_audio(
                    s, ws.store, project_id, actor_id=user.id if user else None
                )
            st.success(f"{back:,} clips have their audio back; {still:,} are still missing.")
