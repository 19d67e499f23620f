"""RTTM, the diarization format of NIST's RT evaluations: :func:`read_rttm`, :func:`rttm_lines`.

One line per speaker turn, ten space-separated fields::

    SPEAKER <file> <channel> <onset> <duration> <NA> <NA> <speaker> <NA> <NA>

``file`` names the recording (Earmark: its file name without the extension, as pyannote's ``uri``),
``onset`` and ``duration`` are seconds, ``speaker`` becomes the region's class. Lines of other types
(``SPKR-INFO``, ``LEXEME``, ``NON-SPEECH``…) carry no speaker turn and are counted, not read. Lines
are written as ``pyannote.core``'s ``Annotation.write_rttm`` writes them (three decimals, ``<NA>``
in the unused fields, turns in time order), so a file pyannote wrote comes back out unchanged.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pandas as pd

from labeling.data.formats._common import DEFAULT_LIMITS, check_size
from labeling.data.formats.base import FormatError, ReadLimits

SPEAKER = "SPEAKER"
N_FIELDS = 10
_MAX_SHOWN = 5
_SPACE = re.compile(r"\s")


@dataclass
class RttmTurns:
    """The speaker turns of an RTTM file: ``recording, channel, start, end, label`` per turn."""

    turns: pd.DataFrame
    skipped: Counter[str] = field(default_factory=Counter)


def rttm_uri(name: str) -> str:
    """The RTTM ``file`` field of a recording named ``name``: its file name without the extension."""
    return PurePosixPath(name.replace("\\", "/")).stem


def read_rttm(path: Path, *, limits: ReadLimits = DEFAULT_LIMITS) -> RttmTurns:
    """Read every ``SPEAKER`` line of an RTTM file; refuse the whole file, naming its bad lines.

    Raises
    ------
    FormatError
        Lines with fewer than ten fields, an onset or duration that is not a number, a negative
        onset or a duration that is not positive. Nothing is returned in part.
    """
    path = Path(path)
    check_size(path, limits.max_table_bytes, "RTTM")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{path.name} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    rows: list[tuple[str, str, float, float, str]] = []
    bad: list[str] = []
    skipped: Counter[str] = Counter()
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith(("#", ";")):
            continue
        if fields[0] != SPEAKER:
            skipped[fields[0]] += 1
            continue
        if len(fields) < N_FIELDS:
            bad.append(f"line {number}: {len(fields)} fields, RTTM has {N_FIELDS}")
            continue
        try:
            onset, duration = float(fields[3]), float(fields[4])
        except ValueError:
            bad.append(f"line {number}: onset {fields[3]!r} or duration {fields[4]!r} is not a number")
            continue
        if not (math.isfinite(onset) and math.isfinite(duration)) or onset < 0 or duration <= 0:
            bad.append(f"line {number}: a turn needs an onset >= 0 and a positive duration")
            continue
        rows.append((fields[1], fields[2], onset, onset + duration, fields[7]))
    if bad:
        more = f" and {len(bad) - _MAX_SHOWN} more" if len(bad) > _MAX_SHOWN else ""
        raise FormatError(f"{path.name} is not valid RTTM: {'; '.join(bad[:_MAX_SHOWN])}{more}")
    turns = pd.DataFrame(rows, columns=["recording", "channel", "start", "end", "label"])
    return RttmTurns(turns=turns.astype({"start": "float64", "end": "float64"}), skipped=skipped)


def rttm_lines(turns: pd.DataFrame) -> list[str]:
    """RTTM lines of ``turns`` (``recording, start, end, label``), by recording and then time.

    Raises
    ------
    FormatError
        If a recording or a label holds a space: RTTM's fields are space-separated.
    """
    for column, what in (("recording", "recording name"), ("label", "class")):
        spaced = sorted({v for v in turns[column].astype(str) if _SPACE.search(v)})
        if spaced:
            raise FormatError(f"RTTM fields cannot hold spaces; rename the {what}(s) {spaced[:_MAX_SHOWN]}")
    ordered = turns.sort_values(["recording", "start", "end", "label"], kind="stable")
    return [
        f"{SPEAKER} {r.recording} 1 {r.start:.3f} {r.end - r.start:.3f} <NA> <NA> {r.label} <NA> <NA>\n"
        for r in ordered.itertuples(index=False)
    ]
