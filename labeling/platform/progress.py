"""Long work reports ``progress(stage, done, total)``: ``stage`` says in words what is being done and
ends with what is counted (``"Computing the audio features, clip"``), ``done`` of ``total`` how far
it is. :func:`progress_text` turns a report into the line pages and the command line show;
single-step stages (``total`` of 1) show no count."""

from __future__ import annotations

from collections.abc import Callable

StageProgress = Callable[[str, int, int], None]


def progress_text(stage: str, done: int, total: int) -> str:
    """``"Computing the audio features, clip: 120 of 800"``, or ``"Fitting the model…"``.

    >>> progress_text("Computing the audio features, clip", 120, 800)
    'Computing the audio features, clip: 120 of 800'
    >>> progress_text("Fitting the model on 600 training clips", 0, 1)
    'Fitting the model on 600 training clips…'
    """
    if total <= 1:
        return f"{stage}…"
    return f"{stage}: {done:,} of {total:,}"


def fraction(done: int, total: int) -> float:
    """How far, between 0 and 1."""
    return min(1.0, max(0.0, done / total)) if total > 0 else 0.0
