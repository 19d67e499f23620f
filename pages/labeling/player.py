"""The Label page's waveform player (playhead, click-to-seek, zoom, speed and the page's keys) and the
clip's spectrogram below the form.

Streamlit v2 components of our own (``pages/labeling/static/player.js``, ``spectrogram.js`` and their
CSS, plain DOM and canvas): nothing to build or download, so ``make run`` works offline. The audio
travels as a data URL, the waveform as the server's min/max envelope
(:func:`analysis.signal.waveform_envelope`) and the spectrogram as its dB values
(:func:`analysis.signal.spectrogram_db`), both as bytes in base64: a key press is followed by a new
clip, and a few kilobytes reach the browser and are drawn on a canvas in a few milliseconds, where a
plotly heatmap and a JSON list of 8,000 numbers took it hundreds (at a load average of 30).
"""

from __future__ import annotations

import base64
import functools
import mimetypes
import re
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import plotly.colors
import streamlit as st

from analysis.signal import spectrogram_db, waveform_envelope
from labeling.annotate.annotations import Keymap
from labeling.data.clips import load_audio

STATIC = Path(__file__).with_name("static")
ENVELOPE_POINTS = 4000
HEIGHT = 140
SPECTROGRAM_HEIGHT = 190
#: The spectrogram's colour scale spans this many dB below the clip's loudest bin (black: the floor).
TOP_DB = 80.0

_player = st.components.v2.component(
    "earmark_waveform_player",
    css=(STATIC / "player.css").read_text(encoding="utf-8"),
    js=(STATIC / "player.js").read_text(encoding="utf-8"),
)
_spectrogram = st.components.v2.component(
    "earmark_spectrogram",
    css=(STATIC / "spectrogram.css").read_text(encoding="utf-8"),
    js=(STATIC / "spectrogram.js").read_text(encoding="utf-8"),
)


def _b64(values: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(values).tobytes()).decode("ascii")


@cache
def magma() -> str:
    """Plotly's Magma scale sampled at 256 levels, as 768 RGB bytes in base64 (level 0: the floor)."""
    levels = plotly.colors.sample_colorscale("Magma", list(np.linspace(0, 1, 256)))
    rgb = np.array([plotly.colors.unlabel_rgb(c) for c in levels]).round().clip(0, 255)
    return _b64(rgb.astype(np.uint8))


@st.cache_data(max_entries=16, show_spinner=False)
def clip_media(path: str) -> dict[str, Any]:
    """The audio as a data URL, its duration, its waveform envelope (``wave``: the minima then the
    maxima, as int8 of full scale 127: it is drawn, not read) and its spectrogram (``spec``: uint8
    levels, 255 the loudest bin and 0 ``TOP_DB`` below it or quieter; ``spec_bins`` rows of
    frequency from 0 Hz up to ``spec_top_hz``, each ``spec_frames`` long)."""
    y, sr = load_audio(Path(path))
    env = waveform_envelope(y, sr, points=ENVELOPE_POINTS)
    wave = np.concatenate([env["min"].to_numpy(), env["max"].to_numpy()])
    _, freqs, db = spectrogram_db(y, sr, top_db=TOP_DB)
    levels = np.round((np.clip(db, -TOP_DB, 0) + TOP_DB) / TOP_DB * 255)
    mime = mimetypes.guess_type(path)[0] or "audio/wav"
    return {
        "src": f"data:{mime};base64,{base64.b64encode(Path(path).read_bytes()).decode('ascii')}",
        "duration": len(y) / sr,
        "wave": _b64(np.round(np.clip(wave, -1, 1) * 127).astype(np.int8)),
        "spec": _b64(levels.astype(np.uint8)),
        "spec_bins": int(db.shape[0]),
        "spec_frames": int(db.shape[1]),
        "spec_top_hz": float(freqs[-1]) if len(freqs) else 0.0,
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


PLAYER_KEY = "label.player"


def waveform_player(
    path: Path,
    *,
    clip_id: int,
    token: str,
    pills: list[dict[str, Any]],
    buttons: list[dict[str, Any]],
    sheet: list[tuple[str, str]],
    autoplay: bool,
    on_undo: Callable[[int, str], None],
) -> None:
    """The player, showing the clip on screen; ``on_undo(clip_id, token)`` runs when Backspace/Ctrl+Z
    is pressed, with the clip and token that were on screen when the key went down.

    One player for every clip (its key does not change), so the browser loads each new clip into it
    rather than building a new one: a key pressed on one clip may reach the server after the next
    is shown, and ``on_undo`` is told which one it was meant for."""
    media = clip_media(str(path))
    _player(
        key=PLAYER_KEY,
        data={
            **{k: media[k] for k in ("src", "duration", "wave")},
            "clip": clip_id,
            "token": token,
            "pills": pills,
            "buttons": buttons,
            "sheet": sheet,
            "autoplay": autoplay,
        },
        on_undo_change=functools.partial(_undo_pressed, on_undo),
        height=HEIGHT,
    )


def _undo_pressed(on_undo: Callable[[int, str], None]) -> None:
    raised = (st.session_state.get(PLAYER_KEY) or {}).get("undo")
    if isinstance(raised, dict) and isinstance(raised.get("token"), str):
        try:
            clip_id = int(raised["clip"])
        except (KeyError, TypeError, ValueError):
            return
        on_undo(clip_id, raised["token"])


def spectrogram(path: Path, *, token: str) -> None:
    """The clip's spectrogram (time across, 0 Hz at the bottom, Magma colours over ``TOP_DB``), drawn
    by one component for every clip, as the player is."""
    media = clip_media(str(path))
    _spectrogram(
        key="label.spectrogram",
        data={
            **{k: media[k] for k in ("duration", "spec", "spec_bins", "spec_frames", "spec_top_hz")},
            "token": token,
            "colours": magma(),
            "top_db": TOP_DB,
        },
        height=SPECTROGRAM_HEIGHT,
    )
