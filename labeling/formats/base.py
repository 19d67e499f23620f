"""The shapes every reader produces and every writer consumes.

A reader never touches the database or the audio store: it resolves file references against the
folder the user named, refuses anything outside it, and returns an :class:`ImportPlan`. The importer
decodes, measures, stores and inserts the plan in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "dev", "test")

#: Columns of the export frame handed to writers, one row per clip. ``tags`` is a list of str,
#: ``metadata`` a dict of str to str, ``audio_path`` the stored file (read-only, content-addressed).
EXPORT_COLUMNS = (
    "clip_id",
    "sha256",
    "original_name",
    "audio_path",
    "duration_s",
    "sample_rate",
    "channels",
    "split",
    "label",
    "transcript",
    "tags",
    "metadata",
)


@dataclass(frozen=True)
class ExternalAnnotation:
    """One person's label of a clip made in another tool."""

    annotator: str
    label: str | None = None
    transcript: str | None = None
    tags: tuple[str, ...] = ()
    unsure: bool = False


@dataclass(frozen=True)
class ExternalPrediction:
    """A model's output for a clip made in another tool."""

    model: str
    label: str | None = None
    transcript: str | None = None
    confidence: float | None = None


@dataclass
class SourceItem:
    """One audio file to import and everything known about it."""

    path: Path  # a resolved local file, inside the import root (or a temporary extraction of it)
    name: str  # the name shown to people and matched by patterns; relative to the import root
    metadata: dict[str, str] = field(default_factory=dict)
    label: str | None = None  # an existing final label, stored as a resolution with method "imported"
    transcript: str | None = None
    split: str | None = None  # train/dev/test when the source says so
    tags: tuple[str, ...] = ()
    annotations: list[ExternalAnnotation] = field(default_factory=list)
    predictions: list[ExternalPrediction] = field(default_factory=list)


@dataclass(frozen=True)
class Problem:
    """Something in the source that was not imported, and why."""

    ref: str  # file name, row number or task id, as the user would find it
    reason: str


@dataclass
class ImportPlan:
    items: list[SourceItem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    source_format: str = "folder"
