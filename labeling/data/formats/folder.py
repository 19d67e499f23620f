"""A folder (searched recursively) or a zip of audio files: :func:`read_folder` inside :func:`opened`.

Names can carry metadata through a regular expression with named groups (the file-name pattern,
``--pattern`` on the command line); a group
named ``label`` or ``transcript`` is the clip's existing label. A metadata CSV joins on a pattern group
or on ``file_name`` (as Hugging Face's audiofolder names it); its ``split``, ``label`` and
``transcript`` columns are honoured, the others become metadata.
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import soundfile as sf

from labeling.data.formats.base import SPLITS, FormatError, ImportPlan, Problem, SourceItem

LABEL_FIELDS = ("label", "transcript")
MAX_ZIP_BYTES = 20 * 2**30  # uncompressed; a zip bomb stops here
# Audio barely compresses; a member that claims to unpack to more than this many times its compressed
# size (once past a mebibyte) is a zip bomb, refused before it is unpacked.
MAX_ZIP_RATIO = 100
RATIO_FREE_BYTES = 2**20
MAX_NAME_PART_BYTES = 255  # the longest file name most file systems accept
ZIP_CHUNK = 2**20
MAX_ZIP_MEMBERS = 2_000_000
MAX_CSV_BYTES = 512 * 2**20


class SourceError(FormatError):
    """The source as a whole cannot be read; nothing is imported.

    A :class:`~labeling.data.formats.base.FormatError`, so callers catch every reader's refusal as one.
    """


def audio_extensions() -> frozenset[str]:
    """File extensions libsndfile on this machine can decode (wav, flac, ogg, mp3, aiff, …)."""
    exts = {fmt.lower() for fmt in sf.available_formats()}
    exts |= {"wav", "flac", "ogg", "oga", "opus", "aif", "aiff", "mp3"}
    return frozenset(exts)


@contextmanager
def opened(path: Path) -> Iterator[Path]:
    """Yield a folder to read: ``path`` itself, or a safe extraction of a zip.

    Zip members that are absolute, climb out with ``..``, are links, have a name no file system takes,
    or would make the extraction larger than :data:`MAX_ZIP_BYTES` are refused before anything is
    written; members are streamed in chunks and one compressed more than :data:`MAX_ZIP_RATIO` times,
    or unpacking to more than it declares, is refused as a zip bomb.
    """
    path = Path(path)
    if path.is_dir():
        yield path
        return
    if not path.is_file():
        raise SourceError(f"{path} does not exist")
    if not zipfile.is_zipfile(path):
        raise SourceError(f"{path} is neither a folder nor a zip file")
    with zipfile.ZipFile(path) as zf, tempfile.TemporaryDirectory(prefix="earmark-zip-") as tmp:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > MAX_ZIP_MEMBERS:
            raise SourceError(f"the zip holds {len(members):,} files; the limit is {MAX_ZIP_MEMBERS:,}")
        declared = sum(m.file_size for m in members)
        if declared > MAX_ZIP_BYTES:
            raise SourceError("the zip would unpack to more than 20 GiB; import it in parts")
        root = Path(tmp)
        targets = [_member_target(root, member) for member in members]
        written = 0
        for member, target in zip(members, targets, strict=True):
            written += _unpack_member(zf, member, target, budget=MAX_ZIP_BYTES - written)
        yield root


def _member_target(root: Path, member: zipfile.ZipInfo) -> Path:
    """Where a member is unpacked, or a refusal naming it (escapes, links, names too long, bombs)."""
    name = PurePosixPath(member.filename.replace("\\", "/"))
    is_link = (member.external_attr >> 16) & 0o170000 == 0o120000
    if name.is_absolute() or ".." in name.parts or is_link or not name.parts or "\0" in member.filename:
        raise SourceError(f"zip entry {member.filename!r} escapes its folder; nothing was imported")
    for part in name.parts:
        if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_PART_BYTES:
            raise SourceError(
                f"zip entry {_short(member.filename)!r} has a name longer than {MAX_NAME_PART_BYTES} "
                "bytes, which no file system here accepts; rename it and zip again. Nothing was imported"
            )
    if member.file_size > RATIO_FREE_BYTES and member.file_size > MAX_ZIP_RATIO * max(
        1, member.compress_size
    ):
        raise SourceError(
            f"zip entry {_short(member.filename)!r} would unpack to {member.file_size:,} bytes from "
            f"{member.compress_size:,} (more than {MAX_ZIP_RATIO}× compression): refused as a zip bomb. "
            "Nothing was imported"
        )
    target = (root / Path(*name.parts)).resolve()
    if not target.is_relative_to(root.resolve()):
        raise SourceError(f"zip entry {member.filename!r} escapes its folder; nothing was imported")
    return target


def _short(name: str, limit: int = 80) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _unpack_member(zf: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, *, budget: int) -> int:
    """Stream one member to ``target`` in chunks, never past its declared size or the zip's budget."""
    limit = min(member.file_size, budget)
    done = 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(member) as src, target.open("wb") as dst:
            while chunk := src.read(ZIP_CHUNK):
                done += len(chunk)
                if done > limit:
                    raise SourceError(
                        f"zip entry {_short(member.filename)!r} unpacks to more than it declares "
                        "or than the zip's 20 GiB limit: refused as a zip bomb. Nothing was imported"
                    )
                dst.write(chunk)
    except (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError) as exc:
        raise SourceError(f"zip entry {_short(member.filename)!r} cannot be unpacked ({exc})") from exc
    except OSError as exc:
        raise SourceError(
            f"zip entry {_short(member.filename)!r} cannot be unpacked: {exc.strerror or exc}"
        ) from exc
    return done


