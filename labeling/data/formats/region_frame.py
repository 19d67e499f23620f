"""What the region formats share: :class:`RegionFile` (a reader's answer), :class:`RecordingRef` (what
a writer knows of a recording) and :func:`region_frame`.

Every region reader returns one row per region with :data:`REGION_FIELDS`: ``recording`` as the file
names it (the formats differ: a file name, a file name without its extension, an audio path),
``annotator`` (None when the file names no one), ``start`` and ``end`` in seconds, ``label`` (the
class), ``text`` (None when there is none) and ``tags`` (a list). Writers take the same columns, plus
``source`` (``annotator``, ``import``, ``final``, ``proposal``) where the format keeps it apart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import pandas as pd

from labeling.data.formats.base import FormatError, Problem

REGION_FIELDS = ("recording", "annotator", "start", "end", "label", "text", "tags")
MAX_SHOWN = 5


@dataclass
class RegionFile:
    """The regions a file holds (:data:`REGION_FIELDS`) and what was left out, and why."""

    regions: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class RecordingRef:
    """A recording as the manifests name it: its clip's file ``name``, where its audio is
    (``location``: a path or URL), and what lhotse's recording manifest needs."""

    name: str
    location: str
    duration: float
    sample_rate: int
    channels: int
    language: str | None = None


def stem(name: str) -> str:
    """A recording's file name without its folder and extension (``calls/a.wav`` → ``a``)."""
    return PurePosixPath(name.replace("\\", "/")).stem


def base_name(ref: str) -> str:
    """The file name at the end of a path or URL."""
    return ref.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def region_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows as a frame of :data:`REGION_FIELDS` (missing text None, missing tags an empty list)."""
    frame = pd.DataFrame(list(rows), columns=list(REGION_FIELDS))
    frame["annotator"] = frame["annotator"].astype(object).where(frame["annotator"].notna(), None)
    frame["text"] = frame["text"].astype(object).where(frame["text"].notna(), None)
    frame["tags"] = [list(t) if isinstance(t, (list, tuple)) else [] for t in frame["tags"]]
    return frame.astype({"start": "float64", "end": "float64"})


def seconds(value: Any, what: str) -> float:
    """A finite, non-negative number of seconds, or :class:`ValueError` saying what it was."""
    if isinstance(value, bool):
        raise ValueError(f"{what} {value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} {value!r} is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{what} {value!r} is not a time >= 0")
    return number


def refuse(name: str, kind: str, bad: list[str]) -> None:
    """Raise :class:`FormatError` naming the first bad lines of a file, when there are any."""
    if bad:
        more = f" and {len(bad) - MAX_SHOWN} more" if len(bad) > MAX_SHOWN else ""
        raise FormatError(f"{name} is not valid {kind}: {'; '.join(bad[:MAX_SHOWN])}{more}")


def text_or_none(value: Any) -> str | None:
    """A transcript as stored: text, or None for missing and empty."""
    return value if isinstance(value, str) and value else None
