"""Regions as a Kaldi data directory with ``segments``: :func:`read_kaldi_segments`,
:func:`kaldi_segment_tables`.

Kaldi's "Data preparation" guide: ``segments`` has ``<utterance-id> <recording-id> <start> <end>``
(seconds), ``wav.scp`` ``<recording-id> <audio>``, ``utt2spk`` ``<utterance-id> <speaker-id>``,
``spk2utt`` its inverse, ``text`` ``<utterance-id> <transcript>``. Its rules, which
``utils/validate_data_dir.sh`` checks and Earmark keeps: every file sorted as ``LC_ALL=C sort`` sorts,
ids without whitespace, and each utterance id starting with its speaker id, so that ``utt2spk`` sorted
by utterance is sorted by speaker too.

Earmark writes one region per utterance: the speaker is the region's class, the recording id the
recording's file name without its extension, and the utterance id
``<speaker>-<recording>-<start ms>-<end ms>`` (times zero-padded to eight digits, so they sort in
time order).

``text`` is whole or absent. Kaldi's ``validate_data_dir.sh`` wants the utterance ids of ``text``, when
it exists, to be exactly those of ``utt2spk`` (and of ``segments``); lhotse's ``load_kaldi_data_dir``
reads every ``text`` line as an id and a transcript (a line with the id alone is an error there) and
looks up every segment in it. So a set where every region has a transcript gets ``text``; one where
none has gets none; a partly transcribed set keeps every region in the directory, without ``text``,
and writes the transcribed regions again as a data directory of their own in
:data:`TRANSCRIBED` (``transcribed/``), with ``text``. Transcripts are written on one line, their
whitespace runs made single spaces (Kaldi's ``validate_text.pl`` refuses other whitespace).

Reading takes ``segments`` and ``utt2spk`` (and ``text`` when present, else ``transcribed/text``); a
speaker equal to its utterance id is Kaldi's "speaker not known" and gives no class, so that region is
reported, not read. An end of ``-1`` is Kaldi's "to the end of the recording": it reads as infinity,
which the import makes the recording's duration.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from labeling.data.formats._common import DEFAULT_LIMITS, text_lines
from labeling.data.formats.base import FormatError, Problem, ReadLimits
from labeling.data.formats.kaldi import kaldi_id
from labeling.data.formats.region_frame import RegionFile, refuse, region_frame, seconds, stem

#: The data directory of a partly transcribed set's transcribed regions, inside the set's own.
TRANSCRIBED = "transcribed"


def _c_sorted(lines: list[str]) -> list[str]:
    return sorted(lines, key=lambda line: line.encode("utf-8"))


def utterance_id(speaker: str, recording: str, start: float, end: float) -> str:
    """``<speaker>-<recording>-<start ms>-<end ms>``: speaker first, as Kaldi's rules ask."""
    return f"{speaker}-{recording}-{round(start * 1000):08d}-{round(end * 1000):08d}"


def kaldi_segment_tables(
    regions: pd.DataFrame, recordings: Mapping[str, tuple[str, float]]
) -> dict[str, list[str]]:
    """The lines of each file of the data directory of one set of ``regions``, keyed by the file's
    path in it (``transcribed/text``… for a partly transcribed set: see the module docstring).

    ``regions`` has ``recording`` (the file name), ``start``, ``end``, ``label``, ``text``;
    ``recordings`` maps each file name to ``(audio location, duration)``.

    Raises
    ------
    FormatError
        If two regions get one utterance id (same class, recording and times to the millisecond), or
        two recordings one recording id.
    """
    reco_ids: dict[str, str] = {}
    for name in dict.fromkeys(regions["recording"]):
        reco = kaldi_id(stem(str(name)))
        if reco in reco_ids.values():
            raise FormatError(f"two recordings have the Kaldi id {reco!r}; rename one of them")
        reco_ids[str(name)] = reco
    utts: dict[str, tuple[str, str, str, float, float, str | None]] = {}
    twice = []
    for r in regions.itertuples(index=False):
        spk, reco = kaldi_id(str(r.label)), reco_ids[str(r.recording)]
        utt = utterance_id(spk, reco, float(r.start), float(r.end))
        if utt in utts:
            twice.append(utt)
        text = " ".join(r.text.split()) if isinstance(r.text, str) else None
        utts[utt] = (spk, str(r.recording), reco, float(r.start), float(r.end), text or None)
    if twice:
        raise FormatError(f"regions share an utterance id {twice[:5]}: one class twice at the same times")
    transcribed = {u: v for u, v in utts.items() if v[5]}
    if len(transcribed) == len(utts):
        return _directory(utts, recordings, with_text=True)
    tables = _directory(utts, recordings, with_text=False)
    if transcribed:
        sub = _directory(transcribed, recordings, with_text=True)
        tables |= {f"{TRANSCRIBED}/{name}": lines for name, lines in sub.items()}
    return tables


