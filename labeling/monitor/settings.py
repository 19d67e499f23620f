"""Monitoring settings (``project.settings["monitoring"]``), their defaults, and the names every
monitoring module shares.
"""

from __future__ import annotations

import math

from sqlalchemy.orm import Session

from labeling.data.monitoring_settings import MONITORING_DEFAULTS
from labeling.data.projects import ProjectInfo, get_project

#: Per-project settings (``project.settings["monitoring"]``) and their defaults; what each means and
#: how it is checked: :mod:`labeling.data.monitoring_settings`.
DEFAULTS: dict[str, float] = MONITORING_DEFAULTS
#: Columns of the clips table that are drift measures under the same name.
CLIP_MEASURES = (
    "duration_s",
    "rms_dbfs",
    "peak_dbfs",
    "leading_silence_ms",
    "trailing_silence_ms",
    "clipped_fraction",
)
#: Stored per-clip measures → the names analysis.drift.MEASURES uses (the SNR tested is WADA-SNR).
RENAMED = {"wada_snr_db": "snr_db"}


def random_sample_target(settings: dict[str, float], n_batch: int) -> int:
    """How many random clips of a batch of ``n_batch`` the labeling sample asks for: ``sample_fraction``
    of it, at least ``sample_minimum`` and at least ``min_labels`` (so that one send to labeling can
    answer the accuracy test it is sent for), and never more than the batch holds."""
    wanted = max(
        int(settings["sample_minimum"]),
        int(settings["min_labels"]),
        math.ceil(float(settings["sample_fraction"]) * n_batch),
    )
    return min(n_batch, wanted)


#: Priorities in the labeling queue (higher is served first): the random sample first, since the
#: accuracy estimate (and with it concept drift) rests on it.
PRIORITY = {"random": 3, "empty": 2, "low_confidence": 2, "atypical": 1}


class MonitoringError(ValueError):
    """A monitoring action that cannot be done as asked; the message says why."""


def resolve_project(s: Session, project: str | int | ProjectInfo) -> ProjectInfo:
    return project if isinstance(project, ProjectInfo) else get_project(s, project)


def project_settings(info: ProjectInfo) -> dict[str, float]:
    """The project's monitoring settings, defaults filled in."""
    return {**DEFAULTS, **dict(info.settings.get("monitoring") or {})}
