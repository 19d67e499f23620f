"""Plotly figures of the Agreement and Review pages of a regions project (frames in, figures out)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from pages.quality.charts_agreement import HEIGHT

_MARGIN = dict(t=40, b=10, l=10, r=10)
_KINDS = {"onset": "onsets", "offset": "offsets", "region": "both ends"}


def boundary_bars(boundaries: pd.DataFrame, *, tolerance_ms: int) -> go.Figure:
    """Onset, offset and whole-region F1 per annotator pair, within the tolerance."""
    data = boundaries.assign(
        pair=boundaries["rater_a"].astype(str) + " / " + boundaries["rater_b"].astype(str),
        kind=boundaries["kind"].map(_KINDS).fillna(boundaries["kind"]),
    )
    fig = px.bar(
        data,
        x="pair",
        y="f1",
        color="kind",
        barmode="group",
        hover_data=["precision", "recall", "matched", "n_reference", "n_estimate"],
        title=f"Boundary F1 within ±{tolerance_ms} ms",
    )
    fig.update_layout(
        height=HEIGHT, margin=_MARGIN, yaxis=dict(range=[0, 1.02], title="F1"), xaxis_type="category"
    )
    fig.update_xaxes(title="")
    return fig


def pair_heatmap(
    pairs: pd.DataFrame,
    *,
    value: str,
    title: str,
    zmin: float = 0.0,
    zmax: float = 1.0,
    good_high: bool = True,
    symmetric: bool = True,
) -> go.Figure:
    """One figure per annotator pair (``rater_a``, ``rater_b``); the diagonal is blank. A measure that
    is not ``symmetric`` (DER: ``rater_a`` is the reference) fills only row ``rater_a``,
    column ``rater_b``."""
    names = sorted(set(pairs["rater_a"].astype(str)) | set(pairs["rater_b"].astype(str)))
    matrix = pd.DataFrame(np.nan, index=names, columns=names)
    for a, b, v in zip(pairs["rater_a"].astype(str), pairs["rater_b"].astype(str), pairs[value], strict=True):
        matrix.loc[a, b] = np.nan if v is None else float(v)
        if symmetric:
            matrix.loc[b, a] = matrix.loc[a, b]
    z = matrix.to_numpy(dtype=float)
    text = np.where(np.isnan(z), "", np.vectorize(lambda v: f"{v:.2f}")(np.nan_to_num(z)))
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=names,
            y=names,
            zmin=zmin,
            zmax=zmax,
            colorscale="RdYlGn" if good_high else "RdYlGn_r",
            text=text,
            texttemplate="%{text}",
            colorbar=dict(title=value),
            hovertemplate="%{y} / %{x}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(height=HEIGHT, margin=_MARGIN, title=title)
    fig.update_yaxes(autorange="reversed", title=None if symmetric else "reference")
    return fig


def recording_distribution(by_recording: pd.DataFrame) -> go.Figure:
    """Frame-level Fleiss' kappa of each recording: one dot per recording over a box."""
    data = by_recording.dropna(subset=["fleiss_kappa"])
    fig = px.box(
        data,
        x="fleiss_kappa",
        points="all",
        hover_data=["recording", "unanimous"],
        title="Frame kappa per recording",
    )
    fig.update_layout(height=HEIGHT, margin=_MARGIN, xaxis=dict(range=[-0.05, 1.02], title="Fleiss' kappa"))
    return fig


def region_timeline(
    rows: pd.DataFrame, *, order: list[str], duration: float, spans: pd.DataFrame
) -> go.Figure:
    """Every set of one recording on one time axis: a row per annotator and one for the final set.

    ``rows`` has ``who``, ``start``, ``end``, ``label`` (and ``text``); spans where annotators
    disagree are shaded behind the rows.
    """
    labels = sorted(set(rows["label"].astype(str)))
    colours = dict(zip(labels, px.colors.qualitative.Safe * 4, strict=False))
    fig = go.Figure()
    for label in labels:
        part = rows[rows["label"].astype(str) == label]
        texts = part["text"].fillna("") if "text" in part else pd.Series([""] * len(part), index=part.index)
        said = [
            f"{a:.2f}–{b:.2f} s" + (f"<br>{t}" if t else "")
            for a, b, t in zip(part["start"], part["end"], texts, strict=True)
        ]
        fig.add_trace(
            go.Bar(
                x=(part["end"] - part["start"]).to_numpy(float),
                base=part["start"].to_numpy(float),
                y=part["who"].astype(str),
                orientation="h",
                name=label,
                marker_color=colours[label],
                hovertext=said,
                hovertemplate="%{fullData.name}: %{hovertext}<extra>%{y}</extra>",
            )
        )
    # Every row shows, the final one too before anything is saved in it.
    fig.add_trace(
        go.Scatter(x=[None] * len(order), y=order, mode="markers", showlegend=False, hoverinfo="skip")
    )
    for span in spans[~spans["agreed"]].itertuples():
        fig.add_vrect(
            x0=span.start, x1=span.end, fillcolor="#e45756", opacity=0.12, line_width=0, layer="below"
        )
    fig.update_layout(
        height=max(160, 48 * len(order) + 90),
        margin=_MARGIN,
        barmode="overlay",
        title="Regions by annotator (red: spans they disagree on)",
        xaxis=dict(range=[0, duration], title="seconds"),
        yaxis=dict(type="category", categoryorder="array", categoryarray=list(reversed(order))),
        legend=dict(orientation="h", y=-0.25),
    )
    return fig
