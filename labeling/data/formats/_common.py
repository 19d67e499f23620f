"""Careful reading shared by the readers: bounded JSON and tables, UTF-8 with line numbers, and file
references that may not leave the folder the user named.

Nothing here is called by users directly; readers call :func:`load_json`, :func:`json_lines`,
:func:`table_rows` and :class:`Resolver`.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from labeling.data.formats.base import FormatError, ReadLimits

UTF8_BOM = b"\xef\xbb\xbf"
DEFAULT_LIMITS = ReadLimits()

#: Hugging Face's split keywords (train, training / validation, valid, val, dev / test, testing, eval,
#: evaluation), mapped onto Earmark's three splits.
SPLIT_WORDS = {
    "train": "train",
    "training": "train",
    "validation": "dev",
    "valid": "dev",
    "val": "dev",
    "dev": "dev",
    "test": "test",
    "testing": "test",
    "eval": "test",
    "evaluation": "test",
}

#: Leading characters a spreadsheet takes for the start of a formula (OWASP "CSV Injection"), with
#: their full-width forms, which some spreadsheets accept too.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\0", "＝", "＋", "－", "＠")


def human_bytes(size: int) -> str:
    n = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{size:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover - loop always returns


def split_from_words(text: str) -> str | None:
    """The split named by a file or folder name (``train_manifest`` → train, ``validation`` → dev)."""
    words = [w for w in re.split(r"[^a-z]+", text.lower()) if w]
    found = {SPLIT_WORDS[w] for w in words if w in SPLIT_WORDS}
    return found.pop() if len(found) == 1 else None


def check_size(path: Path, limit: int, kind: str) -> None:
    size = path.stat().st_size
    if size > limit:
        raise FormatError(
            f"{path.name} is {human_bytes(size)}; Earmark reads {kind} files of at most "
            f"{human_bytes(limit)} — split it into smaller files"
        )


def _utf8_error(name: str, data: bytes, exc: UnicodeDecodeError, offset: int = 0, line: int | None = None):
    start = offset + exc.start
    if line is None:
        line = data.count(b"\n", 0, exc.start) + 1
    return FormatError(
        f"{name} is not valid UTF-8: byte {start:,} (line {line}) is 0x{data[exc.start]:02x}; "
        "save the file as UTF-8 and try again"
    )


def decode_utf8(data: bytes, name: str) -> str:
    """Decode a whole document, naming the byte offset and line of the first invalid byte."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise FormatError(f"{name} is UTF-16; save it as UTF-8 and try again")
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _utf8_error(name, data, exc) from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise FormatError(
                    f'the key "{key}" appears twice in one JSON object; which value is meant is '
                    "ambiguous, so nothing was read"
                )
            seen.add(key)
    return obj


