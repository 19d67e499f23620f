"""The folder an export writes: :func:`check_target` before any work, :func:`publish` at the end.

An export is built in a hidden folder beside its target and moved into place in one rename, so a
reader never sees half of it. A target that already holds files is refused, naming them, unless the
caller asks to overwrite. Overwriting replaces only what an earlier export wrote there — the files
its record lists (a clip export's ``MANIFEST.json``, a region export's :data:`RECORD_NAME`), at the
size it wrote them — and removes those of them the new export does not write again; every other file
stays where it is, and a new file that would land on one of them refuses the export instead.

The swap is two renames: the old folder aside (``.<name>.replaced-<token>``), the new one in its
place; the files the export did not write then move into the new folder, and what is left aside
(the earlier export's own files) is removed. Should the process die between the two steps, those
files are still in the folder set aside, never deleted.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from labeling.data.formats.base import FormatError

#: The record a region export leaves in its folder: the files it wrote (a clip export's is its
#: ``MANIFEST.json``).
RECORD_NAME = ".earmark-export.json"
MANIFEST_NAME = "MANIFEST.json"
_SHOWN = 8
#: How a user asks for an overwrite, as a refusal says it.
HOW = "overwrite it (--overwrite on the command line)"


class TargetNotEmpty(FormatError):
    """The target folder already holds files and the export was not asked to overwrite them."""

    def __init__(self, message: str, contents: FolderContents) -> None:
        super().__init__(message)
        self.contents = contents


@dataclass(frozen=True)
class FolderContents:
    """What a target folder holds: ``written`` by an earlier export (replaced or removed by an
    overwrite), ``other`` files (never touched). Paths relative to the folder, ``/``-separated."""

    path: Path
    written: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.written or self.other)

    def describe(self) -> str:
        """The files, a few of each kind by name."""
        parts = []
        if self.written:
            parts.append(f"{len(self.written)} files written by an earlier export ({_few(self.written)})")
        if self.other:
            parts.append(f"{len(self.other)} files no export wrote ({_few(self.other)})")
        return "; ".join(parts)


@dataclass(frozen=True)
class Overwritten:
    """What an overwrite did: files replaced by the new export's, files of the earlier export it did
    not write again (removed), and files no export wrote (kept)."""

    replaced: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if not (self.replaced or self.removed or self.kept):
            return ""
        out = [f"replaced {len(self.replaced)} files of an earlier export"]
        if self.removed:
            out.append(
                f"removed {len(self.removed)} it had written that this one does not ({_few(self.removed)})"
            )
        if self.kept:
            out.append(f"kept {len(self.kept)} files no export wrote ({_few(self.kept)})")
        return "; ".join(out)


def _few(paths: list[str]) -> str:
    shown = ", ".join(paths[:_SHOWN])
    return shown + (f", … {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else "")


def _files(folder: Path) -> list[str]:
    """Every file under ``folder`` (links as files, never followed), relative and sorted."""
    found = []
    for root, dirs, names in os.walk(folder):
        base = Path(root)
        for d in list(dirs):
            if (base / d).is_symlink():
                names.append(d)
                dirs.remove(d)
        found += [(base / n).relative_to(folder).as_posix() for n in names]
    return sorted(found)


def _recorded(folder: Path) -> dict[str, int | None]:
    """The files an earlier export's record lists (path → size it wrote, None when not recorded)."""
    for name in (MANIFEST_NAME, RECORD_NAME):
        path = folder / name
        if not path.is_file():
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or "earmark_export" not in record:
            continue
        listed: dict[str, int | None] = {name: None}
        for entry in record.get("files") or []:
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                size = entry.get("bytes")
                listed[entry["path"]] = int(size) if isinstance(size, int) else None
            elif isinstance(entry, str):
                listed[entry] = None
        return listed
    return {}


def folder_contents(out: Path) -> FolderContents:
    """What ``out`` holds now (empty when it does not exist)."""
    out = Path(out)
    if not out.is_dir():
        return FolderContents(out)
    recorded = _recorded(out)
    written: list[str] = []
    other: list[str] = []
    for rel in _files(out):
        size = recorded.get(rel, -1)
        path = out / rel
        # A file changed since the export wrote it is someone's now: left alone like any other.
        ours = rel in recorded and (size is None or (not path.is_symlink() and path.stat().st_size == size))
        (written if ours else other).append(rel)
    return FolderContents(out, written, other)


def check_target(out: Path, *, overwrite: bool, how: str = HOW) -> FolderContents:
    """Refuse ``out`` when it is a file, or a folder holding files unless ``overwrite``; returns what
    it holds. ``how`` names the way to ask for an overwrite (a command-line flag, a checkbox)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FormatError(f"{out} is a file; an export writes a folder")
    contents = folder_contents(out)
    if not contents.empty and not overwrite:
        raise TargetNotEmpty(
            f"{out} is not empty: it holds {contents.describe()}. Choose a new folder, or {how} to replace "
            "the files an earlier export wrote there (files no export wrote are kept)",
            contents,
        )
    return contents


def scratch_beside(out: Path, tag: str = "partial") -> Path:
    """A new hidden folder beside ``out`` to build an export in."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = out.parent / f".{out.name}.{tag}-{secrets.token_hex(4)}"
    scratch.mkdir()
    return scratch


def write_record(folder: Path, fmt: str, files: Iterable[str]) -> None:
    """Leave the record of what a region export wrote in ``folder``: each file's path and size."""
    entries = [{"path": rel, "bytes": (folder / rel).stat().st_size} for rel in sorted(files)]
    record = {"earmark_export": 1, "format": fmt, "files": entries}
    (folder / RECORD_NAME).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def publish(built: Path, out: Path, *, overwrite: bool, how: str = HOW) -> Overwritten:
    """Move the finished export ``built`` (a folder beside ``out``) to ``out``.

    A missing or empty ``out`` is replaced in one rename. A non-empty one only when ``overwrite``:
    see the module docstring. Refused (``built`` left for the caller to remove, ``out`` untouched)
    when ``out`` holds files and ``overwrite`` is false, or a new file would replace one no export wrote.
    """
    built, out = Path(built), Path(out)
    contents = check_target(out, overwrite=overwrite, how=how)
    if contents.empty:
        if out.exists():
            out.rmdir()
        built.rename(out)
        return Overwritten()
    new = set(_files(built))
    new_dirs = {str(p) for rel in new for p in Path(rel).parents if str(p) != "."}
    clash = [rel for rel in contents.other if rel in new or rel in new_dirs]
    clash += [rel for rel in contents.other if any(str(p) in new for p in Path(rel).parents if str(p) != ".")]
    if clash:
        raise FormatError(
            f"{out} holds files no export wrote where this export writes its own: "
            f"{_few(sorted(set(clash)))}; move them away first (nothing was changed)"
        )
    aside = out.parent / f".{out.name}.replaced-{secrets.token_hex(4)}"
    out.rename(aside)
    built.rename(out)
    for rel in contents.other:
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        (aside / rel).rename(target)
    shutil.rmtree(aside)
    return Overwritten(
        replaced=sorted(set(contents.written) & new),
        removed=sorted(set(contents.written) - new),
        kept=list(contents.other),
    )
