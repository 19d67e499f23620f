"""Figures of the error-analysis page (no streamlit here: frames in, figures out)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from pages.widgets.charts import HEIGHT

MARGIN = dict(t=40, b=10, l=10, r=10)


def priority_bars(report: pd.DataFrame, *, top: int = 15) -> go.Figure:
    """Priority (gap × share) per slice, largest first; slices without an HLP are left out."""
    rows = report.dropna(subset=["priority"]).head(top)
    fig = go.Figure(
        go.Bar(
            x=rows["priority"] * 100,
            y=rows["tag"],
            orientation="h",
            marker_color=["#d62728" if p > 0 else "#7f7f7f" for p in rows["priority"]],
            hovertemplate="%{y}: %{x:.2f} points<extra></extra>",
        )
    )
    fig.update_layout(
        title="Priority: accuracy points gained if the slice reached HLP",
        height=max(HEIGHT, 28 * len(rows) + 80),
        margin=MARGIN,
        xaxis_title="points of overall accuracy",
        yaxis=dict(autorange="reversed", type="category"),
    )
    return fig


def accuracy_vs_hlp(report: pd.DataFrame, *, metric: str = "accuracy", top: int = 15) -> go.Figure:
    """The model's accuracy (or WER) beside human-level performance, per slice, the largest gaps first."""
    rows = report.sort_values("gap", ascending=False, na_position="last").head(top)
    fig = go.Figure(
        [
            go.Bar(name="model", x=rows["tag"], y=rows[metric] * 100, marker_color="#1f77b4"),
            go.Bar(name="HLP", x=rows["tag"], y=rows["hlp"] * 100, marker_color="#2ca02c"),
        ]
    )
    fig.update_layout(
        title=f"Model {metric} vs human-level performance",
        barmode="group",
        height=HEIGHT + 40,
        margin=MARGIN,
        yaxis_title="%",
        xaxis=dict(type="category", tickangle=-30),
        legend=dict(orientation="h", y=1.1, x=1, xanchor="right"),
    )
    return fig


def confusion_heatmap(confusion: pd.DataFrame) -> go.Figure:
    """Counts of true (rows) against predicted (columns) classes, the diagonal being right.

    Heatmap cells cannot be selected in plotly, so an invisible marker sits on each cell: a click on
    a cell selects its marker, whose ``customdata`` is ``[true, predicted, count, note]``; the note
    tells the hover what a click on the cell gives.
    """
    cols, rows = [str(c) for c in confusion.columns], [str(c) for c in confusion.index]
    z = confusion.to_numpy()
    cells = [
        (t, p, int(z[i, j]), _cell_note(t, p, int(z[i, j])))
        for i, t in enumerate(rows)
        for j, p in enumerate(cols)
    ]
    fig = go.Figure(
        [
            go.Heatmap(
                z=z,
                x=cols,
                y=rows,
                colorscale="Blues",
                text=z,
                texttemplate="%{text}",
                hoverinfo="skip",
                showscale=False,
            ),
            go.Scatter(
                x=[c[1] for c in cells],
                y=[c[0] for c in cells],
                customdata=[list(c) for c in cells],
                mode="markers",
                marker=dict(symbol="square", size=28, color="rgba(0,0,0,0)"),
                hovertemplate="true %{y}, predicted %{x}: %{customdata[2]}<extra>%{customdata[3]}</extra>",
                showlegend=False,
            ),
        ]
    )
    fig.update_layout(
        title="Confusion matrix",
        height=max(HEIGHT, 32 * len(confusion) + 100),
        margin=MARGIN,
        xaxis=dict(title="predicted", type="category", side="bottom"),
        yaxis=dict(title="true", type="category", autorange="reversed"),
    )
    return fig


def _cell_note(true: str, predicted: str, count: int) -> str:
    if true == predicted:
        return "right answers"
    return "click to listen" if count else "no clip to listen to"
