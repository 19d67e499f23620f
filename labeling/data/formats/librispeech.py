"""LibriSpeech-style corpora: call :func:`read_librispeech` on the corpus folder (or one subset).

As OpenSLR's LibriSpeech lays it out: ``<subset>/<speaker>/<chapter>/`` holds the chapter's audio
``<speaker>-<chapter>-<utterance>.flac`` and one transcript file ``<speaker>-<chapter>.trans.txt``,
a line ``<speaker>-<chapter>-<utterance> TRANSCRIPT`` per file. ``SPEAKERS.TXT`` beside the subsets
(``ID | SEX | SUBSET | MINUTES | NAME``, comments after ``;``) gives each speaker's sex.

Each audio file is a clip; its line is its transcript; the speaker, chapter, subset and (from
``SPEAKERS.TXT``) gender are metadata; the subset's name gives the split (``train-clean-100`` →
train, ``dev-other`` → dev, ``test-clean`` → test). A transcript line naming a file that is not
there is reported and skipped; an audio file without a line is imported without a transcript and
reported too.
"""

from __future__ import annotations

import os
from pathlib import Path

from labeling.data.formats._common import (
    DEFAULT_LIMITS,
    Refused,
    Resolver,
    clean_text,
    split_from_words,
    text_lines,
)
from labeling.data.formats.base import FormatError, ImportPlan, Problem, ReadLimits, SourceItem

TRANSCRIPT_SUFFIX = ".trans.txt"
AUDIO_SUFFIXES = frozenset({".flac", ".wav", ".ogg", ".opus", ".mp3"})
_SEARCH_DEPTH = 4


def _walk(root: Path, limits: ReadLimits, depth: int | None = None):
    count = 0
    for folder, dirs, files in os.walk(root):
        level = len(Path(folder).relative_to(root).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if depth is None or level < depth else []
        for name in sorted(files):
            count += 1
            if count > limits.max_rows:
                raise FormatError(f"{root} holds more than {limits.max_rows:,} files; import it in parts")
            yield Path(folder), name


def is_librispeech_tree(path: Path, *, limits: ReadLimits = DEFAULT_LIMITS) -> bool:
    """A folder with a ``*.trans.txt`` transcript file within four levels."""
    return any(name.endswith(TRANSCRIPT_SUFFIX) for _, name in _walk(Path(path), limits, _SEARCH_DEPTH))


def _speakers(root: Path, limits: ReadLimits) -> dict[str, str]:
    """Speaker id → sex from ``SPEAKERS.TXT`` (in the folder named, or the one above a subset)."""
    for folder in (root, root.parent):
        table = folder / "SPEAKERS.TXT"
        if table.is_file():
            out = {}
            for line in text_lines(table, limits):
                if line.lstrip().startswith(";") or "|" not in line:
                    continue
                fields = [f.strip() for f in line.split("|")]
                if len(fields) >= 2 and fields[0] and fields[1]:
                    out[fields[0]] = fields[1].lower()
            return out
    return {}


def read_librispeech(
    path: Path,
    *,
    audio_root: Path | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> ImportPlan:
    """Read a LibriSpeech-style tree: every audio file, with its transcript line and ids as metadata."""
    root = Path(path)
    if not root.is_dir():
        raise FormatError(f"{root} is not a folder; name the LibriSpeech folder (or one of its subsets)")
    resolver = Resolver([root] + ([Path(audio_root)] if audio_root is not None else []))
    sexes = _speakers(root, limits)
    plan = ImportPlan(source_format="librispeech")
    transcripts: dict[Path, dict[str, tuple[str, int]]] = {}
    audio: list[tuple[Path, str]] = []
    for folder, name in _walk(root, limits):
        if name.endswith(TRANSCRIPT_SUFFIX):
            transcripts[folder / name] = _lines(folder / name, limits, plan)
        elif Path(name).suffix.lower() in AUDIO_SUFFIXES:
            audio.append((folder, name))
    if not transcripts:
        raise FormatError(f"{root} holds no *{TRANSCRIPT_SUFFIX} transcript file; is it a LibriSpeech tree?")
    by_folder: dict[Path, dict[str, str]] = {}
    for folder, name in audio:
        by_folder.setdefault(folder, {})[Path(name).stem] = name
    lines_of: dict[Path, dict[str, tuple[str, int, Path]]] = {}
    for table, lines in transcripts.items():
        files = by_folder.get(table.parent, {})
        for utt, (text, number) in lines.items():
            if utt not in files:
                rel = table.relative_to(root).as_posix()
                plan.problems.append(
                    Problem(
                        f"{rel} line {number}", f"names {utt}, but no audio file {utt}.flac is there; skipped"
                    )
                )
                continue
            lines_of.setdefault(table.parent, {})[utt] = (text, number, table)
    for folder, name in audio:
        rel = (folder / name).relative_to(root).as_posix()
        try:
            resolved, shown = resolver.resolve(rel, root)
        except Refused as exc:
            plan.problems.append(Problem(rel, str(exc)))
            continue
        utt = Path(name).stem
        found = lines_of.get(folder, {}).get(utt)
        metadata = _ids(folder, root, utt)
        if metadata.get("speaker") in sexes:
            metadata["gender"] = sexes[metadata["speaker"]]
        if found is None:
            plan.warnings.append(
                Problem(
                    rel,
                    f"no line for {utt} in a {TRANSCRIPT_SUFFIX} file beside it; "
                    "imported without a transcript",
                )
            )
        plan.items.append(
            SourceItem(
                path=resolved,
                name=shown,
                metadata=metadata,
                transcript=clean_text(found[0]) if found else None,
                split=_split(folder, root),
            )
        )
    return plan


def _lines(table: Path, limits: ReadLimits, plan: ImportPlan) -> dict[str, tuple[str, int]]:
    out: dict[str, tuple[str, int]] = {}
    for number, raw in enumerate(text_lines(table, limits), start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        utt, _, text = line.partition(" ")
        if utt in out:
            plan.problems.append(
                Problem(
                    f"{table.name} line {number}",
                    f"{utt} is listed again (first on line {out[utt][1]}); skipped",
                )
            )
            continue
        out[utt] = (text, number)
    return out


def _ids(folder: Path, root: Path, utt: str) -> dict[str, str]:
    """Speaker, chapter and subset: from the file name (``19-198-0001``), else the folders."""
    parts = utt.split("-")
    meta: dict[str, str] = {}
    if len(parts) == 3 and all(parts):
        meta["speaker"], meta["chapter"] = parts[0], parts[1]
    else:
        rel = folder.relative_to(root).parts
        if len(rel) >= 2:
            meta["speaker"], meta["chapter"] = rel[-2], rel[-1]
    subset = _subset(folder, root)
    if subset:
        meta["subset"] = subset
    return meta


def _subset(folder: Path, root: Path) -> str | None:
    rel = folder.relative_to(root).parts
    if len(rel) >= 3:
        return rel[-3]
    return root.name if len(rel) == 2 else None


def _split(folder: Path, root: Path) -> str | None:
    subset = _subset(folder, root)
    return split_from_words(subset) if subset else None