@dataclass(frozen=True)
class MetadataTable:
    """A metadata CSV keyed by the join field."""

    join: str
    rows: dict[str, dict[str, str]]

    @classmethod
    def read(cls, path: Path, *, join: str | None) -> MetadataTable:
        path = Path(path)
        if not path.is_file():
            raise SourceError(f"metadata file {path} does not exist")
        if path.stat().st_size > MAX_CSV_BYTES:
            raise SourceError(f"metadata file {path.name} is larger than 512 MiB")
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SourceError(
                f"metadata file {path.name} is not UTF-8 (invalid byte at offset {exc.start})"
            ) from exc
        reader = csv.DictReader(io.StringIO(text, newline=""))
        columns = [c.strip() for c in (reader.fieldnames or [])]
        if not columns:
            raise SourceError(f"metadata file {path.name} has no header row")
        if len(set(columns)) != len(columns):
            dupes = sorted({c for c in columns if columns.count(c) > 1})
            raise SourceError(f"metadata file {path.name} repeats the column(s) {', '.join(dupes)}")
        key = join or ("file_name" if "file_name" in columns else None)
        if key is None:
            raise SourceError(
                f"metadata file {path.name} has no file_name column; name the column to join on "
                f"(its columns: {', '.join(columns)})"
            )
        if key not in columns:
            raise SourceError(
                f"metadata file {path.name} has no column {key!r} to join on "
                f"(its columns: {', '.join(columns)})"
            )
        rows: dict[str, dict[str, str]] = {}
        for lineno, raw in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
            value = row.get(key, "")
            if value in rows:
                raise SourceError(f"metadata file {path.name}: {key}={value!r} appears twice (line {lineno})")
            rows[value] = row
        return cls(join=key, rows=rows)


def compile_pattern(pattern: str | None) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise SourceError(f"the file-name pattern is not a valid regular expression: {exc}") from exc
    if not compiled.groupindex:
        raise SourceError(
            "the file-name pattern needs named groups, e.g. (?P<label>\\d)_(?P<speaker>[a-z]+)_\\d+"
        )
    return compiled


def read_folder(
    root: Path,
    *,
    pattern: str | None = None,
    metadata: Path | None = None,
    join: str | None = None,
) -> ImportPlan:
    """Plan the import of every audio file under ``root``.

    Audio files whose names do not match ``pattern`` go to ``plan.unmatched`` (the importer checks
    them, then lists them as not imported); other files (text, images…) are listed as ignored.
    Metadata rows that match no file are fine; files without a row are noted.
    """
    regex = compile_pattern(pattern)
    table = MetadataTable.read(metadata, join=join) if metadata else None
    if table and regex and table.join != "file_name" and table.join not in regex.groupindex:
        raise SourceError(
            f"the metadata join column {table.join!r} is neither file_name nor a group of the "
            "file-name pattern"
        )
    exts = audio_extensions()
    plan = ImportPlan(source_format="folder")
    root = Path(root)
    resolved_root = root.resolve()
    for path in sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink()):
        rel = path.relative_to(root).as_posix()
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue  # hidden files and folders (.DS_Store, .git) are never audio to import
        if path.suffix.lower().lstrip(".") not in exts:
            plan.ignored.append(rel)
            continue
        real = path.resolve()
        if not real.is_relative_to(resolved_root):
            plan.problems.append(Problem(rel, "a link pointing outside the import folder"))
            continue
        fields: dict[str, str] = {}
        if regex:
            match = regex.search(path.name)
            if not match:
                plan.unmatched.append(SourceItem(path=real, name=rel))
                continue
            fields = {k: v for k, v in match.groupdict().items() if v is not None}
        if table:
            key = (
                fields.get(table.join)
                if table.join != "file_name"
                else (rel if rel in table.rows else path.name)
            )
            row = table.rows.get(key or "")
            if row is None:
                plan.warnings.append(Problem(rel, f"no row in the metadata file for {table.join}={key!r}"))
            else:
                fields = {**{k: v for k, v in row.items() if k != "file_name" and v != ""}, **fields}
        split = fields.pop("split", None)
        if split is not None and split not in SPLITS:
            plan.problems.append(Problem(rel, f"split {split!r} is not one of {', '.join(SPLITS)}"))
            continue
        label = fields.pop("label", None)
        transcript = fields.pop("transcript", None)
        plan.items.append(
            SourceItem(
                path=real,
                name=rel,
                metadata=fields,
                label=label or None,
                transcript=transcript or None,
                split=split,
            )
        )
    return plan
