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


def slice_dots(frame: pd.DataFrame, *, column: str, title: str, overall: float | None = None) -> go.Figure:
    """One dot per slice value (``value``), lowest at the top, against the overall figure (dashed).

    Dots rather than bars: the values sit close to 1, and a bar would have to start at zero to be honest.
    """
    data = frame.dropna(subset=[column]).sort_values(column, ascending=False)
    label = data["value"].astype(str)
    if "slice" in data:
        # Tags name their group already ("noise:car"); metadata values need their key ("device=phone").
        label = label.where(data["slice"] == "tag", data["slice"].astype(str) + "=" + label)
    below = overall is not None and np.isfinite(overall)
    colour = np.where(data[column] < overall, "#e45756", "#4c78a8") if below else "#4c78a8"
    fig = go.Figure(
        go.Scatter(
            x=data[column],
            y=label,
            mode="markers",
            marker=dict(size=np.clip(np.sqrt(data["n_items"].astype(float)) * 2.2, 6, 22), color=colour),
            customdata=data[["n_items"]],
            hovertemplate="%{y}: %{x:.3f} over %{customdata[0]} clips<extra></extra>",
        )
    )
    if below:
        fig.add_vline(x=overall, line_dash="dash", line_color="#888", annotation_text="all clips")
    lowest = float(data[column].min()) if len(data) else 0.0
    fig.update_layout(
        height=max(HEIGHT, 20 * len(data) + 90),
        margin=_MARGIN,
        title=title,
        xaxis=dict(range=[max(0.0, lowest - 0.05), 1.01]),
        yaxis=dict(type="category"),
    )
    return fig


def wer_histogram(per_clip: pd.DataFrame) -> go.Figure:
    """Distribution of the word error rate between annotators' transcripts, one value per clip."""
    fig = px.histogram(per_clip, x="wer", nbins=30, title="WER between annotators, per clip")
    fig.update_layout(
        height=HEIGHT, margin=_MARGIN, xaxis_title="WER (after normalisation)", yaxis_title="clips"
    )
    return fig