def check_depth(value: Any, limit: int, name: str, *, max_field: int | None = None) -> None:
    """Refuse JSON nested deeper than ``limit`` levels (a list or object is one level), and with
    ``max_field``, any text (value or key) longer than that many bytes of UTF-8."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise FormatError(f"{name} is nested deeper than {limit} levels; Earmark does not read it")
        if isinstance(node, dict):
            children: Iterable[Any] = node.values()
            if max_field is not None:
                for key in node:
                    _check_text(key, max_field, name)
        else:
            children = node
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
            elif max_field is not None and isinstance(child, str):
                _check_text(child, max_field, name)


def _check_text(text: str, limit: int, name: str) -> None:
    # A character is at most 4 bytes of UTF-8: only long strings need encoding to measure.
    if len(text) * 4 > limit and len(text.encode("utf-8", errors="replace")) > limit:
        raise FormatError(_too_long(name, limit))


def _too_long(name: str, limit: int, where: str = "") -> str:
    return (
        f"{name} holds a value longer than {human_bytes(limit)}{where}; labels, transcripts, metadata "
        "and file references are never that long, so nothing was read (is it the right file?)"
    )


def check_field_bytes(data: bytes | Iterable[bytes], name: str, limit: int) -> None:
    """Refuse a JSON document in which some string would be longer than ``limit`` bytes, before it
    is parsed: no run of bytes between two double quotes may be longer.

    ``data`` is the document, or its successive chunks (a file read piece by piece stops at the first
    run too long, never holding the rest). Escaped quotes inside a string shorten the runs, so this
    catches the plain cases cheaply; :func:`parse_json` measures every parsed string as well.
    """
    if isinstance(data, bytes):
        if len(data) <= limit:
            return
        data = (data[i : i + (1 << 20)] for i in range(0, len(data), 1 << 20))
    run = 0
    offset = 0
    for block in data:
        pieces = block.split(b'"')
        run += len(pieces[0])
        if len(pieces) > 1:
            inner = max(map(len, pieces[1:-1]), default=0)
            if run > limit or inner > limit:
                raise FormatError(_too_long(name, limit, f" (near byte {offset:,})"))
            run = len(pieces[-1])
        if run > limit:
            raise FormatError(_too_long(name, limit, f" (near byte {offset:,})"))
        offset += len(block)


def parse_json(text: str, name: str, limits: ReadLimits, *, where: str = "") -> Any:
    """Parse JSON text refusing duplicate keys and deep nesting."""
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise FormatError(
            f"{name}{where} is nested deeper than {limits.max_depth} levels; Earmark does not read it"
        ) from None
    except json.JSONDecodeError as exc:
        line = exc.lineno if not where else None
        at = f" at line {line}, column {exc.colno}" if line else f" at column {exc.colno}"
        raise FormatError(f"{name}{where} is not valid JSON: {exc.msg}{at}") from None
    except FormatError as exc:
        raise FormatError(f"{name}{where}: {exc}") from None
    except ValueError as exc:  # an integer of thousands of digits, refused by int()
        raise FormatError(f"{name}{where} is not JSON Earmark reads: {exc}") from None
    if isinstance(value, (dict, list)):
        check_depth(value, limits.max_depth, f"{name}{where}", max_field=limits.max_field_bytes)
    elif isinstance(value, str):
        _check_text(value, limits.max_field_bytes, f"{name}{where}")
    return value


def load_json(path: Path, limits: ReadLimits) -> Any:
    """Read a whole JSON document within ``limits.max_json_bytes``."""
    check_size(path, limits.max_json_bytes, "JSON")
    with path.open("rb") as f:  # a value too long is refused before the document is held whole
        check_field_bytes(iter(lambda: f.read(1 << 20), b""), path.name, limits.max_field_bytes)
    data = path.read_bytes()
    return parse_json(decode_utf8(data, path.name), path.name, limits)


def text_lines(path: Path, limits: ReadLimits, *, max_bytes: int | None = None) -> Iterator[str]:
    """Yield decoded lines (with their endings) of a UTF-8 text file, one at a time.

    A leading BOM is dropped; an invalid byte stops reading with its byte offset and line; a single
    line longer than ``limits.max_line_bytes`` is refused before it is held in memory.
    """
    check_size(path, limits.max_table_bytes if max_bytes is None else max_bytes, "table")
    offset = 0
    with path.open("rb") as f:
        for number, raw in enumerate(iter(lambda: f.readline(limits.max_line_bytes + 1), b""), start=1):
            if len(raw) > limits.max_line_bytes and not raw.endswith(b"\n"):
                raise FormatError(
                    f"{path.name}: line {number} is longer than {human_bytes(limits.max_line_bytes)}; "
                    "this is not a table Earmark reads"
                )
            data = raw[len(UTF8_BOM) :] if number == 1 and raw.startswith(UTF8_BOM) else raw
            if number == 1 and data.startswith((b"\xff\xfe", b"\xfe\xff")):
                raise FormatError(f"{path.name} is UTF-16; save it as UTF-8 and try again")
            try:
                yield data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _utf8_error(path.name, data, exc, offset=offset, line=number) from None
            offset += len(raw)


def json_lines(path: Path, limits: ReadLimits) -> Iterator[tuple[int, Any | FormatError]]:
    """Yield ``(line number, parsed value or the FormatError saying why the line is not JSON)``.

    Blank lines are skipped. A broken line is the caller's Problem, not the end of the file — except
    when the very first line is broken, which means the file is not JSON Lines at all.
    """
    seen_any = False
    count = 0
    for number, line in enumerate(text_lines(path, limits), start=1):
        if not line.strip():
            continue
        count += 1
        if count > limits.max_rows:
            raise FormatError(f"{path.name} has more than {limits.max_rows:,} lines; import it in parts")
        try:
            value: Any = parse_json(line, path.name, limits, where=f" line {number}")
        except FormatError as exc:
            if not seen_any:
                raise FormatError(f"{path.name} is not JSON Lines (a JSON object per line): {exc}") from None
            value = exc
        seen_any = True
        yield number, value


#: Where a spreadsheet may start a cell: the start of the text, or after a separator it may split on.
CELL_SEPARATORS = ",;\t\r\n"
_FORMULA_OR_QUOTE = "[" + re.escape("".join(FORMULA_START)) + "']"
_ESCAPE_AT = re.compile(f"(^|[{re.escape(CELL_SEPARATORS)}])(?={_FORMULA_OR_QUOTE})")
_UNESCAPE_AT = re.compile(f"(^|[{re.escape(CELL_SEPARATORS)}])'(?={_FORMULA_OR_QUOTE})")


def escape_cell(text: str) -> str:
    """Put an apostrophe before every formula start a spreadsheet could see: at the start of the text
    and after each separator (``,`` ``;`` tab, line break) a spreadsheet might split the line on. An
    apostrophe there gets one more, so :func:`unescape_cell` restores the text exactly."""
    return _ESCAPE_AT.sub(r"\1'", text) if text else text


def unescape_cell(value: str) -> str:
    """Undo :func:`escape_cell`."""
    return _UNESCAPE_AT.sub(r"\1", value) if "'" in value else value


def unescape_cell_start(value: str) -> str:
    """Undo the escaping of exports whose manifest does not list ``escaped_csv``: an apostrophe at the
    start only."""
    if len(value) >= 2 and value[0] == "'" and (value[1] == "'" or value[1] in FORMULA_START):
        return value[1:]
    return value


class Table:
    """A delimited text table read one record at a time.

    ``header`` are the stripped column names; iterating yields ``(line, row)`` where ``row`` maps
    each column to its stripped cell ("" when the row is short) and ``line`` is where the record
    starts. A record with more cells than the header yields ``(line, None)``. With ``strip=False``
    cells are as written (transcripts and metadata keep their spaces).
    """

    def __init__(
        self,
        path: Path,
        limits: ReadLimits,
        *,
        delimiter: str = ",",
        quoting: Literal[0, 1, 2, 3] = csv.QUOTE_MINIMAL,
        unescape: bool | str | None = False,
        strip: bool = True,
    ) -> None:
        self.path = path
        self.limits = limits
        self._strip = strip
        # "separators": Earmark's spreadsheet escaping; True or "start": that of older exports.
        fixes = {"separators": unescape_cell, "start": unescape_cell_start, True: unescape_cell_start}
        self._fix = fixes.get(unescape, lambda s: s) if unescape else (lambda s: s)
        self._lines = text_lines(path, limits)
        self._reader = csv.reader(self._lines, delimiter=delimiter, quoting=quoting, strict=False)
        try:
            first = next(self._reader)
        except StopIteration:
            raise FormatError(f"{path.name} is empty; it needs a header row naming its columns") from None
        except csv.Error as exc:
            raise FormatError(f"{path.name} is not a readable table: {exc}") from None
        self.header = [self._fix(c.strip()) for c in first]
        if not any(self.header):
            raise FormatError(f"{path.name} has an empty header row; it needs column names")
        dupes = sorted({c for c in self.header if self.header.count(c) > 1})
        if dupes:
            raise FormatError(f"{path.name} repeats the column(s) {', '.join(map(repr, dupes))}")

    def require(self, *groups: Iterable[str]) -> list[str]:
        """For each group of alternatives, the first column present; refuse naming what is missing."""
        found = []
        for group in groups:
            options = list(group)
            hit = next((c for c in options if c in self.header), None)
            if hit is None:
                wanted = " or ".join(repr(o) for o in options)
                raise FormatError(
                    f"{self.path.name} has no column {wanted}; its columns are "
                    f"{', '.join(repr(c) for c in self.header)}"
                )
            found.append(hit)
        return found

    def __iter__(self) -> Iterator[tuple[int, dict[str, str] | None]]:
        width = len(self.header)
        count = 0
        while True:
            start = self._reader.line_num + 1
            try:
                cells = next(self._reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise FormatError(f"{self.path.name}: line {start} is not readable: {exc}") from None
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            count += 1
            if count > self.limits.max_rows:
                raise FormatError(
                    f"{self.path.name} has more than {self.limits.max_rows:,} rows; import it in parts"
                )
            if len(cells) > width:
                yield start, None
                continue
            cells = cells + [""] * (width - len(cells))
            if self._strip:
                cells = [c.strip() for c in cells]
            yield start, {h: self._fix(c) for h, c in zip(self.header, cells, strict=True)}


def text_value(value: Any) -> str | None:
    """A source value as metadata text: None stays None, numbers and booleans print as JSON does."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def clean_text(value: Any) -> str | None:
    """A label or transcript: stripped text, or None when empty or missing."""
    text = text_value(value)
    if text is None:
        return None
    text = text.strip()
    return text or None


