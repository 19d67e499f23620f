"""Plotly figures of the Agreement page (no streamlit here: frames in, figures out)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

HEIGHT = 340
_MARGIN = dict(t=40, b=10, l=10, r=10)


def kappa_heatmap(matrix: pd.DataFrame) -> go.Figure:
    """Cohen's kappa of every annotator pair (annotators x annotators; the diagonal is blank)."""
    z = matrix.to_numpy(dtype=float)
    text = np.where(np.isnan(z), "", np.vectorize(lambda v: f"{v:.2f}")(np.nan_to_num(z)))
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[str(c) for c in matrix.columns],
            y=[str(i) for i in matrix.index],
            zmin=0,
            zmax=1,
            colorscale="RdYlGn",
            text=text,
            texttemplate="%{text}",
            colorbar=dict(title="kappa"),
            hovertemplate="%{y} / %{x}: kappa %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(height=HEIGHT, margin=_MARGIN, title="Cohen's kappa by annotator pair")
    fig.update_yaxes(autorange="reversed")
    return fig


def confusion_heatmap(confusion: pd.DataFrame) -> go.Figure:
    """Which classes two annotators of the same clip gave, disagreements only (the diagonal is blank,
    or it would drown the rest)."""
    z = confusion.to_numpy(dtype=float, copy=True)
    np.fill_diagonal(z, np.nan)
    labels = [str(c) for c in confusion.columns]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=labels,
            y=labels,
            colorscale="Reds",
            colorbar=dict(title="pairs"),
            texttemplate="%{z:.0f}",
            hovertemplate="one said %{y}, another %{x}: %{z:.0f} pairs<extra></extra>",
        )
    )
    fig.update_layout(height=HEIGHT + 60, margin=_MARGIN, title="Between-annotator confusion (rating pairs)")
    fig.update_xaxes(type="category", title="another annotator said")
    fig.update_yaxes(type="category", autorange="reversed", title="one annotator said")
    return fig


def agreement_trend(frame: pd.DataFrame, *, x: str, title: str) -> go.Figure:
    """Alpha and percent agreement per conventions version or per week, with the clips behind each."""
    data = frame.dropna(subset=[x]).copy()
    data[x] = ("v" + data[x].astype(int).astype(str)) if x == "version" else data[x].astype(str)
    long = data.melt(
        id_vars=[x, "n_items"],
        value_vars=["krippendorff_alpha", "percent_agreement"],
        var_name="measure",
        value_name="value",
    )
    long["measure"] = long["measure"].map(
        {"krippendorff_alpha": "Krippendorff's alpha", "percent_agreement": "percent agreement"}
    )
    fig = px.line(long, x=x, y="value", color="measure", markers=True, hover_data=["n_items"], title=title)
    fig.update_layout(
        height=HEIGHT, margin=_MARGIN, yaxis=dict(range=[0, 1.02], title=""), xaxis_type="category"
    )
    return fig


def slice_bars(frame: pd.DataFrame, *, column: str, title: str, overall: float | None = None) -> go.Figure:
    """One horizontal bar per slice value (``value``), lowest first, with the overall figure as a line."""
    data = frame.dropna(subset=[column]).sort_values(column, ascending=False)
    label = data["value"].astype(str)
    if "slice" in data:
        # Tags name their group already ("noise:car"); metadata values need their key ("device=phone").
        label = label.where(data["slice"] == "tag", data["slice"].astype(str) + "=" + label)
    fig = go.Figure(
        go.Bar(
            x=data[column],
            y=label,
            orientation="h",
            customdata=data[["n_items"]] if "n_items" in data else None,
            hovertemplate="%{y}: %{x:.3f} over %{customdata[0]} clips<extra></extra>",
            marker_color="#4c78a8",
        )
    )
    if overall is not None and np.isfinite(overall):
        fig.add_vline(x=overall, line_dash="dash", line_color="#e45756", annotation_text="all clips")
    fig.update_layout(
        height=max(HEIGHT, 22 * len(data) + 80), margin=_MARGIN, title=title, xaxis=dict(range=[0, 1.02])
    )
    return fig


def wer_histogram(per_clip: pd.DataFrame) -> go.Figure:
    """Distribution of the word error rate between annotators' transcripts, one value per clip."""
    fig = px.histogram(per_clip, x="wer", nbins=30, title="WER between annotators, per clip")
    fig.update_layout(
        height=HEIGHT, margin=_MARGIN, xaxis_title="WER (after normalisation)", yaxis_title="clips"
    )
    return fig
