"""The one way a page shows a plotly chart: :func:`show` escapes the figure's text first.

Pages call ``plots.show(st, fig, key=…)`` (or ``plots.show(column, fig, key=…)``) instead of
``st.plotly_chart``; a test fails if a page calls ``plotly_chart`` itself.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from pages.widgets.charts import safe_figure


def show(where: Any, fig: go.Figure, *, key: str, **kwargs: Any) -> Any:
    """Render ``fig``, escaped by :func:`pages.widgets.charts.safe_figure`, in ``where`` (``st``, a
    column…)."""
    return where.plotly_chart(safe_figure(fig), key=key, **kwargs)