def keep_text(value: Any) -> str | None:
    """A transcript as the source writes it (spaces at either end kept), or None when it is empty,
    blank or missing: only the project's normalisation rules change what people wrote."""
    text = text_value(value)
    return text if text is not None and text.strip() else None


def parse_tags(value: Any) -> tuple[str, ...]:
    """Tags from a list, a JSON list in text, or ``;``-separated text."""
    if value is None:
        return ()
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return ()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, list):
                value = parsed
            else:
                return tuple(t.strip() for t in text.split(";") if t.strip())
        else:
            return tuple(t.strip() for t in text.split(";") if t.strip())
    if isinstance(value, (list, tuple)):
        out = []
        for t in value:
            t = clean_text(t)
            if t and t not in out:
                out.append(t)
        return tuple(out)
    one = clean_text(value)
    return (one,) if one else ()


class Refused(Exception):
    """A file reference that is not imported; ``str(exc)`` is the reason shown to the user."""


class Resolver:
    """Resolve file references from a source against the folder(s) the user named.

    A reference is refused when it resolves (following ``..`` and symbolic links) outside every
    root, or when no file is there. ``base`` is where relative references start (the folder of the
    metadata file or manifest); it is itself inside a root or the reference is refused.
    """

    def __init__(self, roots: Iterable[Path], *, allow: Iterable[Path] = ()) -> None:
        self.roots: list[Path] = []
        for root in roots:
            resolved = Path(root).resolve()
            if resolved not in self.roots:
                self.roots.append(resolved)
        #: Single files outside the roots that may be read all the same: the stored audio an Earmark
        #: export refers to (its MANIFEST.json lists each one).
        self.allowed = frozenset(Path(p) for p in allow)

    def _inside(self, path: Path) -> Path | None:
        return next((r for r in self.roots if path.is_relative_to(r)), None)

    def resolve(self, ref: str, base: Path) -> tuple[Path, str]:
        """``(resolved file, name to show)``: the name is relative to ``base`` when the file is under
        it, otherwise relative to the root that holds it."""
        if not ref or not ref.strip():
            raise Refused("no audio file named")
        if "\0" in ref:
            raise Refused("the file name holds a NUL character")
        ref = ref.strip().replace("\\", "/")
        candidate = Path(ref) if Path(ref).is_absolute() else Path(base).absolute() / ref
        lexical = Path(os.path.normpath(candidate))
        try:
            resolved = candidate.resolve()
        except (OSError, RuntimeError) as exc:  # symlink loops, names too long
            raise Refused(f"cannot follow the path ({exc.__class__.__name__})") from None
        root = self._inside(resolved)
        if root is None and resolved in self.allowed and resolved.is_file():
            return resolved, lexical.name
        if root is None:
            roots = ", ".join(str(r) for r in self.roots)
            hint = "a symbolic link" if self._inside(lexical) else "the path"
            raise Refused(
                f"{hint} leads outside the import folder ({roots}); name the folder that holds the "
                "audio to import it"
            )
        if not resolved.is_file():
            raise Refused("file not found" if not resolved.exists() else "not a file")
        base_abs = Path(os.path.normpath(Path(base).absolute()))
        if lexical.is_relative_to(base_abs):
            name = lexical.relative_to(base_abs).as_posix()
        else:
            lex_root = next((r for r in self.roots if lexical.is_relative_to(r)), None)
            shown = lexical.relative_to(lex_root) if lex_root else resolved.relative_to(root)
            name = shown.as_posix()
        return resolved, name


