"""The region editor of the Label page for long recordings: a Streamlit v2 component of our own
(``pages/labeling/static/regions.js`` and ``regions.css``, plain DOM and canvas, nothing to build), as the
clip player is.

The server sends the recording's min/max peaks (:func:`labeling.data.region_peaks.recording_peaks`,
cached on disk), never its samples. The audio and the loudness track edges snap on are fetched from
Streamlit's media endpoint by range requests (:func:`pages.widgets.file_media.file_url`), read from
disk as asked: the browser fetches only what it plays, and the server holds none of the recording.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from analysis.region_signal import Peaks, loudness_hop
from pages.labeling.player import widget_class
from pages.widgets.file_media import file_url

STATIC = Path(__file__).with_name("static")
HEIGHT = 330
#: The row of tag buttons, when the project has tags.
TAG_ROW = 36
#: Keys the editor keeps for itself (split, merge, loop, next, previous): a class named by one of these
#: letters is chosen with a digit instead.
EDITOR_KEYS = frozenset("smlnp")
#: One colour per class, in the project's order (then round again): distinct on light and dark themes.
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#e377c2", "#8c564b")

_editor = st.components.v2.component(
    "earmark_region_editor",
    css=(STATIC / "regions.css").read_text(encoding="utf-8"),
    js=(STATIC / "regions.js").read_text(encoding="utf-8"),
)


def audio_key(token: str) -> str:
    return f"regions.audio.{token}"


def hidden_audio(path: Path, token: str) -> None:
    """The recording's ``st.audio``, out of sight, for where :func:`file_url` has no server to serve
    from (the editor then plays this element's address)."""
    st.html(f"<style>.{widget_class(audio_key(token))} {{display: none;}}</style>")
    with st.container(key=audio_key(token)):
        st.audio(str(path))


def recording_urls(audio_path: Path, loudness_path: Path) -> tuple[str | None, str | None]:
    """Where the editor fetches the recording's audio and its loudness track (range requests)."""
    mimetype = mimetypes.guess_type(audio_path.name)[0] or "audio/wav"
    audio = file_url(audio_path, mimetype=mimetype, name="regions.audio")
    loud = (
        file_url(loudness_path, mimetype="application/octet-stream", name="regions.loudness")
        if loudness_path.is_file()
        else None
    )
    return audio, loud


def region_editor(
    *,
    token: str,
    peaks: Peaks,
    duration: float,
    classes: Sequence[str],
    class_keys: Sequence[str | None],
    regions: list[dict[str, Any]],
    proposals: bool,
    on_submit: Callable[[], None],
    tag_groups: Mapping[str, Sequence[str]] | None = None,
    audio_url: str | None = None,
    loudness_url: str | None = None,
) -> None:
    """Mount the editor for the recording on screen; ``on_submit`` runs when the annotator submits
    (read the regions with :func:`submitted`). ``tag_groups`` are the project's tags (group → values),
    set per region; without ``audio_url`` the editor plays the page's :func:`hidden_audio`, and
    without ``loudness_url`` it snaps on the peaks."""
    _editor(
        key=editor_key(token),
        data={
            "token": token,
            "duration": duration,
            "secondsPerBucket": peaks.seconds_per_pixel,
            # Whole numbers in -127..127: a third of the bytes of rounded floats, finer than the pixels.
            "mins": levels(peaks.min),
            "maxs": levels(peaks.max),
            "classes": [
                {"name": c, "key": k, "colour": COLOURS[i % len(COLOURS)]}
                for i, (c, k) in enumerate(zip(classes, editor_class_keys(class_keys), strict=True))
            ],
            "regions": [{**r, "proposal": proposals} for r in regions],
            "tagGroups": [{"name": g, "values": list(v)} for g, v in (tag_groups or {}).items()],
            "audio": widget_class(audio_key(token)),
            "audioUrl": audio_url,
            "loudnessUrl": loudness_url,
            "loudnessHop": loudness_hop(peaks.sr) / peaks.sr,
        },
        on_submit_change=on_submit,
        height=HEIGHT + (TAG_ROW if tag_groups else 0),
    )


def editor_class_keys(class_keys: Sequence[str | None]) -> list[str | None]:
    """The page's class keys, or 1–9 then 0 when one of them is a key the editor keeps for itself."""
    if not EDITOR_KEYS & {k for k in class_keys if k}:
        return list(class_keys)
    return [str((i + 1) % 10) if i < 10 else None for i in range(len(class_keys))]


def levels(values: Any) -> list[int]:
    """Peaks as the editor receives them: ``round(127 * value)``, clipped to -127..127."""
    return np.clip(np.round(np.asarray(values, dtype=np.float64) * 127), -127, 127).astype(int).tolist()


def editor_key(token: str) -> str:
    return f"regions.editor.{token}"


def submitted(token: str) -> dict[str, Any] | None:
    """What the editor's Submit sent: ``{"token": …, "regions": [{start, end, label, text, tags}, …]}``."""
    state = st.session_state.get(editor_key(token))
    value = getattr(state, "submit", None) if state is not None else None
    return value if isinstance(value, dict) else None
