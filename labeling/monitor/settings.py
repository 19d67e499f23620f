"""Monitoring settings (``project.settings["monitoring"]``), their defaults, and the names every
monitoring module shares.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from labeling.data.projects import ProjectInfo, get_project

#: Per-project settings (``project.settings["monitoring"]``) and their defaults.
DEFAULTS: dict[str, float] = {
    "alpha": 0.05,
    "min_batch": 50,
    "alarm_p": 0.001,
    "low_confidence": 0.5,
    "sample_fraction": 0.05,
    "sample_minimum": 20,
    "sample_extra": 10,
    "min_labels": 30,
}
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
#: Priorities in the labeling queue (higher is served first): the random sample first, since the
#: accuracy estimate (and with it concept drift) rests on it.
PRIORITY = {"random": 3, "empty": 2, "low_confidence": 2, "atypical": 1}


class MonitoringError(ValueError):
    """A monitoring action that cannot be done as asked; the message says why."""


def resolve_project(s: Session, project: str | int | ProjectInfo) -> ProjectInfo:
    return project if isinstance(project, ProjectInfo) else get_project(s, project)


def project_settings(info: ProjectInfo) -> dict[str, float]:
    return {**DEFAULTS, **dict(info.settings.get("monitoring") or {})}