def metadata_from(values: Mapping[str, Any], skip: Iterable[str] = ()) -> dict[str, str]:
    """Non-blank values as text metadata, kept as they are; a ``metadata.`` prefix removed."""
    skipped = set(skip)
    out: dict[str, str] = {}
    for key, value in values.items():
        if key in skipped or not key:
            continue
        text = text_value(value)
        if text is None or not text.strip():
            continue
        name = key[len("metadata.") :] if key.startswith("metadata.") else key
        out[name] = text  # as written: a leading space can be data (NeMo's pred_text has one)
    return out


# ---------------------------------------------------------------- delimiters and Earmark's own exports

#: Delimiters a table may use; Label Studio names its TSV download ``.csv``.
DELIMITERS = (",", "\t", ";")


def sniff_delimiter(path: Path, default: str = ",") -> str:
    """The delimiter of a delimited text table, from its header line.

    The header's cells are names, so a delimiter that splits the header (outside quotes) into more
    cells than the others is the one; a tie keeps ``default``. ``.tsv`` files are tab-separated
    unless the header says otherwise.
    """
    try:
        with Path(path).open("rb") as f:
            head = f.readline(1 << 20)
    except OSError:
        return default
    text = head.removeprefix(UTF8_BOM).decode("utf-8", errors="replace")
    counts = {}
    for delimiter in DELIMITERS:
        try:
            cells = next(csv.reader([text], delimiter=delimiter))
        except (csv.Error, StopIteration):
            cells = []
        counts[delimiter] = len(cells)
    best = max(counts.values())
    if best <= 1 or counts.get(default, 0) == best:
        return default
    return next(d for d in DELIMITERS if counts[d] == best)


