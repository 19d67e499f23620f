"""Regions as lhotse manifests: :func:`supervision_lines` writes a ``SupervisionSet`` of regions beside
its ``RecordingSet`` (:func:`labeling.data.formats.lhotse_manifests.recording_dict`),
:func:`read_lhotse_supervisions` reads one back.

A ``SupervisionSegment`` (``lhotse/supervision.py``) is built as ``SupervisionSegment(**line)``: the
fields ``id``, ``recording_id``, ``start`` and ``duration`` are required, ``channel``, ``text``,
``language``, ``speaker``, ``gender``, ``custom`` and ``alignment`` optional, and any other key is an
error, so Earmark's own data goes in ``custom``. Earmark writes one supervision per region: ``id``
``<recording id>-<n>`` (n counting the recording's regions from 0, zero-padded), ``recording_id`` the
recording's file name without its extension (the ``id`` of its ``Recording`` line), ``start``,
``duration``, ``channel`` 0, ``text`` when there is a transcript, ``speaker`` the class (what lhotse's
diarization recipes read), ``language`` from the recording's metadata, and ``custom``: ``label`` (the
class again), ``annotator`` and ``tags`` when there are any. Reading takes the class from
``custom.label``, else ``speaker``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from labeling.data.formats._common import DEFAULT_LIMITS, check_size, parse_json
from labeling.data.formats.base import FormatError, ReadLimits
from labeling.data.formats.lhotse_manifests import RECORDINGS, SUPERVISIONS
from labeling.data.formats.region_frame import RegionFile, refuse, region_frame, seconds

#: The fields of lhotse's ``SupervisionSegment``; a line with any other key is refused by lhotse.
FIELDS = (
    "id",
    "recording_id",
    "start",
    "duration",
    "channel",
    "text",
    "language",
    "speaker",
    "gender",
    "custom",
    "alignment",
)
REQUIRED = ("id", "recording_id", "start", "duration")


def supervision_lines(
    regions: pd.DataFrame, recording_ids: Mapping[str, str], languages: Mapping[str, str | None]
) -> list[str]:
    """One supervision line per region (``recording, annotator, start, end, label, text, tags``).

    ``recording_ids`` maps a recording's file name to its lhotse id, ``languages`` to its language.
    """
    ordered = regions.sort_values(
        ["recording", "start", "end", "label", "annotator"], kind="stable", na_position="first"
    )
    counts: dict[str, int] = {}
    lines = []
    for r in ordered.itertuples(index=False):
        rec = recording_ids[str(r.recording)]
        n = counts[rec] = counts.get(rec, -1) + 1
        line: dict[str, Any] = {
            "id": f"{rec}-{n:06d}",
            "recording_id": rec,
            "start": float(r.start),
            "duration": round(float(r.end) - float(r.start), 6),
            "channel": 0,
        }
        if isinstance(r.text, str) and r.text:
            line["text"] = r.text
        if languages.get(str(r.recording)):
            line["language"] = languages[str(r.recording)]
        line["speaker"] = r.label
        custom: dict[str, Any] = {"label": r.label}
        if isinstance(r.annotator, str):
            custom["annotator"] = r.annotator
        if isinstance(r.tags, (list, tuple)) and r.tags:
            custom["tags"] = list(r.tags)
        line["custom"] = custom
        lines.append(json.dumps(line, ensure_ascii=False) + "\n")
    return lines


def _lines(path: Path, limits: ReadLimits) -> list[str]:
    check_size(path, limits.max_table_bytes, "manifest")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line for line in f if line.strip()]


def read_lhotse_supervisions(path: Path, *, limits: ReadLimits = DEFAULT_LIMITS) -> RegionFile:
    """The regions of a supervision manifest (``supervisions.jsonl.gz``, plain ``.jsonl`` too, or a
    folder holding one).

    Raises
    ------
    FormatError
        A line lhotse would refuse (a required field missing, a field it does not know) or a line of
        another manifest; the whole file is refused, naming the first bad lines.
    """
    path = Path(path)
    if path.is_dir():
        path = path / SUPERVISIONS
    if not path.is_file():
        raise FormatError(f"{path} does not exist")
    try:
        lines = _lines(path, limits)
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(f"{path.name} is not a JSON Lines manifest: {exc}") from None
    bad: list[str] = []
    rows = []
    for number, text in enumerate(lines, start=1):
        where = f"line {number}"
        try:
            item = parse_json(text, path.name, limits, where=f" {where}")
        except FormatError as exc:
            bad.append(str(exc))
            continue
        if not isinstance(item, dict) or "sources" in item:
            bad.append(f"{where}: not a supervision (a recording manifest is {RECORDINGS})")
            continue
        missing = [k for k in REQUIRED if k not in item]
        unknown = sorted(set(item) - set(FIELDS))
        if missing or unknown:
            bad.append(
                f"{where}: "
                + "; ".join(
                    ([f"no {', '.join(missing)}"] if missing else [])
                    + ([f"fields lhotse does not know {unknown}"] if unknown else [])
                )
            )
            continue
        custom: dict[str, Any] = item["custom"] if isinstance(item.get("custom"), dict) else {}
        label = custom.get("label") or item.get("speaker")
        if not isinstance(label, str) or not label.strip():
            bad.append(f"{where}: no class (custom.label or speaker)")
            continue
        try:
            start, duration = seconds(item["start"], "start"), seconds(item["duration"], "duration")
        except ValueError as exc:
            bad.append(f"{where}: {exc}")
            continue
        tags = custom.get("tags") or []
        annotator = custom.get("annotator")
        rows.append(
            {
                "recording": str(item["recording_id"]),
                "annotator": annotator if isinstance(annotator, str) and annotator else None,
                "start": start,
                "end": start + duration,
                "label": label.strip(),
                "text": item.get("text") if isinstance(item.get("text"), str) and item.get("text") else None,
                "tags": [str(t) for t in tags] if isinstance(tags, list) else [],
            }
        )
    refuse(path.name, "a lhotse supervision manifest", bad)
    return RegionFile(region_frame(rows))
