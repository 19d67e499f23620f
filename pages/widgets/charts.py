"""Plotly figures the pages share (no streamlit here: figures in, figures out)."""

from __future__ import annotations

import html
import re
from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from analysis.signal import spectrogram_db, waveform_envelope

HEIGHT = 320
# plotly.js renders a subset of HTML in every label, hover text and title (<a href> included), so
# names that come from the data are escaped; our own templates keep their line breaks and <extra>.
_TEMPLATE_TAGS = re.compile(r"&lt;(br|/?extra)&gt;")
# Magma written as rgb() stops: the plotly.js bundled with Streamlit misreads its first stop as hex
# ("#000004"), so the -80 dB floor (silence) painted pink instead of black.
MAGMA = [
    [i / (len(px.colors.sequential.Magma) - 1), "rgb({}, {}, {})".format(*px.colors.hex_to_rgb(c))]
    for i, c in enumerate(px.colors.sequential.Magma)
]


def bar_counts(values: pd.Series, *, title: str, top: int = 40) -> go.Figure:
    counts = values.astype("string").fillna("(none)").value_counts().head(top)
    fig = px.bar(
        x=counts.index, y=counts.to_numpy(), labels={"x": values.name or "", "y": "clips"}, title=title
    )
    fig.update_layout(height=HEIGHT, margin=dict(t=40, b=10, l=10, r=10), xaxis_type="category")
    return fig


def histogram(values: pd.Series, *, title: str, unit: str = "") -> go.Figure:
    fig = px.histogram(
        x=pd.to_numeric(values, errors="coerce").dropna(),
        nbins=40,
        title=title,
        labels={"x": unit or (values.name or "")},
    )
    fig.update_layout(height=HEIGHT, margin=dict(t=40, b=10, l=10, r=10), yaxis_title="clips")
    return fig


def waveform(y: np.ndarray, sr: int) -> go.Figure:
    env = waveform_envelope(y, sr)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=env["time_s"],
            y=env["max"],
            line=dict(width=0.5, color="#1f77b4"),
            showlegend=False,
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=env["time_s"],
            y=env["min"],
            line=dict(width=0.5, color="#1f77b4"),
            fill="tonexty",
            showlegend=False,
            hoverinfo="skip",
        )
    )
    fig.update_layout(
        height=180,
        margin=dict(t=10, b=10, l=10, r=10),
        xaxis_title="seconds",
        yaxis=dict(range=[-1, 1], title="amplitude"),
    )
    return fig


def spectrogram(y: np.ndarray, sr: int, *, height: int = 240) -> go.Figure:
    times, freqs, S = spectrogram_db(y, sr)
    fig = go.Figure(
        go.Heatmap(x=times, y=freqs, z=S, colorscale=MAGMA, zmin=-80, zmax=0, colorbar=dict(title="dB"))
    )
    fig.update_layout(
        height=height, margin=dict(t=10, b=10, l=10, r=10), xaxis_title="seconds", yaxis_title="Hz"
    )
    return fig


def bar_from_counts(counts: pd.Series, *, title: str, name: str = "", top: int = 40) -> go.Figure:
    """:func:`bar_counts` for values already counted in the database (``counts``: value -> clips)."""
    counts = counts.head(top)
    fig = px.bar(
        x=counts.index.astype(str), y=counts.to_numpy(), labels={"x": name, "y": "clips"}, title=title
    )
    fig.update_layout(height=HEIGHT, margin=dict(t=40, b=10, l=10, r=10), xaxis_type="category")
    return fig


def histogram_from_bins(edges: np.ndarray, counts: np.ndarray, *, title: str, unit: str = "") -> go.Figure:
    """:func:`histogram` for values binned before they reach the page (``len(edges) == len(counts) + 1``)."""
    fig = go.Figure(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=np.diff(edges), name=""))
    fig.update_layout(
        title=title,
        height=HEIGHT,
        margin=dict(t=40, b=10, l=10, r=10),
        xaxis_title=unit,
        yaxis_title="clips",
        bargap=0,
    )
    return fig


def _escape(value: Any, *, template: bool = False) -> Any:
    if isinstance(value, str):
        escaped = html.escape(value, quote=False)
        return _TEMPLATE_TAGS.sub(r"<\1>", escaped) if template else escaped
    if isinstance(value, dict):
        return {k: _escape(v, template=k.endswith("template")) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_escape(v, template=template) for v in value]
    if isinstance(value, np.ndarray) and value.dtype.kind in "OUS":
        return np.array([_escape(v, template=template) for v in value.ravel()], dtype=object).reshape(
            value.shape
        )
    return value


def safe_figure(fig: go.Figure) -> go.Figure:
    """The figure with every string escaped for plotly's HTML subset, so a class, tag, metadata value,
    annotator or slice name such as ``<a href=…>`` shows as text instead of becoming a link.

    Every chart goes through this on its way to the page (``pages.widgets.plots.show``); values a click
    reports back are escaped too, and :func:`raw_value` turns them back into the stored value.
    """
    # _escape builds new containers (numeric arrays are shared, never changed), so the input figure is
    # left as it was; the values were validated when it was built.
    return go.Figure(_escape(fig.to_plotly_json()), _validate=False)


def raw_value(value: Any) -> Any:
    """The stored value behind a value a chart click reports (undoes :func:`safe_figure`'s escaping)."""
    if isinstance(value, str):
        return html.unescape(value)
    if isinstance(value, list):
        return [raw_value(v) for v in value]
    return value
