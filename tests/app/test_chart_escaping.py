"""Names from the data reach charts as text: plotly renders a subset of HTML (``<a href>`` included) in
labels, legends, hover text and titles, so every figure a page shows goes through one escaping step."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.express as px

from pages.model import charts_errors
from pages.quality import charts_agreement
from pages.widgets import charts

ROOT = Path(__file__).resolve().parents[2]
PHISH = '<a href="https://evil.example/x">phish</a>'


def _strings(value):  # type: ignore[no-untyped-def]
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple | np.ndarray):
        for v in value:
            yield from _strings(v)


def test_no_page_renders_a_chart_around_the_escaping():
    direct = []
    for path in [ROOT / "app.py", *sorted((ROOT / "pages").rglob("*.py"))]:
        if path.name == "plots.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Attribute) and node.attr == "plotly_chart":
                direct.append(f"{path.name}:{node.lineno}")
    assert direct == [], f"call pages.widgets.plots.show instead of plotly_chart: {direct}"


def _figures():  # type: ignore[no-untyped-def]
    counts = pd.Series({PHISH: 3, "ok": 1})
    confusion = pd.DataFrame([[2, 1], [0, 3]], index=[PHISH, "no"], columns=[PHISH, "no"])
    kappa = pd.DataFrame([[np.nan, 0.5], [0.5, np.nan]], index=[PHISH, "ben"], columns=[PHISH, "ben"])
    slices = pd.DataFrame(
        {"value": [PHISH, "car"], "slice": ["accent", "tag"], "alpha": [0.5, 0.7], "n_items": [4, 9]}
    )
    trend = pd.DataFrame(
        {
            "week": [PHISH, "w2"],
            "krippendorff_alpha": [0.5, 0.6],
            "percent_agreement": [0.7, 0.8],
            "n_items": [3, 4],
        }
    )
    report = pd.DataFrame(
        {
            "tag": [PHISH, "noise:car"],
            "priority": [0.3, 0.1],
            "accuracy": [0.6, 0.8],
            "hlp": [0.9, 0.95],
            "gap": [0.3, 0.15],
        }
    )
    return [
        charts.bar_from_counts(counts, title=PHISH, name=PHISH),
        charts.bar_counts(pd.Series([PHISH, PHISH, "ok"]), title=PHISH),
        charts_agreement.kappa_heatmap(kappa),
        charts_agreement.confusion_heatmap(confusion),
        charts_agreement.slice_dots(slices, column="alpha", title=PHISH, overall=0.6),
        charts_agreement.agreement_trend(trend, x="week", title=PHISH),
        charts_errors.confusion_heatmap(confusion),
        charts_errors.priority_bars(report),
        charts_errors.accuracy_vs_hlp(report),
        px.scatter(pd.DataFrame({"x": [1, 2], "who": [PHISH, "ana"]}), x="x", y="x", color="who"),
    ]


def test_escaped_figures_hold_no_markup_from_the_data_but_keep_their_own_line_breaks():
    for fig in _figures():
        raw = list(_strings(fig.to_dict()))
        assert any("<a href" in s for s in raw), "the hostile name reached the figure"
        safe = list(_strings(charts.safe_figure(fig).to_dict()))
        assert not any("<a" in s or "</a>" in s for s in safe), [s for s in safe if "<a" in s]
        assert any("&lt;a href" in s for s in safe)
        assert list(_strings(fig.to_dict())) == raw  # the figure handed in is left as it was
        # Our own hover templates still format (plotly reads these tags).
        templates = [s for s in safe if "<extra>" in s]
        assert len(templates) == sum("<extra>" in s for s in raw)


def test_a_click_on_an_escaped_chart_maps_back_to_the_stored_value():
    confusion = pd.DataFrame([[2, 1], [0, 3]], index=[PHISH, "a &amp; b"], columns=[PHISH, "a &amp; b"])
    safe = charts.safe_figure(charts_errors.confusion_heatmap(confusion))
    markers = safe.data[1]
    # What plotly reports for a clicked point is the figure's own value: the escaped one.
    clicked = {"x": markers.x[1], "y": markers.y[1], "customdata": list(markers.customdata[1])}
    assert clicked["x"] != "a &amp; b"
    assert charts.raw_value(clicked["x"]) == "a &amp; b"
    assert charts.raw_value(clicked["y"]) == PHISH
    assert charts.raw_value(clicked["customdata"])[:2] == [PHISH, "a &amp; b"]
