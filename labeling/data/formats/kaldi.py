"""Kaldi data directories: :func:`read_kaldi` imports one (or a folder of them), :func:`write_kaldi`
writes one per split.

A data directory, as Kaldi's "Data preparation" guide describes it, holds ``wav.scp``
(``<recording-id> <file>``), ``text`` (``<utterance-id> <transcript>``), ``utt2spk``
(``<utterance-id> <speaker-id>``), optionally ``segments`` (``<utterance-id> <recording-id> <start>
<end>`` in seconds: each utterance is that stretch of the recording) and ``spk2gender``
(``<speaker-id> m|f``). Without ``segments`` the utterance ids are the recording ids.

Import: every ``wav.scp`` line must name an audio file. A line ending in ``|`` is a shell command
(``sph2pipe -f wav x.sph |``) and ``file.ark:1234`` an offset into an archive; Earmark never runs
commands or reads archives, so those lines are reported and nothing is executed. Relative file names
are relative to the directory Kaldi's scripts run in: the data directory's parents are tried up to
the folder the user named. Segments are cut out of their recording on import (to WAV, samples
unchanged; an end of ``-1`` means the end of the recording, and, as Kaldi's ``extract-segments``
allows, an end up to half a second past it is cut at the end). The speaker (unless it is the
utterance itself, Kaldi's way of saying "unknown"), gender, and for segments the recording and times
become metadata; the directory's name gives the split (``train``, ``dev``, ``test``…).

Export: ``data/<split>/`` (``train``, ``dev``, ``test``, ``unassigned``) with ``wav.scp``, ``text``,
``utt2spk``, ``spk2utt``, ``utt2dur`` and, when every speaker of the directory has a ``gender`` of
m/f, ``spk2gender``; sorted as Kaldi's ``LC_ALL=C sort`` does, utterance ids prefixed by the speaker.
``text`` and ``spk2gender`` are written whole or not at all, since Kaldi's validator and lhotse's
reader both want a line for every utterance (speaker) once the file exists; a split's clips without a
transcript go to ``data/<split>_untranscribed/``. Copied audio keeps its original name under the
export folder, which ``wav.scp`` names relative to (run Kaldi's scripts from the export folder);
referenced audio keeps it in ``MANIFEST.json``, which the import reads back. Labels, tags, annotators
and other metadata have no place in a data directory and are not written.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from labeling.data.formats._common import (
    DEFAULT_LIMITS,
    Refused,
    Resolver,
    keep_text,
    map_path,
    parse_path_map,
    referenced_audio,
    referenced_names,
    split_from_words,
    text_lines,
)
from labeling.data.formats.base import FormatError, ImportPlan, Problem, ReadLimits, SourceItem

#: Files of a data directory this module reads.
DATA_FILES = ("wav.scp", "text", "utt2spk", "segments", "spk2gender")
#: Kaldi's extract-segments truncates segments that end at most this far past the recording.
MAX_OVERSHOOT_S = 0.5
_ARCHIVE_OFFSET = re.compile(r"\.(ark|scp)(:\d+)?$|:\d+$")
_GENDERS = {"m": "m", "f": "f", "male": "m", "female": "f"}


def is_kaldi_dir(path: Path) -> bool:
    """A data directory, or a folder holding data directories (up to two levels down)."""
    return bool(_data_dirs(Path(path), limit=1))


def _data_dirs(root: Path, limit: int | None = None) -> list[Path]:
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        depth = len(Path(folder).relative_to(root).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if depth < 2 else []
        if "wav.scp" in files:
            found.append(Path(folder))
            if limit is not None and len(found) >= limit:
                break
    return found


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Segment:
    utt: str
    recording: str
    start: float
    end: float  # -1: to the end
    start_text: str
    end_text: str
    line: int


def _table(
    path: Path, limits: ReadLimits, problems: list[Problem], *, rest: bool = True
) -> dict[str, tuple[int, str]]:
    """``key → (line, rest of the line)`` of a Kaldi table file; a repeated key is a Problem."""
    out: dict[str, tuple[int, str]] = {}
    if not path.is_file():
        return out
    for number, raw in enumerate(text_lines(path, limits), start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        parts = line.split(maxsplit=1) if rest else line.split()
        key = parts[0]
        value = parts[1] if len(parts) > 1 else ""
        if key in out:
            problems.append(
                Problem(
                    f"{path.name} line {number}",
                    f"{key} is listed again (first on line {out[key][0]}); skipped",
                )
            )
            continue
        out[key] = (number, value)
    return out


def read_kaldi(
    path: Path,
    *,
    audio_root: Path | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
    path_map: Iterable[str | tuple[str, Path]] = (),
) -> ImportPlan:
    """Read a Kaldi data directory, or every data directory in a folder (``data/train``, …).

    Parameters
    ----------
    path
        A folder holding ``wav.scp``, or folders (up to two levels down) that do.
    audio_root
        Another folder the audio may be in (``wav.scp`` often names absolute paths).
    path_map
        ``(OLD, NEW)`` pairs or ``"OLD=NEW"`` strings: ``wav.scp`` paths starting with OLD are read
        from NEW instead (a corpus prepared on another machine).
    """
    root = Path(path)
    if not root.is_dir():
        raise FormatError(f"{root} is not a folder; name the Kaldi data directory (the folder of wav.scp)")
    mapping = parse_path_map(path_map)
    dirs = _data_dirs(root)
    if not dirs:
        raise FormatError(f"{root} holds no Kaldi data directory (no wav.scp in it or its subfolders)")
    extra = [Path(audio_root)] if audio_root is not None else []
    resolver = Resolver([root, *extra, *(new for _, new in mapping)], allow=referenced_audio(root))
    plan = ImportPlan(source_format="kaldi")
    cutter = _Cutter(plan)
    for data_dir in dirs:
        _read_dir(data_dir, root, resolver, mapping, plan, cutter, limits)
    names = referenced_names(root)  # an Earmark export of stored audio names its clips there
    for item in plan.items:
        item.name = names.get(item.path, item.name)
    return plan


def _read_dir(
    data_dir: Path,
    root: Path,
    resolver: Resolver,
    mapping: Sequence[tuple[str, Path]],
    plan: ImportPlan,
    cutter: _Cutter,
    limits: ReadLimits,
) -> None:
    where = data_dir.relative_to(root).as_posix()
    prefix = "" if where == "." else f"{where}/"
    problems: list[Problem] = []
    recordings = _table(data_dir / "wav.scp", limits, problems)
    texts = _table(data_dir / "text", limits, problems)
    utt2spk = _table(data_dir / "utt2spk", limits, problems)
    genders = _table(data_dir / "spk2gender", limits, problems)
    segments = _segments(data_dir / "segments", limits, problems)
    plan.problems += [Problem(prefix + p.ref, p.reason) for p in problems]
    split = split_from_words(data_dir.name) if where != "." else split_from_words(root.name)
    files: dict[str, tuple[Path, str] | Problem] = {}
    for rec, (line, ref) in recordings.items():
        files[rec] = _recording(ref, f"{prefix}wav.scp line {line}", data_dir, root, resolver, mapping)
    utterances: list[str] = list(segments) if segments else list(recordings)
    listed = set(utterances)
    for utt, (line, _) in texts.items():
        if utt not in listed:
            source = "segments" if segments else "wav.scp"
            plan.problems.append(
                Problem(
                    f"{prefix}text line {line}",
                    f"{utt} has a transcript but {source} does not list it; skipped",
                )
            )
    for utt in utterances:
        metadata: dict[str, str] = {}
        speaker = utt2spk.get(utt, (0, ""))[1].strip()
        if speaker and speaker != utt:  # a speaker that is the utterance itself means "not known"
            metadata["speaker"] = speaker
            gender = _GENDERS.get(genders.get(speaker, (0, ""))[1].strip().lower())
            if gender:
                metadata["gender"] = gender
        # after the id's separating whitespace, the transcript as written (line ending aside)
        transcript = keep_text(texts[utt][1]) if utt in texts else None
        if segments:
            segment = segments[utt]
            found = files.get(segment.recording)
            ref = f"{prefix}segments line {segment.line}"
            if found is None:
                plan.problems.append(
                    Problem(ref, f"{utt}: recording {segment.recording} is not in wav.scp; skipped")
                )
                continue
            if isinstance(found, Problem):
                plan.problems.append(Problem(ref, f"{utt}: {found.reason}"))
                continue
            metadata |= {"recording": segment.recording, "start": segment.start_text, "end": segment.end_text}
            cutter.add(
                segment,
                found[0],
                SourceItem(
                    path=found[0], name=f"{utt}.wav", metadata=metadata, transcript=transcript, split=split
                ),
                ref,
            )
            continue
        found = files[utt]
        if isinstance(found, Problem):
            plan.problems.append(found)
            continue
        plan.items.append(
            SourceItem(path=found[0], name=found[1], metadata=metadata, transcript=transcript, split=split)
        )
    cutter.cut(limits)


def _segments(path: Path, limits: ReadLimits, problems: list[Problem]) -> dict[str, _Segment]:
    out: dict[str, _Segment] = {}
    for utt, (line, rest) in _table(path, limits, problems).items():
        fields = rest.split()
        where = f"{path.name} line {line}"
        if len(fields) != 3:
            problems.append(Problem(where, "a segment is '<utterance> <recording> <start> <end>'; skipped"))
            continue
        try:
            start, end = float(fields[1]), float(fields[2])
        except ValueError:
            problems.append(
                Problem(where, f"start and end are seconds, not {fields[1]!r} and {fields[2]!r}; skipped")
            )
            continue
        if not (start >= 0 and (end == -1 or end > start)) or not all(map(_finite, (start, end))):
            problems.append(
                Problem(where, f"{utt}: the segment {fields[1]}–{fields[2]} s is empty or backwards; skipped")
            )
            continue
        out[utt] = _Segment(utt, fields[0], start, end, fields[1], fields[2], line)
    return out


def _finite(x: float) -> bool:
    return x == x and abs(x) != float("inf")


def _recording(
    ref: str,
    where: str,
    data_dir: Path,
    root: Path,
    resolver: Resolver,
    mapping: Sequence[tuple[str, Path]],
) -> tuple[Path, str] | Problem:
    text = ref.strip()
    if not text:
        return Problem(where, "no file named; skipped")
    if text.endswith("|") or text.startswith("|"):
        return Problem(
            where,
            f"{text!r} is a shell command, which Earmark never runs: run it yourself to write the audio "
            "to files, and list those files in wav.scp",
        )
    if _ARCHIVE_OFFSET.search(text):
        return Problem(
            where, f"{text!r} points into a Kaldi archive; Earmark reads audio files, not archives"
        )
    text = map_path(text, mapping)
    if Path(text).is_absolute():
        try:
            return resolver.resolve(text, data_dir)
        except Refused as exc:
            hint = " (--path-map OLD=NEW reads it from a local copy)" if "outside" in str(exc) else ""
            return Problem(where, f"{text}: {exc}{hint}")
    last: Refused | None = None
    for base in [data_dir, *data_dir.parents]:
        if not base.is_relative_to(root):
            break
        try:
            return resolver.resolve(text, base)
        except Refused as exc:
            if "outside" in str(exc):
                return Problem(where, f"{text}: {exc}")
            last = exc
    return Problem(where, f"{text}: {last or 'file not found'}")


class _Cutter:
    """Cuts segments out of their recordings into WAV files that live as long as the plan."""

    def __init__(self, plan: ImportPlan) -> None:
        self.plan = plan
        self.pending: dict[Path, list[tuple[_Segment, SourceItem, str]]] = {}
        self.tmp: Path | None = None
        self.count = 0

    def add(self, segment: _Segment, recording: Path, item: SourceItem, ref: str) -> None:
        self.pending.setdefault(recording, []).append((segment, item, ref))

    def _folder(self) -> Path:
        if self.tmp is None:
            self.tmp = Path(tempfile.mkdtemp(prefix="earmark-segments-"))
            # Removed with the plan (or at exit at the latest), whichever import used it.
            self.plan.resources.append(weakref.finalize(self.plan, shutil.rmtree, self.tmp, True))
        return self.tmp

    def cut(self, limits: ReadLimits) -> None:
        for recording, wanted in self.pending.items():
            try:
                with sf.SoundFile(str(recording)) as f:
                    self._cut_all(f, wanted)
            except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError) as exc:
                why = str(exc).strip() or type(exc).__name__
                for segment, _, ref in wanted:
                    self.plan.problems.append(
                        Problem(ref, f"{segment.utt}: the recording is not readable audio ({why})")
                    )
        self.pending.clear()

    def _cut_all(self, f: sf.SoundFile, wanted: list[tuple[_Segment, SourceItem, str]]) -> None:
        rate, frames = f.samplerate, f.frames
        subtype = f.subtype if sf.check_format("WAV", f.subtype) else "FLOAT"
        for segment, item, ref in wanted:
            start = round(segment.start * rate)
            end = frames if segment.end == -1 else round(segment.end * rate)
            if end > frames and end - frames <= MAX_OVERSHOOT_S * rate:
                end = frames
            if start >= frames or end > frames:
                length = frames / rate
                self.plan.problems.append(
                    Problem(
                        ref,
                        f"{segment.utt}: {segment.start_text}–{segment.end_text} s is past the end of "
                        f"the recording ({length:.2f} s); skipped",
                    )
                )
                continue
            f.seek(start)
            samples = f.read(end - start, dtype="float64", always_2d=True)
            self.count += 1
            target = self._folder() / f"segment-{self.count:07d}.wav"
            sf.write(str(target), samples, rate, subtype=subtype, format="WAV")
            item.path = target
            self.plan.items.append(item)


# ---------------------------------------------------------------- writing


def kaldi_id(text: str) -> str:
    """A Kaldi id: no whitespace (each run becomes ``_``), never empty."""
    return re.sub(r"\s+", "_", str(text).strip()) or "_"


def kaldi_tables(rows: Iterable[Mapping[str, object]]) -> dict[str, list[str]]:
    """The lines of each file of one data directory, sorted as ``LC_ALL=C sort`` sorts them.

    ``rows`` have ``clip_id``, ``audio`` (the wav.scp file name), ``transcript``, ``duration``,
    ``speaker`` and ``gender`` (None when unknown).
    """
    utts = []
    spk2gender: dict[str, str] = {}
    for row in rows:
        clip = str(row["clip_id"])
        speaker = row.get("speaker")
        if speaker:
            spk = kaldi_id(str(speaker))
            utt = f"{spk}-{clip.zfill(8)}"
            gender = _GENDERS.get(str(row.get("gender") or "").strip().lower())
            if gender:
                spk2gender[spk] = gender
        else:
            utt = f"utt-{clip.zfill(8)}"
            spk = utt  # Kaldi's convention for "speaker not known"
        utts.append((utt, spk, row))
    utts.sort(key=lambda u: u[0].encode("utf-8"))
    has_text = any(r.get("transcript") for _, _, r in utts)
    if has_text and not all(r.get("transcript") for _, _, r in utts):
        # Kaldi's validator wants every utterance in ``text`` once it exists, and lhotse's reader a
        # transcript on every line: a directory is transcribed whole or not at all.
        raise FormatError("a Kaldi data directory's clips are all transcribed or none is")
    if {spk for _, spk, _ in utts} - set(spk2gender):
        spk2gender = {}  # a speaker without a line would fail Kaldi's validator and lhotse's reader
    tables: dict[str, list[str]] = {"wav.scp": [], "utt2spk": [], "utt2dur": []}
    if has_text:
        tables["text"] = []
    for utt, spk, row in utts:
        tables["wav.scp"].append(f"{utt} {row['audio']}")
        tables["utt2spk"].append(f"{utt} {spk}")
        if row.get("duration") is not None:
            tables["utt2dur"].append(f"{utt} {float(row['duration']):.3f}")  # type: ignore[arg-type]
        if has_text:  # one line per utterance: a line break in a transcript becomes a space
            text = re.sub(r"[\r\n]+", " ", str(row.get("transcript") or ""))
            tables["text"].append(f"{utt} {text}")
    spk2utt: dict[str, list[str]] = {}
    for utt, spk, _ in utts:
        spk2utt.setdefault(spk, []).append(utt)
    tables["spk2utt"] = [
        f"{spk} {' '.join(u)}" for spk, u in sorted(spk2utt.items(), key=lambda x: x[0].encode())
    ]
    if spk2gender:
        tables["spk2gender"] = [
            f"{spk} {g}" for spk, g in sorted(spk2gender.items(), key=lambda x: x[0].encode())
        ]
    if not tables["utt2dur"]:
        del tables["utt2dur"]
    return tables
