"""Audacity label tracks: :func:`read_audacity_labels`, :func:`audacity_lines`.

Audacity exports a label track (File › Export › Export Labels) as plain text, one label per line, as
its manual's "Importing and Exporting Labels" page describes and its ``LabelStruct::Import`` reads:

* ``<start>\\t<end>\\t<text>``, times in seconds (written with six decimals), fields split on tabs
  only, so the text may hold spaces; a start equal to the end is a point label;
* when the second field is not a number the label is one-sided: the end is the start and the second
  field is the text;
* the extended style adds, after a label, a line ``\\\\\\t<low Hz>\\t<high Hz>`` holding its
  spectral selection; a line starting with a backslash is never a label of its own.

Numbers are read as Audacity reads them, a decimal comma as well as a point. One file is one track
of one recording: Earmark names it by its file name without the extension (``call_a.txt`` holds the
labels of ``call_a.wav``). A label's text is its region's class; point labels are no region and are
reported, not read. Transcripts and tags have no place in a label track and are not written.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from labeling.data.formats._common import DEFAULT_LIMITS, text_lines
from labeling.data.formats.base import FormatError, Problem, ReadLimits
from labeling.data.formats.region_frame import RegionFile, refuse, region_frame, stem

SUFFIX = ".txt"
CONTINUATION = "\\"


def _number(token: str) -> float | None:
    try:
        value = float(token.strip().replace(",", "."))
    except ValueError:
        return None
    return value


def read_audacity_labels(path: Path, *, limits: ReadLimits = DEFAULT_LIMITS) -> RegionFile:
    """The regions of one label track file; refuse the file whole, naming its bad lines.

    Raises
    ------
    FormatError
        A line whose first field is not a number, or with an end before its start.
    """
    path = Path(path)
    rows = []
    bad: list[str] = []
    problems: list[Problem] = []
    for number, line in enumerate(text_lines(path, limits), start=1):
        line = line.rstrip("\r\n")
        if not line.strip() or line.startswith(CONTINUATION):
            continue  # a spectral selection belongs to the label above it
        fields = line.split("\t")
        start = _number(fields[0])
        if start is None or start < 0:
            bad.append(f"line {number}: the start {fields[0]!r} is not a time in seconds")
            continue
        end = _number(fields[1]) if len(fields) > 1 else None
        text_at = 2 if end is not None else 1
        end = start if end is None else end
        label = fields[text_at].strip() if len(fields) > text_at else ""
        if end < start:
            bad.append(f"line {number}: ends at {end} before it starts at {start}")
            continue
        if end == start:
            problems.append(Problem(f"{path.name} line {number}", "a point label is no region; not read"))
            continue
        if not label:
            problems.append(
                Problem(f"{path.name} line {number}", "a label without text has no class; not read")
            )
            continue
        rows.append(
            {"recording": stem(path.name), "annotator": None, "start": start, "end": end, "label": label}
        )
    refuse(path.name, "Audacity labels", bad)
    return RegionFile(region_frame(rows), problems)


def audacity_lines(regions: pd.DataFrame) -> list[str]:
    """The lines of one recording's label track: ``start``, ``end`` with six decimals, ``label``, in
    time order.

    Raises
    ------
    FormatError
        If a class holds a tab or a line break, which would split the label.
    """
    broken = sorted({v for v in regions["label"].astype(str) if any(c in v for c in "\t\r\n")})
    if broken:
        raise FormatError(
            f"an Audacity label cannot hold tabs or line breaks; rename the class(es) {broken[:5]}"
        )
    ordered = regions.sort_values(["start", "end", "label"], kind="stable")
    return [f"{r.start:.6f}\t{r.end:.6f}\t{r.label}\n" for r in ordered.itertuples(index=False)]
