"""Plotly figures the pages share (no streamlit here: figures in, figures out)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from analysis.signal import spectrogram_db, waveform_envelope

HEIGHT = 320
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
