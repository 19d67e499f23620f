"""Hugging Face ``audiofolder`` datasets: call :func:`read_audiofolder` on the dataset's folder.

As Hugging Face's "Create an audio dataset" guide lays it out: audio files with a ``metadata.csv`` or
``metadata.jsonl`` beside them, possibly one per split folder (``train/``, ``validation/`` or
``dev/``, ``test/``, and the other split keywords Hugging Face accepts). ``file_name`` (or a column
ending in ``_file_name``) is relative to the metadata file. A ``label`` column is the label;
``transcription``, ``text``, ``sentence`` or ``transcript`` the transcript, ``tags`` the tags
(``;``-separated, or a JSON list), ``split`` the split when no split folder says it; other columns
are metadata. A folder without any metadata file is read by its class folders: a file's parent
folder names its label (``train/dog/1.wav`` → dog) when every file sits in one. Like audiofolder,
labels are not taken from folder names once metadata files exist (``data/`` or ``audio/`` folders
beside the metadata are not classes).

The same function reads Earmark's own CSV and JSON Lines exports (``metadata.csv`` and
``metadata.jsonl`` in one folder, splits in a column), given the file or its folder. Cells are read
as written; only in a table whose ``MANIFEST.json`` says Earmark escaped it for spreadsheets is the
leading apostrophe of a neutralised cell removed. Earmark's ``original_name`` column names the clip
(the audio file may be named otherwise), and the stored files a ``--no-copy-audio`` export refers
to are read where its manifest lists them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from labeling.data.formats._common import (
    DEFAULT_LIMITS,
    Refused,
    Resolver,
    Table,
    clean_text,
    escaped_for_spreadsheets,
    json_lines,
    keep_text,
    metadata_from,
    parse_tags,
    referenced_audio,
    sniff_delimiter,
    split_from_words,
)
from labeling.data.formats.base import SPLITS, FormatError, ImportPlan, Problem, ReadLimits, SourceItem

METADATA_NAMES = ("metadata.csv", "metadata.jsonl")
TRANSCRIPT_COLUMNS = ("transcription", "text", "sentence", "transcript")
#: Columns Earmark writes that the importer measures again, so they are not metadata.
MEASURED_COLUMNS = ("sha256", "clip_id", "original_name", "duration_s", "sample_rate", "channels")
AUDIO_SUFFIXES = frozenset(
    {".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aif", ".aiff", ".webm", ".wma"}
)


def read_audiofolder(
    path: Path,
    *,
    audio_root: Path | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> ImportPlan:
    """Read an audiofolder dataset (a folder) or one of its metadata files.

    Parameters
    ----------
    path
        The dataset folder, or a ``.csv``/``.jsonl`` metadata file with a ``file_name`` column.
    audio_root
        A second folder audio may be in (for tables naming absolute paths). Files outside the
        dataset folder and ``audio_root`` are refused.
    """
    path = Path(path)
    if path.is_file():
        root, metadata_files = path.parent, [path]
    elif path.is_dir():
        root, metadata_files = path, _metadata_files(path, limits)
    else:
        raise FormatError(f"{path} does not exist")
    resolver = Resolver(
        [root] + ([Path(audio_root)] if audio_root is not None else []), allow=referenced_audio(root)
    )
    plan = ImportPlan(source_format="audiofolder")
    if not metadata_files:
        _read_class_folders(root, resolver, plan, limits)
        return plan
    seen: dict[Path, str] = {}
    for metadata in metadata_files:
        _read_metadata(metadata, root, resolver, plan, seen, limits)
    if path.is_dir():
        for audio in _audio_files(root, limits):
            try:
                listed = audio.resolve() in seen
            except (OSError, RuntimeError):  # a symlink loop is not an audio file anyone listed
                continue
            if not listed:
                name = audio.relative_to(root).as_posix()
                plan.problems.append(Problem(name, "not listed in any metadata file; not imported"))
    return plan


def _walk(root: Path, limits: ReadLimits):
    count = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            count += 1
            if count > limits.max_rows:
                raise FormatError(f"{root} holds more than {limits.max_rows:,} files; import it in parts")
            yield Path(folder) / name


def _metadata_files(root: Path, limits: ReadLimits) -> list[Path]:
    found = [p for p in _walk(root, limits) if p.name in METADATA_NAMES]
    folders = [p.parent for p in found]
    both = sorted({f for f in folders if folders.count(f) > 1})
    if both:
        where = both[0].relative_to(root).as_posix()
        raise FormatError(
            f"{where if where != '.' else root.name} holds both metadata.csv and metadata.jsonl; keep one"
        )
    return found


def _audio_files(root: Path, limits: ReadLimits) -> list[Path]:
    return [p for p in _walk(root, limits) if p.suffix.lower() in AUDIO_SUFFIXES]


def _folder_split(folder: Path, root: Path) -> str | None:
    for part in reversed(folder.relative_to(root).parts):
        split = split_from_words(part) if part.lower() in _SPLIT_FOLDERS else None
        if split:
            return split
    return None


_SPLIT_FOLDERS = frozenset(
    {"train", "training", "validation", "valid", "val", "dev", "test", "testing", "eval", "evaluation"}
)


def _rows(metadata: Path, root: Path, limits: ReadLimits, problems: list[Problem]):
    """``(ref, columns, row)`` of a metadata file; ``columns`` is the header (JSONL: the row's keys)."""
    if metadata.suffix.lower() == ".jsonl":
        for line, value in json_lines(metadata, limits):
            ref = f"{metadata.name} line {line}"
            if isinstance(value, FormatError):
                problems.append(Problem(ref, str(value)))
            elif not isinstance(value, dict):
                problems.append(Problem(ref, "not a JSON object; skipped"))
            else:
                yield ref, list(value), value
        return
    escaped = escaped_for_spreadsheets(metadata, up_to=root)
    # cells as written: spaces at either end of a transcript or metadata value are data
    table = Table(metadata, limits, delimiter=sniff_delimiter(metadata), unescape=escaped, strip=False)
    _file_column(table.header, metadata)
    for line, row in table:
        ref = f"{metadata.name} line {line}"
        if row is None:
            problems.append(Problem(ref, "more cells than the header has columns; row skipped"))
            continue
        yield ref, table.header, row


def _file_column(columns: list[str], metadata: Path) -> str:
    if "file_name" in columns:
        return "file_name"
    other = next((c for c in columns if c.endswith("_file_name")), None)
    if other is None:
        raise FormatError(
            f"{metadata.name} has no file_name column linking rows to audio files; its columns are "
            f"{', '.join(repr(c) for c in columns)}"
        )
    return other


def _read_metadata(
    metadata: Path,
    root: Path,
    resolver: Resolver,
    plan: ImportPlan,
    seen: dict[Path, str],
    limits: ReadLimits,
) -> None:
    base = metadata.parent
    folder_split = _folder_split(base, root)
    for ref, columns, row in _rows(metadata, root, limits, plan.problems):
        try:
            file_column = _file_column(columns, metadata)
        except FormatError as exc:
            plan.problems.append(Problem(ref, f"{exc}; skipped"))
            continue
        file_ref = row.get(file_column)
        if not isinstance(file_ref, str) or not file_ref.strip():
            plan.problems.append(Problem(ref, f"no {file_column}; skipped"))
            continue
        try:
            audio, name = resolver.resolve(file_ref, base)
        except Refused as exc:
            plan.problems.append(Problem(ref, f"{file_ref}: {exc}"))
            continue
        if audio in seen:
            plan.problems.append(Problem(ref, f"{name} is listed again (first at {seen[audio]}); skipped"))
            continue
        seen[audio] = ref
        plan.items.append(_item(audio, name, row, columns, file_column, folder_split))


def _item(
    audio: Path,
    name: str,
    row: dict[str, Any],
    columns: list[str],
    file_column: str,
    folder_split: str | None,
) -> SourceItem:
    transcript_column = next((c for c in TRANSCRIPT_COLUMNS if c in columns), None)
    label = clean_text(row.get("label"))
    split = clean_text(row.get("split"))
    split = split if split in SPLITS else (split_from_words(split) if split else None)
    skip = (file_column, "label", "tags", "split", transcript_column, *MEASURED_COLUMNS)
    original = row.get("original_name")
    return SourceItem(
        path=audio,
        name=original if isinstance(original, str) and original.strip() else name,
        metadata=metadata_from(row, skip=[s for s in skip if s]),
        label=label,
        transcript=keep_text(row.get(transcript_column)) if transcript_column else None,
        split=split or folder_split,
        tags=parse_tags(row.get("tags")),
    )


def _read_class_folders(root: Path, resolver: Resolver, plan: ImportPlan, limits: ReadLimits) -> None:
    files = _audio_files(root, limits)
    classes = []
    for audio in files:
        parent = audio.parent
        is_class = parent != root and parent.name.lower() not in _SPLIT_FOLDERS
        classes.append(parent.name if is_class else None)
    # As audiofolder does: class labels only when every file sits in a class folder.
    if any(c is None for c in classes):
        classes = [None] * len(files)
    for audio, label in zip(files, classes, strict=True):
        try:
            resolved, name = resolver.resolve(audio.relative_to(root).as_posix(), root)
        except Refused as exc:
            plan.problems.append(Problem(audio.relative_to(root).as_posix(), str(exc)))
            continue
        plan.items.append(
            SourceItem(path=resolved, name=name, label=label, split=_folder_split(audio.parent, root))
        )