MANIFEST_NAME = "MANIFEST.json"


def earmark_manifest(folder: Path, *, up_to: Path | None = None) -> tuple[Path, dict[str, Any]] | None:
    """``(folder holding it, content)`` of the ``MANIFEST.json`` Earmark wrote in ``folder`` or, up to
    ``up_to``, one of its parents; None when there is none (the files were not written by Earmark)."""
    folder = Path(folder).absolute()
    stop = Path(up_to).absolute() if up_to is not None else folder
    while True:
        manifest = folder / MANIFEST_NAME
        if manifest.is_file() and manifest.stat().st_size < 512 * 1024**2:
            try:
                content = json.loads(manifest.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                content = None
            if isinstance(content, dict) and content.get("earmark_export"):
                return folder, content
        if folder == stop or not folder.is_relative_to(stop) or folder.parent == folder:
            return None
        folder = folder.parent


#: Tables Earmark escaped for spreadsheets before manifests listed them: every ``metadata.csv`` of
#: these formats.
_ESCAPED_BEFORE_LISTING = ("csv", "audiofolder")


def escaped_for_spreadsheets(table: Path, *, up_to: Path | None = None) -> str | None:
    """How Earmark neutralised formulas in ``table`` for spreadsheets: ``"separators"`` (an apostrophe
    at the start and after separators), ``"start"`` (older exports: at the start only), or None.

    Only a ``MANIFEST.json`` Earmark wrote says so: a CSV from anywhere else is read as it is, so
    ``''Tis the season`` keeps both apostrophes.
    """
    found = earmark_manifest(Path(table).parent, up_to=up_to if up_to is not None else Path(table).parent)
    if found is None:
        return None
    folder, manifest = found
    rel = Path(table).absolute().relative_to(folder).as_posix()
    listed = manifest.get("escaped_csv")
    if isinstance(listed, list):
        return "separators" if rel in listed else None
    legacy = manifest.get("format") in _ESCAPED_BEFORE_LISTING and Path(rel).name == "metadata.csv"
    return "start" if legacy else None


def referenced_audio(folder: Path, *, up_to: Path | None = None) -> frozenset[Path]:
    """The stored audio files an Earmark export made with ``--no-copy-audio`` refers to.

    Only content-addressed files qualify (``…/ab/<sha256>.<ext>``, the SHA-256 the manifest lists
    for them), so a manifest cannot open any other file outside the import folder.
    """
    found = earmark_manifest(folder, up_to=up_to)
    if found is None:
        return frozenset()
    entries = found[1].get("referenced_audio")
    if not isinstance(entries, list):
        return frozenset()
    paths = set()
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        ref, sha = entry.get("path"), entry.get("sha256")
        if not (isinstance(ref, str) and isinstance(sha, str) and _SHA256.fullmatch(sha)) or "\0" in ref:
            continue
        path = Path(ref)
        if path.is_absolute() and path.stem == sha and path.parent.name == sha[:2]:
            try:
                resolved = path.resolve()
            except (OSError, RuntimeError):
                continue
            if resolved.stem == sha and resolved.parent.name == sha[:2]:
                paths.add(resolved)
    return frozenset(paths)


_SHA256 = re.compile(r"[0-9a-f]{64}")


def referenced_names(folder: Path, *, up_to: Path | None = None) -> dict[Path, str]:
    """The clips' original names an Earmark export made with ``--no-copy-audio`` lists beside the
    stored files it refers to (for formats such as Kaldi's that have no place for a name)."""
    allowed = referenced_audio(folder, up_to=up_to)
    found = earmark_manifest(folder, up_to=up_to)
    if not allowed or found is None:
        return {}
    names = {}
    for entry in found[1].get("referenced_audio") or ():
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name.strip() or "\0" in name:
            continue
        try:
            path = Path(str(entry.get("path"))).resolve()
        except (OSError, RuntimeError, ValueError):
            continue
        if path in allowed:
            names[path] = name
    return names


# ---------------------------------------------------------------- manifests made elsewhere


def parse_path_map(pairs: Iterable[str | tuple[str, Path]]) -> list[tuple[str, Path]]:
    """``OLD=NEW`` pairs (as ``--path-map`` gives them, or already split) as ``(old prefix, new
    folder)``."""
    out = []
    for pair in pairs:
        if isinstance(pair, tuple):
            out.append((str(pair[0]), Path(pair[1])))
            continue
        old, eq, new = str(pair).partition("=")
        if not eq or not old.strip() or not new.strip():
            raise FormatError(f"--path-map takes OLD=NEW (a path prefix and the local folder); got {pair!r}")
        out.append((old.strip().rstrip("/\\") or "/", Path(new.strip())))
    return out


def map_path(ref: str, path_map: Sequence[tuple[str, Path]]) -> str:
    """``ref`` with the first matching ``OLD`` prefix replaced by its ``NEW`` folder."""
    text = ref.replace("\\", "/")
    for old, new in path_map:
        prefix = old.replace("\\", "/")
        if text == prefix or text.startswith(prefix.rstrip("/") + "/"):
            rest = text[len(prefix.rstrip("/")) :].lstrip("/")
            return str(new / rest) if rest else str(new)
    return ref
