"""Figures of the Monitoring page (no streamlit here: frames in, figures out)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

DRIFT = "#d62728"
OK = "#1f77b4"
SMALL = "#b0b0b0"
BAND = "rgba(44, 160, 44, 0.15)"
REFERENCE = "#1f77b4"
BATCH = "#ff7f0e"
TILE_HEIGHT = 210
MARGIN = dict(t=36, b=6, l=6, r=6)


def _title(label: str, unit: str, n: int, small: bool) -> str:
    unit_s = f" ({unit})" if unit and unit not in {"TV distance"} else ""
    note = " · too few to judge" if small else ""
    return f"{label}{unit_s} · n = {n:,}{note}"


def measure_tile(rows: pd.DataFrame, *, min_batch: int) -> go.Figure:
    """One measure over the batches: the batch's median (or share) per batch, the reference's
    5th–95th percentile band behind it, drifted batches in red, batches too small to judge grey.

    ``rows`` are one measure's rows of :func:`labeling.monitor.view.monitoring_view` (oldest first).
    A click selects a point whose ``customdata`` is ``[batch_id, measure]``.
    """
    first = rows.iloc[-1]
    small = rows["too_small"].astype(bool) if "too_small" in rows else rows["n"] < min_batch
    colours = [SMALL if s else (DRIFT if d else OK) for s, d in zip(small, rows["drift"], strict=True)]
    x = rows["batch"].astype(str).tolist()
    fig = go.Figure()
    if rows["ref_p5"].notna().any():
        fig.add_trace(
            go.Scatter(
                x=x, y=rows["ref_p95"], mode="lines", line=dict(width=0), hoverinfo="skip", showlegend=False
            )
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=rows["ref_p5"],
                mode="lines",
                line=dict(width=0),
                fill="tonexty",
                fillcolor=BAND,
                name="reference 5–95%",
                hoverinfo="skip",
                showlegend=False,
            )
        )
    elif rows["ref_median"].notna().any():
        fig.add_trace(
            go.Scatter(
                x=x,
                y=rows["ref_median"],
                mode="lines",
                line=dict(color="#2ca02c", dash="dash", width=1),
                hoverinfo="skip",
                showlegend=False,
            )
        )
    p = rows["p_value"].map(lambda v: "—" if v is None or pd.isna(v) else f"{v:.2g}")
    fig.add_trace(
        go.Scatter(
            x=x,
            y=rows["value"],
            mode="lines+markers",
            marker=dict(size=11, color=colours, line=dict(width=1, color="white")),
            line=dict(color="#7f7f7f", width=1),
            customdata=np.column_stack([rows["batch_id"], rows["measure"], p, rows["n"]]),
            hovertemplate="%{x}: %{y:.3g} (p = %{customdata[2]}, n = %{customdata[3]})<extra></extra>",
            showlegend=False,
        )
    )
    fig.update_layout(
        title=dict(
            text=_title(first["label"], first["unit"], int(first["n"]), bool(small.iloc[-1])), font_size=13
        ),
        height=TILE_HEIGHT,
        margin=MARGIN,
        xaxis=dict(type="category", showticklabels=len(x) <= 8),
        paper_bgcolor="#f0f0f0" if bool(small.iloc[-1]) else None,
    )
    return fig


def software_tile(software: pd.DataFrame, column: str, *, label: str, unit: str, min_batch: int) -> go.Figure:
    """A software measure over the batches (latency, requests per minute, error/empty shares)."""
    rows = software.dropna(subset=[column]) if column in software else software.iloc[:0]
    n = int(rows["n"].iloc[-1]) if len(rows) else 0
    small = n < min_batch
    fig = go.Figure(
        go.Scatter(
            x=rows["name"].astype(str),
            y=rows[column] * (100 if unit == "%" else 1) if len(rows) else [],
            mode="lines+markers",
            marker=dict(size=10, color=SMALL if small else OK),
            line=dict(color="#7f7f7f", width=1),
            hovertemplate="%{x}: %{y:.3g}<extra></extra>",
        )
    )
    fig.update_layout(
        title=dict(text=_title(label, unit, n, small), font_size=13),
        height=TILE_HEIGHT,
        margin=MARGIN,
        xaxis=dict(type="category"),
        paper_bgcolor="#f0f0f0" if small else None,
    )
    return fig


def distributions(reference: pd.Series, batch: pd.Series, *, label: str, unit: str, kind: str) -> go.Figure:
    """Reference against batch: overlaid histograms as shares of each (class shares side by side for
    a categorical measure), so samples of different sizes compare."""
    if kind == "categorical":
        ref = reference.value_counts(normalize=True)
        cur = batch.value_counts(normalize=True)
        classes = sorted(set(ref.index) | set(cur.index))
        fig = go.Figure(
            [
                go.Bar(
                    name=f"reference (n = {len(reference):,})",
                    x=classes,
                    y=ref.reindex(classes, fill_value=0) * 100,
                ),
                go.Bar(
                    name=f"batch (n = {len(batch):,})", x=classes, y=cur.reindex(classes, fill_value=0) * 100
                ),
            ]
        )
        fig.update_layout(barmode="group", yaxis_title="% of clips", xaxis_type="category")
    else:
        both = pd.concat([reference, batch]).dropna()
        lo, hi = (both.quantile(0.005), both.quantile(0.995)) if len(both) else (0.0, 1.0)
        size = (hi - lo) / 40 if hi > lo else None
        bins = dict(start=lo, end=hi, size=size) if size else None
        fig = go.Figure(
            [
                go.Histogram(
                    x=reference,
                    name=f"reference (n = {len(reference):,})",
                    histnorm="percent",
                    xbins=bins,
                    opacity=0.6,
                ),
                go.Histogram(
                    x=batch, name=f"batch (n = {len(batch):,})", histnorm="percent", xbins=bins, opacity=0.6
                ),
            ]
        )
        fig.update_layout(
            barmode="overlay", yaxis_title="% of clips", xaxis_title=f"{label} ({unit})" if unit else label
        )
    fig.update_layout(
        height=320,
        margin=dict(t=30, b=10, l=10, r=10),
        legend=dict(orientation="h", y=1.12, x=1, xanchor="right"),
    )
    return fig
