"""The region editor of the Label page for long recordings: a Streamlit v2 component of our own
(``pages/labeling/static/regions.js`` and ``regions.css``, plain DOM and canvas, nothing to build), as the
clip player is.

The server sends the recording's min/max peaks (:func:`labeling.data.region_peaks.recording_peaks`,
cached on disk), never its samples. The audio plays from Streamlit's media endpoint, which answers
range requests, so the browser fetches only what it plays: the page puts an ``st.audio`` of the
recording in a hidden container and the editor plays that element's address.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from analysis.region_signal import Peaks
from pages.labeling.player import widget_class

STATIC = Path(__file__).with_name("static")
HEIGHT = 330
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
    """The recording's ``st.audio``, out of sight: the editor plays its address (range requests)."""
    st.html(f"<style>.{widget_class(audio_key(token))} {{display: none;}}</style>")
    with st.container(key=audio_key(token)):
        st.audio(str(path))


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
) -> None:
    """Mount the editor for the recording on screen; ``on_submit`` runs when the annotator submits
    (read the regions with :func:`submitted`)."""
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
            "audio": widget_class(audio_key(token)),
        },
        on_submit_change=on_submit,
        height=HEIGHT,
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
    """What the editor's Submit sent: ``{"token": …, "regions": [{start, end, label, text}, …]}``."""
    state = st.session_state.get(editor_key(token))
    value = getattr(state, "submit", None) if state is not None else None
    return value if isinstance(value, dict) else None
