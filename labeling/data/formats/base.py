"""The shapes every reader produces and every writer consumes.

A reader never touches the database or the audio store: it resolves file references against the
folder the user named, refuses anything outside it, and returns an :class:`ImportPlan`. The importer
decodes, measures, stores and inserts the plan in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

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
    problems: list[Problem] = field(default_factory=list)  # not imported, and why
    warnings: list[Problem] = field(default_factory=list)  # imported, but worth a look
    ignored: list[str] = field(default_factory=list)  # files that are not audio (README, CSV…)
    #: Audio files whose names the file-name pattern does not match: never imported, but decoded and
    #: checked like the rest, so a broken one is reported as broken rather than only as misnamed.
    unmatched: list[SourceItem] = field(default_factory=list)
    source_format: str = "folder"
    #: Readers that write temporary audio (segments cut from longer recordings) keep here what
    #: removes it: the files live as long as the plan.
    resources: list[Any] = field(default_factory=list, repr=False)
    #: Classes the source declares (a Label Studio labeling config lists every choice, used or not).
    declared_classes: list[str] = field(default_factory=list)
    #: Tags (``group:value``) the source declares, used or not: the project's tag vocabulary.
    declared_tags: list[str] = field(default_factory=list)


class FormatError(ValueError):
    """The source cannot be read at all; the message says why in words a user understands."""


@dataclass(frozen=True)
class ReadLimits:
    """Bounds a reader refuses to go past, so a hostile or mistaken file fails fast and clearly.

    JSON documents are parsed whole, hence their own size limit; tables and JSON Lines are read a
    line at a time, hence a per-line limit as well.
    """

    max_json_bytes: int = 2 * 1024**3
    max_table_bytes: int = 2 * 1024**3
    max_line_bytes: int = 64 * 1024**2
    #: One text value (a label, transcript, metadata value, file reference): longer is not data
    #: Earmark stores, and would only exhaust memory and the database.
    max_field_bytes: int = 1024**2
    max_depth: int = 64
    max_rows: int = 10_000_000


#: How a row of a labels file names the clip it is about.
LABEL_REF_KINDS = ("clip_id", "sha256", "file_name")


@dataclass(frozen=True)
class LabelRow:
    """One label made elsewhere for a clip Earmark already holds."""

    ref_kind: str  # one of LABEL_REF_KINDS
    ref: str
    annotator: str | None = None  # None: the row is a final label (a resolution), not someone's annotation
    label: str | None = None
    transcript: str | None = None
    tags: tuple[str, ...] = ()
    line: int = 0  # where the row is in the source, for messages
    # What Earmark's per-annotation table also carries; None when the file does not say.
    unsure: bool | None = None
    cannot_label_reason: str | None = None
    time_spent_ms: int | None = None
    convention_version: int | None = None
    created_at: datetime | None = None  # UTC
    updated_at: datetime | None = None  # UTC: when it was last submitted


@dataclass
class LabelRows:
    """What a labels file says about existing clips, and what in it could not be used."""

    rows: list[LabelRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    source_format: str = "labels"
