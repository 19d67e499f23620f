"""Regions as a table: :func:`read_region_table` and :func:`region_table_text` (CSV or JSON Lines).

One row (line) per region with the columns ``recording`` (the recording's file name), ``annotator``
(empty for a set without a person), ``start`` and ``end`` in seconds, ``label`` (the class), ``text``
(the transcript) and ``tags``. CSV is RFC 4180 as Python's ``csv`` module writes it, tags joined by
``;``, and every text cell escaped for spreadsheets as Earmark's clip CSV is (an apostrophe before a
leading ``=``, ``+``, ``-``, ``@``…; reading takes it off again). JSON Lines holds the same keys, tags
as a list, an empty annotator or text as ``null``. ``recording``, ``start``, ``end`` and ``label`` are
required; a file missing one is refused whole.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from labeling.data.formats._common import DEFAULT_LIMITS, escape_cell, json_lines, text_lines, unescape_cell
from labeling.data.formats.base import FormatError, ReadLimits
from labeling.data.formats.region_frame import RegionFile, refuse, region_frame, seconds

COLUMNS = ("recording", "annotator", "start", "end", "label", "text", "tags")
REQUIRED = ("recording", "start", "end", "label")
TAG_SEPARATOR = ";"
FORMATS = ("csv", "jsonl")


def _row(raw: dict[str, Any], where: str, bad: list[str], *, from_csv: bool) -> dict[str, Any] | None:
    missing = [c for c in REQUIRED if raw.get(c) in (None, "")]
    if missing:
        bad.append(f"{where}: no {', '.join(missing)}")
        return None
    try:
        start, end = seconds(raw["start"], "start"), seconds(raw["end"], "end")
    except ValueError as exc:
        bad.append(f"{where}: {exc}")
        return None

    def text(key: str) -> str | None:
        value = raw.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            value = str(value)
        return unescape_cell(value) if from_csv else value

    tags: Any = raw.get("tags")
    if from_csv:
        tags = [t for t in (text("tags") or "").split(TAG_SEPARATOR) if t]
    elif tags is None:
        tags = []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        bad.append(f"{where}: tags must be a list of text, got {tags!r}")
        return None
    return {
        "recording": text("recording"),
        "annotator": text("annotator"),
        "start": start,
        "end": end,
        "label": (text("label") or "").strip(),
        "text": text("text"),
        "tags": tags,
    }


def read_region_table(path: Path, *, limits: ReadLimits = DEFAULT_LIMITS) -> RegionFile:
    """The regions of a CSV (``.csv``) or JSON Lines (any other suffix) file of :data:`COLUMNS`.

    Raises
    ------
    FormatError
        A required column missing, a time that is not a number >= 0, a line that is not JSON; the
        whole file is refused, naming the first bad rows.
    """
    path = Path(path)
    bad: list[str] = []
    rows = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO("".join(text_lines(path, limits)), newline=""))
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise FormatError(f"{path.name} has no column(s) {missing}; a region table has {list(COLUMNS)}")
        for number, raw in enumerate(reader, start=2):
            row = _row(dict(raw), f"row {number}", bad, from_csv=True)
            if row is not None:
                rows.append(row)
    else:
        for number, item in json_lines(path, limits):
            if isinstance(item, FormatError) or not isinstance(item, dict):
                bad.append(f"line {number}: not a JSON object")
                continue
            row = _row(item, f"line {number}", bad, from_csv=False)
            if row is not None:
                rows.append(row)
    refuse(path.name, "a region table", bad)
    return RegionFile(region_frame(rows))


def _records(regions: pd.DataFrame) -> list[dict[str, Any]]:
    ordered = regions.sort_values(
        ["recording", "annotator", "start", "end", "label"], kind="stable", na_position="first"
    )
    return [
        {
            "recording": r.recording,
            "annotator": r.annotator if isinstance(r.annotator, str) else None,
            "start": float(r.start),
            "end": float(r.end),
            "label": r.label,
            "text": r.text if isinstance(r.text, str) and r.text else None,
            "tags": list(r.tags) if isinstance(r.tags, (list, tuple)) else [],
        }
        for r in ordered.itertuples(index=False)
    ]


def region_table_text(regions: pd.DataFrame, *, fmt: str) -> str:
    """``regions`` (:data:`COLUMNS`) as the text of a ``fmt`` (``csv`` or ``jsonl``) file, by
    recording, annotator and time.

    Raises
    ------
    FormatError
        If a tag holds the ``;`` that joins tags in a CSV cell.
    """
    records = _records(regions)
    if fmt == "jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    elif fmt == "csv":
        joined = sorted({t for r in records for t in r["tags"] if TAG_SEPARATOR in t})
        if joined:
            raise FormatError(
                f"tags holding {TAG_SEPARATOR!r} cannot be written to CSV: {joined[:5]}; use jsonl"
            )
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for r in records:
            cells = [
                r["recording"],
                r["annotator"] or "",
                repr(r["start"]),
                repr(r["end"]),
                r["label"],
                r["text"] or "",
            ]
            cells.append(TAG_SEPARATOR.join(r["tags"]))
            writer.writerow([c if i in (2, 3) else escape_cell(c) for i, c in enumerate(cells)])
        text = out.getvalue()
    else:
        raise FormatError(f"a region table is csv or jsonl, not {fmt!r}")
    return text