def _directory(
    utts: Mapping[str, tuple[str, str, str, float, float, str | None]],
    recordings: Mapping[str, tuple[str, float]],
    *,
    with_text: bool,
) -> dict[str, list[str]]:
    """One data directory of the utterances ``utts`` (id → speaker, file name, recording id, start,
    end, transcript), with ``text`` when ``with_text`` (every one has a transcript then)."""
    reco_ids = {name: reco for _, name, reco, *_ in utts.values()}
    tables = {
        "segments": [f"{u} {reco} {start:.3f} {end:.3f}" for u, (_, _, reco, start, end, _) in utts.items()],
        "utt2spk": [f"{u} {spk}" for u, (spk, *_) in utts.items()],
        "wav.scp": [f"{reco} {recordings[name][0]}" for name, reco in reco_ids.items()],
        "reco2dur": [f"{reco} {recordings[name][1]:.3f}" for name, reco in reco_ids.items()],
    }
    if with_text:
        tables["text"] = [f"{u} {t[5]}" for u, t in utts.items()]
    spk2utt: dict[str, list[str]] = {}
    for u in sorted(utts, key=str.encode):
        spk2utt.setdefault(utts[u][0], []).append(u)
    tables["spk2utt"] = [f"{spk} {' '.join(us)}" for spk, us in spk2utt.items()]
    return {name: _c_sorted(lines) for name, lines in tables.items()}


def _mapping(path: Path, limits: ReadLimits, bad: list[str], *, split: int) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for number, line in enumerate(text_lines(path, limits), start=1):
        fields = line.strip().split(maxsplit=split)
        if not fields:
            continue
        if fields[0] in found:
            bad.append(f"{path.name} line {number}: {fields[0]!r} twice")
        found[fields[0]] = fields[1:]
    return found


def read_kaldi_segments(folder: Path, *, limits: ReadLimits = DEFAULT_LIMITS) -> RegionFile:
    """The regions of a data directory with ``segments`` and ``utt2spk`` (``text`` when present).

    Raises
    ------
    FormatError
        A missing ``segments`` or ``utt2spk``, a segment line without four fields or with times that
        are not numbers, an utterance without a speaker.
    """
    folder = Path(folder)
    for name in ("segments", "utt2spk"):
        if not (folder / name).is_file():
            raise FormatError(
                f"{folder.name} has no {name}: a Kaldi data directory of regions needs segments and utt2spk"
            )
    bad: list[str] = []
    segments = _mapping(folder / "segments", limits, bad, split=3)
    speakers = _mapping(folder / "utt2spk", limits, bad, split=1)
    text_file = next((f for f in (folder / "text", folder / TRANSCRIBED / "text") if f.is_file()), None)
    texts = _mapping(text_file, limits, bad, split=1) if text_file is not None else {}
    rows = []
    problems: list[Problem] = []
    for utt, fields in segments.items():
        if len(fields) != 3:
            bad.append(f"segments: {utt} has {len(fields) + 1} fields, not 4")
            continue
        reco = fields[0]
        try:
            start = seconds(fields[1], "start")
            end = math.inf if fields[2].strip() in ("-1", "-1.0") else seconds(fields[2], "end")
        except ValueError as exc:
            bad.append(f"segments: {utt}: {exc}")
            continue
        spk = speakers.get(utt)
        if not spk:
            bad.append(f"utt2spk has no speaker for {utt}")
            continue
        if spk[0] == utt:
            problems.append(
                Problem(utt, "its speaker is not known (the utterance id), so it has no class; not read")
            )
            continue
        text = texts.get(utt)
        rows.append(
            {
                "recording": reco,
                "annotator": None,
                "start": start,
                "end": end,
                "label": spk[0].strip(),
                "text": text[0].strip() if text else None,
            }
        )
    refuse(folder.name, "a Kaldi data directory", bad)
    return RegionFile(region_frame(rows), problems)
