"""The Label page's waveform player: playhead, click-to-seek, zoom, speed and the page's keys.

A Streamlit v2 component of our own (``pages/labeling/static/player.js`` and ``player.css``, plain DOM and
canvas): nothing to build or download, so ``make run`` works offline. The audio travels as a data
URL and the waveform as the server's min/max envelope (:func:`analysis.signal.waveform_envelope`).
"""

from __future__ import annotations

import base64
import mimetypes
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from analysis.signal import waveform_envelope
from labeling.annotate.annotations import Keymap
from labeling.data.clips import load_audio

STATIC = Path(__file__).with_name("static")
ENVELOPE_POINTS = 4000
HEIGHT = 140

_player = st.components.v2.component(
    "earmark_waveform_player",
    css=(STATIC / "player.css").read_text(encoding="utf-8"),
    js=(STATIC / "player.js").read_text(encoding="utf-8"),
)


@st.cache_data(max_entries=16, show_spinner=False)
def clip_media(path: str) -> dict[str, Any]:
    """The audio as a data URL, its duration and its waveform envelope (rounded: it is drawn, not read)."""
    y, sr = load_audio(Path(path))
    env = waveform_envelope(y, sr, points=ENVELOPE_POINTS)
    mime = mimetypes.guess_type(path)[0] or "audio/wav"
    return {
        "src": f"data:{mime};base64,{base64.b64encode(Path(path).read_bytes()).decode('ascii')}",
        "duration": len(y) / sr,
        "mins": env["min"].round(3).tolist(),
        "maxs": env["max"].round(3).tolist(),
    }


def widget_class(key: str) -> str:
    """The CSS class Streamlit gives the element of a keyed widget (``st-key-…``)."""
    return "st-key-" + re.sub(r"[^a-zA-Z0-9_-]", "-", key.strip())


def pill_keys(keymap: Keymap, tag_groups: Mapping[str, Sequence[str]], token: str) -> list[dict[str, Any]]:
    """What each tag key (and the Unsure key) presses: the pill's widget, its position in it, and
    whether Shift with the key does the same."""
    out = []
    for group, values in tag_groups.items():
        for i, value in enumerate(values):
            if key := keymap.tags.get(f"{group}:{value}"):
                out.append({"key": key, "container": widget_class(f"label.tags.{group}.{token}"), "index": i})
    if keymap.unsure:
        out.append({"key": keymap.unsure, "container": widget_class(f"label.flags.{token}"), "index": 0})
    return [{**spec, "shift": keymap.shift_too(str(spec["key"]))} for spec in out]


def shifted_button_keys(keymap: Keymap, token: str) -> list[dict[str, Any]]:
    """Shift with a button's letter (a class, Skip, Cannot label): the button to press. The letter
    alone is Streamlit's own shortcut for the button, which does not answer to Shift."""
    buttons = [(key, f"label.class.{i}.{token}") for i, key in enumerate(keymap.classes)]
    buttons += [(keymap.skip, f"label.skip.{token}"), (keymap.cannot, f"label.cannot.{token}")]
    return [
        {"key": key, "container": widget_class(widget)} for key, widget in buttons if keymap.shift_too(key)
    ]


def waveform_player(
    path: Path,
    *,
    token: str,
    pills: list[dict[str, Any]],
    buttons: list[dict[str, Any]],
    sheet: list[tuple[str, str]],
    autoplay: bool,
    on_undo: Callable[[], None],
) -> None:
    """Mount the player for the clip on screen; ``on_undo`` runs when Backspace/Ctrl+Z is pressed."""
    _player(
        key=f"label.player.{token}",
        data={
            **clip_media(str(path)),
            "token": token,
            "pills": pills,
            "buttons": buttons,
            "sheet": sheet,
            "autoplay": autoplay,
        },
        on_undo_change=on_undo,
        height=HEIGHT,
    )
