"""The monitoring thresholds a project keeps in ``settings["monitoring"]``: :data:`MONITORING_DEFAULTS`,
what each means (:data:`MONITORING_SETTINGS`), and :func:`check_monitoring_settings`, which the project
settings service runs before anything is stored. The monitoring services read them through
``labeling.monitor.settings.project_settings``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MonitoringSetting:
    key: str
    label: str  # what the Project settings page calls it
    default: float
    whole: bool  # a count of clips or labels, not a fraction or probability
    low: float  # the smallest value allowed
    high: float  # the largest value allowed
    low_open: bool  # ``low`` itself is not allowed (a p-value or share of zero means nothing)
    help: str


MONITORING_SETTINGS: tuple[MonitoringSetting, ...] = (
    MonitoringSetting(
        "alpha", "False-alarm rate of a check (α)", 0.05, False, 0.0, 0.5, True,
        "Family-wise rate of drift verdicts on a batch that did not change, shared by all tests of a "
        "check; also the level of the accuracy test.",
    ),
    MonitoringSetting(
        "alarm_p", "p-value that raises an alarm at once", 0.001, False, 0.0, 0.5, True,
        "A drifted batch whose smallest p-value is below this is an alarm, not a warning; above it, "
        "two drifted batches in a row are.",
    ),
    MonitoringSetting(
        "min_batch", "Clips a batch needs for a verdict", 50, True, 2, 1_000_000, False,
        "Smaller batches are 'too small': no verdict, never an alarm.",
    ),
    MonitoringSetting(
        "min_labels", "Labels the accuracy test needs", 30, True, 1, 1_000_000, False,
        "Labelled random-sample clips of a batch before its accuracy is tested (concept drift); the "
        "random part of the labeling sample is at least this.",
    ),
    MonitoringSetting(
        "low_confidence", "Low-confidence threshold", 0.5, False, 0.0, 1.0, False,
        "Answers with a confidence under this count as low-confidence.",
    ),
    MonitoringSetting(
        "sample_fraction", "Random share of a batch to label", 0.05, False, 0.0, 1.0, True,
        "The uniform random part of 'send to labeling', as a share of the batch.",
    ),
    MonitoringSetting(
        "sample_minimum", "At least this many random clips", 20, True, 0, 1_000_000, False,
        "The random part is at least this (and at least the labels the accuracy test needs).",
    ),
    MonitoringSetting(
        "sample_extra", "Atypical, unsure and empty clips, each", 10, True, 0, 100_000, False,
        "How many of the most atypical, least confident and empty-output clips join the sample.",
    ),
)  # fmt: skip
#: ``settings["monitoring"]`` keys and their defaults.
MONITORING_DEFAULTS: dict[str, float] = {m.key: m.default for m in MONITORING_SETTINGS}


def check_monitoring_settings(values: Mapping[str, Any]) -> dict[str, float]:
    """``values`` checked and cleaned: known keys only, numbers in range (whole numbers for counts),
    ``alarm_p`` no larger than ``alpha``; keys at their default are left out (they follow it).

    Raises ValueError with a message that names the setting and its allowed range.
    """
    specs = {m.key: m for m in MONITORING_SETTINGS}
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise ValueError(
            f"unknown monitoring setting {', '.join(map(repr, unknown))}; known: {', '.join(specs)}"
        )
    out: dict[str, float] = {}
    for key, raw in values.items():
        spec = specs[key]
        if raw is None:
            continue
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise ValueError(f"monitoring setting {key} must be a number")
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"monitoring setting {key} must be a number, not {raw!r}") from None
        low_ok = value > spec.low if spec.low_open else value >= spec.low
        if not (math.isfinite(value) and low_ok and value <= spec.high):
            bound = "above" if spec.low_open else "at least"
            raise ValueError(
                f"monitoring setting {key} must be {bound} {spec.low:g} and at most {spec.high:g}, "
                f"not {raw!r}"
            )
        if spec.whole:
            if value != int(value):
                raise ValueError(f"monitoring setting {key} must be a whole number")
            value = int(value)
        if value != spec.default:
            out[key] = value
    alpha = out.get("alpha", MONITORING_DEFAULTS["alpha"])
    alarm_p = out.get("alarm_p", MONITORING_DEFAULTS["alarm_p"])
    if alarm_p > alpha:
        raise ValueError(
            f"monitoring setting alarm_p ({alarm_p:g}) must not exceed alpha ({alpha:g}): an alarm is "
            "stricter than a drift verdict"
        )
    return out
