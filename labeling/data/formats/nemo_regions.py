"""Regions as a NeMo manifest with offsets: :func:`read_nemo_regions`, :func:`nemo_region_lines`.

NeMo reads a manifest (``nemo/collections/common/parts/preprocessing/manifest.py``) a JSON object a
line: the audio under ``audio_filepath`` (or ``audio_filename``), a ``duration`` it requires, and
``text``, ``offset``, ``speaker`` and ``lang`` when present; an ``offset`` makes the line the stretch
``[offset, offset + duration)`` of the file. A relative path with a folder is relative to the
manifest's folder. Keys it does not use are kept by its datasets and ignored.

Earmark writes one line per region: ``audio_filepath`` (the recording's audio), ``offset``,
``duration``, ``text`` (``""`` without a transcript, as NeMo's default), ``label`` (the class, the key
NeMo's classification and speaker-label datasets read), and ``annotator`` and ``tags`` when there are
any. Reading takes the class from ``label``, else ``speaker``; the recording is the audio's file name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from labeling.data.formats._common import DEFAULT_LIMITS, json_lines
from labeling.data.formats.base import FormatError, ReadLimits
from labeling.data.formats.region_frame import RegionFile, base_name, refuse, region_frame, seconds


def nemo_region_lines(regions: pd.DataFrame, locations: dict[str, str]) -> list[str]:
    """One manifest line per region (``recording, annotator, start, end, label, text, tags``), by
    recording and time; ``locations`` maps a recording's file name to its audio path."""
    ordered = regions.sort_values(
        ["recording", "start", "end", "label", "annotator"], kind="stable", na_position="first"
    )
    lines = []
    for r in ordered.itertuples(index=False):
        line: dict[str, Any] = {
            "audio_filepath": locations[str(r.recording)],
            "offset": float(r.start),
            "duration": round(float(r.end) - float(r.start), 6),
            "text": r.text if isinstance(r.text, str) else "",
            "label": r.label,
        }
        if isinstance(r.annotator, str):
            line["annotator"] = r.annotator
        if isinstance(r.tags, (list, tuple)) and r.tags:
            line["tags"] = list(r.tags)
        lines.append(json.dumps(line, ensure_ascii=False) + "\n")
    return lines


def read_nemo_regions(path: Path, *, limits: ReadLimits = DEFAULT_LIMITS) -> RegionFile:
    """The regions of a NeMo manifest whose lines carry ``offset`` and ``duration``.

    Raises
    ------
    FormatError
        A line without ``audio_filepath``, ``duration`` or a class, or with times that are not numbers;
        the whole file is refused, naming the first bad lines.
    """
    path = Path(path)
    bad: list[str] = []
    rows = []
    for number, item in json_lines(path, limits):
        where = f"line {number}"
        if isinstance(item, FormatError) or not isinstance(item, dict):
            bad.append(f"{where}: not a JSON object")
            continue
        audio = item.get("audio_filepath", item.get("audio_filename"))
        label = item.get("label", item.get("speaker"))
        if not isinstance(audio, str) or not audio.strip():
            bad.append(f"{where}: no audio_filepath")
            continue
        if not isinstance(label, str) or not label.strip():
            bad.append(f"{where}: no label (or speaker) to give the region its class")
            continue
        try:
            offset = seconds(item.get("offset") or 0, "offset")
            duration = seconds(item.get("duration"), "duration")
        except ValueError as exc:
            bad.append(f"{where}: {exc}")
            continue
        text = item.get("text")
        tags = item.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            bad.append(f"{where}: tags must be a list of text")
            continue
        annotator = item.get("annotator")
        rows.append(
            {
                "recording": base_name(audio),
                "annotator": annotator if isinstance(annotator, str) and annotator else None,
                "start": offset,
                "end": offset + duration,
                "label": label.strip(),
                "text": text if isinstance(text, str) and text else None,
                "tags": tags,
            }
        )
    refuse(path.name, "a NeMo manifest", bad)
    return RegionFile(region_frame(rows))
