"""Labels made elsewhere for clips Earmark already holds: call :func:`read_labels`.

A CSV (or TSV) or JSON Lines file with one row per label. The clip is named by ``clip_id``,
``sha256`` (of the audio bytes) or ``file_name`` (its original name), whichever column is present,
in that order of preference; ``label`` and/or ``transcript`` (also ``transcription``, ``text``) carry
the label, ``tags`` the tags (``;``-separated or a JSON list), and ``annotator`` whose label it is —
without it a row is a final label. The columns of Earmark's per-annotation export (``unsure``,
``cannot_label_reason``, ``time_spent_ms``, ``convention_version``, ``created_at``, ``updated_at``)
are read too; a row with a ``cannot_label_reason`` needs no label. What to do with the rows
(annotations of a named annotator, or resolutions) is the caller's choice; this module only reads
them. The delimiter is sniffed from the header; cells are read as written unless a ``MANIFEST.json``
beside the file says Earmark escaped them for spreadsheets.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labeling.data.formats._common import (
    DEFAULT_LIMITS,
    Table,
    clean_text,
    escaped_for_spreadsheets,
    json_lines,
    parse_tags,
    sniff_delimiter,
)
from labeling.data.formats.base import LABEL_REF_KINDS, FormatError, LabelRow, LabelRows, Problem, ReadLimits

LABEL_COLUMNS = ("label",)
TRANSCRIPT_COLUMNS = ("transcript", "transcription", "text")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def read_labels(path: Path, *, limits: ReadLimits = DEFAULT_LIMITS) -> LabelRows:
    """Read a labels file (``.csv``, ``.tsv`` or ``.jsonl``) into :class:`LabelRows`.

    Required columns: one of ``clip_id``, ``sha256``, ``file_name``; and ``label`` or ``transcript``.
    Two rows for the same clip and annotator are a Problem (the first is kept).
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    out = LabelRows()
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        records = _jsonl_records(path, limits, out.problems)
        columns = None
    elif suffix in (".csv", ".tsv", ".txt"):
        delimiter = sniff_delimiter(path, "\t" if suffix == ".tsv" else ",")
        table = Table(path, limits, delimiter=delimiter, unescape=escaped_for_spreadsheets(path))
        _columns(table.header, path.name)
        records = _table_records(table, out.problems)
        columns = table.header
    else:
        raise FormatError(f"{path.name}: a labels file is a .csv, .tsv or .jsonl file")
    seen: dict[tuple[str, str, str | None], int] = {}
    unusable: FormatError | None = None
    for line, record in records:
        where = f"{path.name} line {line}"
        try:
            ref_kind, label_column, transcript_column = _columns(columns or list(record), where)
        except FormatError as exc:  # only JSON Lines rows get here: a table's header was checked
            unusable = unusable or exc
            out.problems.append(Problem(where, f"{exc}; skipped"))
            continue
        ref = clean_text(record.get(ref_kind))
        if ref is None:
            out.problems.append(Problem(where, f"no {ref_kind}; skipped"))
            continue
        if ref_kind == "sha256":
            ref = ref.lower()
            if not SHA256.match(ref):
                out.problems.append(Problem(where, f"{ref!r} is not a SHA-256 (64 hex digits); skipped"))
                continue
        annotator = clean_text(record.get("annotator"))
        label = clean_text(record.get(label_column)) if label_column else None
        transcript = clean_text(record.get(transcript_column)) if transcript_column else None
        tags = parse_tags(record.get("tags"))
        try:
            extra = _annotation_fields(record)
        except ValueError as exc:
            out.problems.append(Problem(where, f"{exc}; skipped"))
            continue
        if extra.get("cannot_label_reason") is not None:
            label = transcript = None  # a clip nobody could label has neither, as the labeling page says
        elif label is None and transcript is None and not tags:
            out.problems.append(Problem(where, "no label, transcript or tags; skipped"))
            continue
        key = (ref_kind, ref, annotator)
        if key in seen:
            who = f" by {annotator}" if annotator else ""
            out.problems.append(
                Problem(where, f"{ref} was labelled{who} already on line {seen[key]}; skipped")
            )
            continue
        seen[key] = line
        out.rows.append(LabelRow(ref_kind, ref, annotator, label, transcript, tags, line, **extra))
    if unusable is not None and not out.rows:
        raise unusable
    return out


def _annotation_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The per-annotation columns Earmark's ``annotations`` export writes, when the row has them:
    ``unsure`` (true/false), ``cannot_label_reason``, ``time_spent_ms``, ``convention_version`` and
    the ``created_at`` / ``updated_at`` timestamps (ISO 8601; without a zone, UTC)."""
    out: dict[str, Any] = {}
    unsure = clean_text(record.get("unsure"))
    if unsure is not None:
        if unsure.lower() not in _BOOLEANS:
            raise ValueError(f"unsure is {unsure!r}, not true or false")
        out["unsure"] = _BOOLEANS[unsure.lower()]
    reason = clean_text(record.get("cannot_label_reason"))
    if reason is not None:
        out["cannot_label_reason"] = reason
    for column in ("time_spent_ms", "convention_version"):
        text = clean_text(record.get(column))
        if text is None:
            continue
        try:
            number = int(text)
        except ValueError:
            raise ValueError(f"{column} is {text!r}, not a whole number") from None
        if number < 0 or number > 2**31 - 1:
            raise ValueError(f"{column} is {number}, outside 0 to {2**31 - 1}")
        out[column] = number
    for column in ("created_at", "updated_at"):
        text = clean_text(record.get(column))
        if text is None:
            continue
        try:
            stamp = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{column} is {text!r}, not an ISO 8601 time") from None
        out[column] = (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).astimezone(UTC)
    return out


def _columns(columns: list[str], where: str) -> tuple[str, str | None, str | None]:
    ref_kind = next((k for k in LABEL_REF_KINDS if k in columns), None)
    label = next((c for c in LABEL_COLUMNS if c in columns), None)
    transcript = next((c for c in TRANSCRIPT_COLUMNS if c in columns), None)
    missing = []
    if ref_kind is None:
        missing.append("a column naming the clip (clip_id, sha256 or file_name)")
    if label is None and transcript is None:
        missing.append("a label or transcript column")
    if missing:
        listed = ", ".join(repr(c) for c in columns)
        raise FormatError(f"{where} has no {' and no '.join(missing)}; its columns are {listed}")
    assert ref_kind is not None
    return ref_kind, label, transcript


def _table_records(table: Table, problems: list[Problem]):
    for line, row in table:
        if row is None:
            problems.append(Problem(f"{table.path.name} line {line}", "more cells than columns; row skipped"))
            continue
        yield line, row


def _jsonl_records(path: Path, limits: ReadLimits, problems: list[Problem]):
    for line, value in json_lines(path, limits):
        where = f"{path.name} line {line}"
        if isinstance(value, FormatError):
            problems.append(Problem(where, str(value)))
        elif not isinstance(value, dict):
            problems.append(Problem(where, "not a JSON object; skipped"))
        else:
            record: dict[str, Any] = value
            yield line, record
