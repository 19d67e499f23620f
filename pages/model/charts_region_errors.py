"""Figures of the error-analysis page for long recordings (no streamlit here: frames in, figures out)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from pages.widgets.charts import HEIGHT

MARGIN = dict(t=40, b=10, l=10, r=10)
PARTS = (
    ("missed", "missed", "#ff7f0e"),
    ("false_alarm", "false alarm", "#d62728"),
    ("confusion", "confusion", "#9467bd"),
)


def der_parts(table: pd.DataFrame, *, name: str, title: str) -> go.Figure:
    """Stacked bars of missed, false-alarm and confusion seconds over the reference seconds, in %.

    ``table`` has ``name`` (one bar each), ``reference_s`` and the three parts in seconds.
    """
    rows = table.reset_index(drop=True)
    base = rows["reference_s"].where(rows["reference_s"] > 0)
    fig = go.Figure(
        [
            go.Bar(
                name=label,
                y=rows[name].astype(str),
                x=rows[col] / base * 100,
                orientation="h",
                marker_color=color,
                customdata=rows[col],
                hovertemplate=f"%{{y}}: {label} %{{x:.1f}}% (%{{customdata:.1f}} s)<extra></extra>",
            )
            for col, label, color in PARTS
        ]
    )
    fig.update_layout(
        title=title,
        barmode="stack",
        height=max(HEIGHT - 60, 40 * len(rows) + 150),
        margin=MARGIN,
        xaxis_title="% of the final regions' time",
        yaxis=dict(autorange="reversed", type="category"),
        legend=dict(orientation="h", y=-0.35, x=0, traceorder="normal"),
    )
    return fig


def priority_bars(slices: pd.DataFrame, *, top: int = 15) -> go.Figure:
    """Priority (gap to human level × share) per slice, largest first; slices without HLP left out."""
    rows = slices.dropna(subset=["priority"]).head(top)
    fig = go.Figure(
        go.Bar(
            x=rows["priority"] * 100,
            y=rows["slice"],
            orientation="h",
            marker_color=["#d62728" if p > 0 else "#7f7f7f" for p in rows["priority"]],
            hovertemplate="%{y}: %{x:.2f} points<extra></extra>",
        )
    )
    fig.update_layout(
        title="Priority: DER points gained if the slice reached human level",
        height=max(HEIGHT, 28 * len(rows) + 80),
        margin=MARGIN,
        xaxis_title="points of overall DER",
        yaxis=dict(autorange="reversed", type="category"),
    )
    return fig


def error_vs_hlp(slices: pd.DataFrame, *, top: int = 15) -> go.Figure:
    """The model's error rate beside the annotators' in each slice, the largest gaps first."""
    rows = slices.sort_values("gap", ascending=False, na_position="last").head(top)
    fig = go.Figure(
        [
            go.Bar(name="model", x=rows["slice"], y=rows["error_rate"] * 100, marker_color="#1f77b4"),
            go.Bar(name="annotators (HLP)", x=rows["slice"], y=rows["hlp"] * 100, marker_color="#2ca02c"),
        ]
    )
    fig.update_layout(
        title="Error rate of the model vs the annotators, per slice",
        barmode="group",
        height=HEIGHT + 40,
        margin=MARGIN,
        yaxis_title="% of the slice's final time",
        xaxis=dict(type="category", tickangle=-30),
        legend=dict(orientation="h", y=1.1, x=1, xanchor="right"),
    )
    return fig


KIND_COLORS = {"missed": "#ff7f0e", "false alarm": "#d62728", "confusion": "#9467bd"}


def error_window(
    errors: pd.DataFrame, *, recording_id: int, start: float, end: float, kind: str, pad: float = 2.0
) -> go.Figure:
    """The final and the model's regions of one recording around an error, the error shaded.

    ``errors`` is the report's errors frame (``recording_id``, ``side``, ``start``, ``end``, ``label``).
    """
    lo, hi = max(0.0, start - pad), end + pad
    near = errors[(errors["recording_id"] == recording_id) & (errors["end"] > lo) & (errors["start"] < hi)]
    bars = []
    for side, name, color in (("reference", "final", "#2ca02c"), ("hypothesis", "model", "#1f77b4")):
        part = near[near["side"] == side]
        bars.append(
            go.Bar(
                name=name,
                y=[name] * len(part),
                base=part["start"],
                x=part["end"] - part["start"],
                orientation="h",
                marker_color=color,
                text=part["label"].astype(str),
                textposition="inside",
                customdata=part[["start", "end"]].to_numpy(),
                hovertemplate=f"{name}: %{{text}} "
                "%{customdata[0]:.2f}–%{customdata[1]:.2f} s<extra></extra>",
            )
        )
    fig = go.Figure(bars)
    fig.add_vrect(x0=start, x1=end, fillcolor=KIND_COLORS.get(kind, "#7f7f7f"), opacity=0.3, line_width=0)
    fig.update_layout(
        title=f"{kind}, {start:.2f}–{end:.2f} s",
        height=220,
        margin=MARGIN,
        barmode="overlay",
        showlegend=False,
        xaxis=dict(range=[lo, hi], title="seconds"),
        yaxis=dict(type="category", categoryorder="array", categoryarray=["model", "final"]),
    )
    return fig
