"""Export writers: call ``write_<format>(frame, out, copy_audio=…)``, or look one up in :data:`WRITERS`.

``frame`` is the export frame of :mod:`labeling.data.formats.base` (:data:`EXPORT_COLUMNS`, one row per
clip). Every writer

* writes a new folder ``out`` (an existing one must be empty), building it under a hidden temporary
  name and renaming it at the end, so a failed export leaves nothing behind;
* writes row by row, never one giant string;
* copies the stored audio into the export when ``copy_audio`` (named after the clip's original name,
  made safe by :func:`safe_relpath`, de-duplicated), or refers to the stored files where they are;
* ends with ``MANIFEST.json``: each file's SHA-256 and size (a copied clip's hash is its ``sha256``
  column, since copying does not change bytes), the dataset version hash and the model code
  fingerprints of the runs included; :func:`verify_export` checks a folder against it.

Formats: ``csv`` (``metadata.csv`` for people with spreadsheets: formula-neutralised cells, every
cell holding a separator quoted), ``jsonl`` (the same table as ``metadata.jsonl``, Hugging Face style
``file_name``), ``audiofolder`` (one folder per split, as Hugging Face's "Create an audio dataset"
lays out; ``metadata.jsonl`` by default, or a ``metadata.csv`` written for ``datasets``' loader, not
for spreadsheets, so its cells are exactly the data), ``nemo`` (one manifest per split), ``kaldi``
(a data directory per split), ``labelstudio`` (tasks Label Studio imports, with a labeling
config and the users to create first), ``lhotse`` (recordings and supervisions per split,
gzipped JSON Lines), ``webdataset`` (tar shards), ``commonvoice`` (a Common Voice release's ``clips/``
and TSVs), ``librispeech`` (OpenSLR's LibriSpeech tree of FLAC files and ``.trans.txt``) and
``annotations`` (one row per annotation). ``MANIFEST.json`` lists under ``escaped_csv`` the tables whose
cells were neutralised, so readers undo the escaping there and nowhere else.
:mod:`labeling.data.formats` readers read each of them back, but for lhotse's manifests and WebDataset
shards.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
import os
import re
import secrets
import shutil
import tarfile
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, NamedTuple
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import pandas as pd

from labeling.data.formats._common import FORMULA_START, escape_cell, split_from_words
from labeling.data.formats.base import EXPORT_COLUMNS, FormatError, Problem
from labeling.data.formats.identities import FINAL_LABEL_EMAIL, completed_by_for, username_for
from labeling.data.formats.kaldi import kaldi_tables
from labeling.data.formats.labelstudio import UNSURE
from labeling.data.formats.lhotse_manifests import RECORDINGS, SUPERVISIONS, recording_dict, supervision_dict
from labeling.data.formats.webdataset_shards import (
    DEFAULT_SHARD_BYTES,
    ShardPlan,
    audio_extension,
    member_bytes,
    sample_json,
    sample_key,
)
from labeling.data.leftovers import hold, partial_exports, release, sweep_stale
from labeling.platform.storage import copy_file, is_remote_url, read_url

Progress = Callable[[int, int], None] | None

#: One encoder for every line: ``json.dumps`` with options builds a new encoder per call.
_to_json = json.JSONEncoder(ensure_ascii=False).encode

MANIFEST_NAME = "MANIFEST.json"
MAX_NAME_BYTES = 200
_FORBIDDEN = frozenset('<>:"/\\|?*')
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{dev}{n}" for dev in ("COM", "LPT") for n in [*"123456789", "¹", "²", "³"]}
)
#: Hugging Face's split folder names for Earmark's splits.
AUDIOFOLDER_SPLITS = {"train": "train", "dev": "validation", "test": "test"}
UNASSIGNED = "unassigned"
#: Columns of the csv/jsonl/audiofolder tables, before the metadata columns.
TABLE_COLUMNS = (
    "file_name",
    "label",
    "transcription",
    "tags",
    "split",
    "sha256",
    "clip_id",
    "original_name",
    "duration_s",
    "sample_rate",
    "channels",
)
_NUMERIC_COLUMNS = frozenset({"clip_id", "duration_s", "sample_rate", "channels"})
#: Metadata keys that would be mistaken for a column readers interpret get a ``metadata.`` prefix.
_RESERVED_KEYS = frozenset(TABLE_COLUMNS) | {
    "transcript",
    "text",
    "sentence",
    "audio_filepath",
    "duration",
    "offset",
}


# ---------------------------------------------------------------- safe cells and names


def safe_cell(value: Any) -> str:
    """A CSV cell a spreadsheet will not run as a formula (OWASP "CSV Injection").

    Text starting with ``= + - @``, tab, carriage return (or their full-width forms) gets a leading
    apostrophe, which spreadsheets take as "this is text", and so does such a start after a ``,``
    ``;``, tab or line break inside the text, where a spreadsheet splitting on another separator
    would start a cell. An apostrophe in those places gets one more, so readers can undo the escape
    exactly. None and NaN are empty cells.
    """
    return escape_cell(_cell_text(value))


def _cell_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _sanitise(text: str, max_bytes: int) -> str:
    chars = []
    for ch in unicodedata.normalize("NFC", text):
        category = unicodedata.category(ch)
        if ch in _FORBIDDEN or category[0] == "C" or category in ("Zl", "Zp"):
            chars.append("_")
        elif category == "Zs":
            chars.append(" ")
        else:
            chars.append(ch)
    name = re.sub(r" {2,}", " ", re.sub(r"\.{2,}", ".", "".join(chars))).strip(" .")
    if name.split(".")[0].strip().upper() in _WINDOWS_RESERVED:
        name = "_" + name
    if len(name.encode("utf-8")) > max_bytes:
        stem, dot, ext = name.rpartition(".")
        keep = dot + ext if stem and len((dot + ext).encode("utf-8")) <= 16 else ""
        body = name[: len(name) - len(keep)]
        budget = max_bytes - len(keep.encode("utf-8"))
        body = body.encode("utf-8")[:budget].decode("utf-8", errors="ignore").rstrip(" .")
        name = body + keep
    return unicodedata.normalize("NFC", name).strip(" .")


def safe_name(text: str, *, max_bytes: int = MAX_NAME_BYTES) -> str:
    """A file or folder name made from a label, metadata value or original name.

    No path separators or characters Windows forbids, no control or invisible format characters,
    no ``..``, no leading dot or trailing dot/space, no reserved Windows device name (CON, NUL,
    COM1…), at most ``max_bytes`` bytes of UTF-8 (the extension kept), Unicode NFC, never empty.
    ``safe_name(safe_name(x)) == safe_name(x)``.
    """
    name = str(text)
    for _ in range(4):  # normalising can expose another dot or space to strip; it settles fast
        cleaned = _sanitise(name, max_bytes)
        if cleaned == name:
            break
        name = cleaned
    return name or "_"


def safe_relpath(text: str, *, max_depth: int = 8) -> str:
    """A relative path from an original name: each part made safe by :func:`safe_name`, ``.`` and
    ``..`` parts dropped, at most ``max_depth`` parts (the last ones kept)."""
    parts = [p for p in re.split(r"[/\\]+", str(text)) if p.strip(" ") not in ("", ".", "..")]
    safe = [safe_name(p) for p in parts][-max_depth:]
    return "/".join(safe) if safe else "_"


# ---------------------------------------------------------------- the export folder


class _Row(NamedTuple):
    clip_id: Any
    sha256: Any
    original_name: Any
    audio_path: Any
    duration_s: Any
    sample_rate: Any
    channels: Any
    split: Any
    label: Any
    transcript: Any
    tags: Any
    metadata: Any


def _text(value: Any) -> str | None:
    if type(value) is str:
        return value if value.strip() else None
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    return text if text.strip() else None


def _number(value: Any) -> int | float | None:
    if value is None or value is pd.NA:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(number):
        return None
    return int(number) if number.is_integer() and not isinstance(value, float) else number


def _int(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def _clip_id(value: Any) -> int | str | None:
    if isinstance(value, str):
        return value
    number = _number(value)
    return int(number) if number is not None and float(number).is_integer() else _text(value)


def _tags(value: Any) -> list[str]:
    if value is None or isinstance(value, (str, float)) or value is pd.NA:
        return [value] if isinstance(value, str) and value else []
    return [str(t) for t in value if _text(t)]


def _metadata(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items() if _text(k) and _text(v) is not None}


def _meta_column(key: str) -> str:
    return f"metadata.{key}" if key in _RESERVED_KEYS or key.startswith("metadata.") else key


def _rows(frame: pd.DataFrame) -> Iterator[_Row]:
    missing = [c for c in ("sha256", "audio_path") if c not in frame.columns]
    if missing:
        raise ValueError(f"the export frame lacks the column(s) {', '.join(missing)}")
    n = len(frame)
    columns = [frame[c].tolist() if c in frame.columns else [None] * n for c in EXPORT_COLUMNS]
    for values in zip(*columns, strict=True):
        yield _Row(*values)


@dataclass(slots=True)
class _Entry:
    path: str
    sha256: str
    bytes: int
    name: str | None = None  # a referenced clip's original name, for formats with no place for it


class _TextSink:
    """A text sink that writes UTF-8 to a binary one (a hashed file, or a gzip stream over one)."""

    def __init__(self, raw: _HashingBytes | gzip.GzipFile) -> None:
        self.raw = raw

    def write(self, text: str) -> int:
        self.raw.write(text.encode("utf-8"))
        return len(text)


class _HashingBytes:
    """A binary sink that writes to a file and hashes what it writes."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.hash.update(data)
        self.raw.write(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self.raw.flush()


class _Export:
    """A new export folder built under a temporary name; files are recorded for the manifest."""

    def __init__(
        self,
        out: Path,
        *,
        fmt: str,
        copy_audio: bool,
        progress: Progress,
        total: int,
        dataset_version: str | None,
        model_fingerprints: Mapping[str, str] | None,
    ) -> None:
        self.out = Path(out)
        if self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir())):
            raise FormatError(f"{self.out} already exists and is not an empty folder; choose a new folder")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale(partial_exports(self.out.parent))  # what killed exports left here
        self.tmp = self.out.parent / f".{self.out.name}.partial-{secrets.token_hex(4)}"
        self.tmp.mkdir()
        self._lock = hold(self.tmp)  # a sweep of unfinished exports passes this one by
        self.fmt = fmt
        self.copy_audio = copy_audio
        self.progress = progress
        self.total = total
        self.done = 0
        self.dataset_version = dataset_version
        self.model_fingerprints = dict(model_fingerprints or {})
        self.entries: list[_Entry] = []
        self.referenced: list[_Entry] = []
        self._taken: set[str] = {MANIFEST_NAME.casefold()}
        self.sheet_names = False  # name copies so a spreadsheet cell holding the name is no formula
        self.escaped_csv: list[str] = []  # tables whose cells are neutralised for spreadsheets

    def reserve(self, rel: str) -> None:
        self._taken.add(unicodedata.normalize("NFC", rel).casefold())

    def _place(self, folder: str, row: _Row, *, flat: bool = False) -> str:
        source = Path(str(row.audio_path))
        base = safe_relpath(_text(row.original_name) or f"{str(row.sha256)[:16]}{source.suffix}")
        if flat:
            base = safe_name(base.replace("/", "_"))
        if self.sheet_names and not folder and (base[0] in FORMULA_START or base[0] == "'"):
            # The name is written as it is into a spreadsheet's file_name cell: make it one a
            # spreadsheet does not take for a formula (the original name has its own column).
            base = "_" + base
        if not Path(base).suffix and source.suffix:
            base += source.suffix.lower()
        candidate = base
        suffix = Path(base).suffix
        stem = base[: len(base) - len(suffix)]
        attempt = 0
        while f"{folder}/{candidate}".lstrip("/").casefold() in self._taken:
            attempt += 1
            tag = str(row.sha256)[:8] if attempt == 1 else f"{str(row.sha256)[:8]}-{attempt}"
            candidate = f"{stem}-{tag}{suffix}"
        self.reserve(f"{folder}/{candidate}".lstrip("/"))
        return candidate

    def audio(self, row: _Row, folder: str = "", *, flat: bool = False) -> str:
        """The reference to write for a clip's audio: relative to ``folder`` when copied (directly in
        it when ``flat``, the original name's folders joined into the file name with ``_``)."""
        if not self.copy_audio:
            ref = str(row.audio_path) if os.sep == "/" else Path(str(row.audio_path)).as_posix()
            self.referenced.append(_Entry(ref, str(row.sha256), -1, _text(row.original_name)))
            return ref
        source = str(row.audio_path)
        rel = self._place(folder, row, flat=flat)
        target = self.tmp / folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            copy_file(source, target)
        except FileNotFoundError:
            raise FormatError(f"clip {row.clip_id}: its stored audio {source} is missing") from None
        self.entries.append(_Entry(f"{folder}/{rel}".lstrip("/"), str(row.sha256), target.stat().st_size))
        return rel

    @contextmanager
    def text(self, rel: str) -> Iterator[_TextSink]:
        """A UTF-8 text file of the export, hashed as it is written."""
        with self.binary(rel) as sink:
            yield _TextSink(sink)

    @contextmanager
    def binary(self, rel: str) -> Iterator[_HashingBytes]:
        """A binary file of the export (a gzipped manifest, a tar shard), hashed as it is written."""
        self.reserve(rel)
        target = self.tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb", buffering=1 << 20) as raw:
            sink = _HashingBytes(raw)
            yield sink
        self.entries.append(_Entry(rel, sink.hash.hexdigest(), sink.size))

    @contextmanager
    def gzipped_text(self, rel: str) -> Iterator[_TextSink]:
        """A gzipped UTF-8 text file (no name or time in its header, so the same rows give the same
        bytes); the manifest records the compressed file's hash."""
        with self.binary(rel) as sink, gzip.GzipFile(filename="", mode="wb", fileobj=sink, mtime=0) as gz:
            yield _TextSink(gz)

    def step(self) -> None:
        self.done += 1
        if self.progress is not None and (self.done % 1000 == 0 or self.done == self.total):
            self.progress(self.done, self.total)

    def finish(self) -> list[Path]:
        with (self.tmp / MANIFEST_NAME).open("w", encoding="utf-8", newline="\n") as f:
            head = {
                "earmark_export": 1,
                "format": self.fmt,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                "clips": self.total,
                "audio": "copied" if self.copy_audio else "referenced",
                "dataset_version": self.dataset_version,
                "model_fingerprints": self.model_fingerprints,
                "escaped_csv": self.escaped_csv,
            }
            f.write(json.dumps(head, ensure_ascii=False, indent=1)[:-2] + ',\n "files": [\n')
            _write_entries(f, self.entries)
            f.write(' ],\n "referenced_audio": [\n')
            _write_entries(f, self.referenced)
            f.write(" ]\n}\n")
        if self.out.exists():
            self.out.rmdir()
        self.tmp.rename(self.out)
        release(self._lock)
        return [self.out / e.path for e in self.entries] + [self.out / MANIFEST_NAME]

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        release(self._lock)


def _write_entries(f: IO[str], entries: list[_Entry]) -> None:
    for i, e in enumerate(entries):
        record: dict[str, Any] = {"path": e.path, "sha256": e.sha256}
        if e.bytes >= 0:
            record["bytes"] = e.bytes
        if e.name is not None:
            record["name"] = e.name
        f.write("  " + _to_json(record) + (",\n" if i < len(entries) - 1 else "\n"))


def _labelstudio_audio(ref: str, out_abs: Path, doc_root: Path, copied: bool) -> str:
    """A task's audio: a local-files URL under ``doc_root``, or an object store's own ``s3://`` URL
    (which Label Studio reads through a cloud storage connection)."""
    if not copied and is_remote_url(ref):
        return ref
    audio_file = out_abs / ref if copied else Path(ref)
    if not audio_file.is_relative_to(doc_root):
        raise FormatError(f"{audio_file} is not under the local files root {doc_root}")
    return f"/data/local-files/?d={quote(audio_file.relative_to(doc_root).as_posix())}"


@contextmanager
def _export(frame: pd.DataFrame, out: Path, fmt: str, copy_audio: bool, progress: Progress, **manifest: Any):
    export = _Export(
        Path(out), fmt=fmt, copy_audio=copy_audio, progress=progress, total=len(frame), **manifest
    )
    try:
        yield export
    except BaseException:
        export.abort()
        raise


def verify_export(out: Path) -> list[Problem]:
    """Check an export folder against its ``MANIFEST.json``: every file there, same size and SHA-256."""
    out = Path(out)
    manifest_path = out / MANIFEST_NAME
    if not manifest_path.is_file():
        return [Problem(MANIFEST_NAME, "missing; this folder is not an Earmark export")]
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    problems = []
    for entry in manifest.get("files", []):
        path = out / entry["path"]
        if not path.resolve().is_relative_to(out.resolve()):
            problems.append(Problem(entry["path"], "outside the export folder"))
            continue
        if not path.is_file():
            problems.append(Problem(entry["path"], "missing"))
            continue
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != entry["sha256"]:
            problems.append(Problem(entry["path"], "content differs from the manifest (SHA-256)"))
    return problems


# ---------------------------------------------------------------- tables: csv, jsonl, audiofolder


def _metadata_keys(rows: list[_Row]) -> list[str]:
    keys: dict[str, None] = {}
    for row in rows:
        for key in _metadata(row.metadata):
            keys.setdefault(key, None)
    return list(keys)


def _record(row: _Row, file_name: str, *, with_split: bool) -> dict[str, Any]:
    record: dict[str, Any] = {
        "file_name": file_name,
        "label": _text(row.label),
        "transcription": _text(row.transcript),
        "tags": _tags(row.tags),
    }
    if with_split:
        record["split"] = _text(row.split)
    record |= {
        "sha256": _text(row.sha256),
        "clip_id": _clip_id(row.clip_id),
        "original_name": _text(row.original_name),
        "duration_s": _number(row.duration_s),
        "sample_rate": _int(row.sample_rate),
        "channels": _int(row.channels),
    }
    for key, value in _metadata(row.metadata).items():
        record[_meta_column(key)] = value
    return record


def _tags_cell(tags: list[str]) -> str:
    if any(";" in t or t.startswith("[") for t in tags):
        return json.dumps(tags, ensure_ascii=False)
    return ";".join(tags)


#: A spreadsheet cell holding one of these (or starting or ending with a space) is quoted, so a
#: spreadsheet splitting on ``;`` or tabs still reads one cell and no formula after the separator.
_SHEET_QUOTE = re.compile(r'[,;\t"\r\n]|^\s|\s$')


def _sheet_line(cells: list[str]) -> str:
    out = []
    for cell in cells:
        out.append('"' + cell.replace('"', '""') + '"' if cell and _SHEET_QUOTE.search(cell) else cell)
    return ",".join(out) + "\r\n"


def spreadsheet_csv(frame: pd.DataFrame) -> bytes:
    """A table as CSV a spreadsheet opens safely (the app's own "Download CSV" of tables it shows).

    Every cell goes through :func:`safe_cell` and every cell holding a separator is quoted, as in the
    export's ``metadata.csv``; list cells (tags) are written like the export writes tags. UTF-8 with
    a byte-order mark, so spreadsheets read accents right.
    """
    lines = [_sheet_line([safe_cell(c) for c in frame.columns])]
    for row in frame.itertuples(index=False, name=None):
        cells = [_tags_cell(list(v)) if isinstance(v, list | tuple) else v for v in row]
        lines.append(_sheet_line([safe_cell(c) for c in cells]))
    return ("\ufeff" + "".join(lines)).encode("utf-8")


class _TableWriter:
    """Rows of one metadata table, as CSV or JSON Lines (``uniform``: every column on every line).

    A ``spreadsheet`` CSV neutralises formulas (:func:`safe_cell`) in every cell but ``file_name``
    (a file name is not a formula: the copies are named so it is none) and quotes every cell that
    holds a separator; otherwise the CSV holds the data exactly, quoted as CSV needs and no more.
    """

    def __init__(
        self,
        sink: _TextSink,
        kind: str,
        columns: list[str],
        *,
        spreadsheet: bool = False,
        uniform: bool = False,
    ) -> None:
        self.kind = kind
        self.columns = columns
        self.sink = sink
        self.uniform = uniform
        self.spreadsheet = spreadsheet and kind == "csv"
        if self.spreadsheet:
            sink.write(_sheet_line([safe_cell(c) for c in columns]))
        elif kind == "csv":
            self.csv = csv.writer(sink, lineterminator="\r\n")
            self.csv.writerow(columns)

    def write(self, record: dict[str, Any]) -> None:
        if self.kind == "csv":
            cells = []
            for column in self.columns:
                value = record.get(column)
                text = _cell_text(_tags_cell(value or []) if column == "tags" else value)
                cells.append(safe_cell(text) if self.spreadsheet and column != "file_name" else text)
            if self.spreadsheet:
                self.sink.write(_sheet_line(cells))
            else:
                self.csv.writerow(cells)
        elif self.uniform:
            # Every line has every column with one type: text "" when missing, tags as text. The
            # ``datasets`` loader infers each split's columns from its own file and refuses a folder
            # whose files disagree (a column missing, or all empty, in one split).
            line = {}
            for column in self.columns:
                value = record.get(column)
                if column == "tags":
                    value = _tags_cell(value or [])
                elif value is None and column not in _NUMERIC_COLUMNS:
                    value = ""
                line[column] = value
            self.sink.write(_to_json(line) + "\n")
        else:
            slim = {k: v for k, v in record.items() if v is not None and v != []}
            self.sink.write(_to_json(slim) + "\n")


def _table_columns(rows: list[_Row], *, with_split: bool) -> list[str]:
    columns = [c for c in TABLE_COLUMNS if with_split or c != "split"]
    return columns + [_meta_column(k) for k in _metadata_keys(rows)]


def _write_table(
    frame: pd.DataFrame, out: Path, kind: str, *, copy_audio: bool, progress: Progress, **manifest: Any
) -> list[Path]:
    rows = list(_rows(frame))
    columns = _table_columns(rows, with_split=True)
    with _export(frame, out, kind, copy_audio, progress, **manifest) as export:
        name = f"metadata.{kind}"
        if kind == "csv":
            export.sheet_names = True
            export.escaped_csv.append(name)
        with export.text(name) as sink:
            table = _TableWriter(sink, kind, columns, spreadsheet=kind == "csv")
            for row in rows:
                table.write(_record(row, export.audio(row), with_split=True))
                export.step()
        return export.finish()


def write_csv(
    frame: pd.DataFrame,
    out: Path,
    *,
    copy_audio: bool,
    progress: Progress = None,
    dataset_version: str | None = None,
    model_fingerprints: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write ``metadata.csv`` for spreadsheets (one row per clip) and the audio.

    Columns: ``file_name`` (relative to the table when the audio is copied, else the stored file's
    absolute path), ``label``, ``transcription``, ``tags`` (``;``-separated), ``split``, the clip's
    ``sha256``, ``clip_id``, ``original_name``, ``duration_s``, ``sample_rate``, ``channels``, then one
    column per metadata key. Cells a spreadsheet would run as formulas get a leading apostrophe
    (``MANIFEST.json`` says so, and Earmark's readers remove it again); cells holding ``,`` ``;`` or a
    tab are quoted. A copied file whose name would start a formula is saved with a leading ``_``.
    For a loader (Hugging Face ``datasets``), export ``audiofolder`` or ``jsonl`` instead.
    """
    return _write_table(
        frame,
        out,
        "csv",
        copy_audio=copy_audio,
        progress=progress,
        dataset_version=dataset_version,
        model_fingerprints=model_fingerprints,
    )


def write_jsonl(
    frame: pd.DataFrame,
    out: Path,
    *,
    copy_audio: bool,
    progress: Progress = None,
    dataset_version: str | None = None,
    model_fingerprints: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write ``metadata.jsonl``: :func:`write_csv`'s columns, ``tags`` as a list, empty values left out."""
    return _write_table(
        frame,
        out,
        "jsonl",
        copy_audio=copy_audio,
        progress=progress,
        dataset_version=dataset_version,
        model_fingerprints=model_fingerprints,
    )


def write_audiofolder(
    frame: pd.DataFrame,
    out: Path,
    *,
    copy_audio: bool = True,
    progress: Progress = None,
    metadata_format: str = "jsonl",
    dataset_version: str | None = None,
    model_fingerprints: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write a Hugging Face audiofolder: ``train/``, ``validation/``, ``test/`` (clips without a split
    in ``unassigned/``, or at the top when no clip has one), each with its audio files and a
    ``metadata.jsonl`` (or, with ``metadata_format="csv"``, ``metadata.csv``) whose ``file_name`` is
    relative to it.

    The metadata is data for ``datasets``' loader, not a spreadsheet: nothing is neutralised. Every
    line holds every column with one type (missing text is ``""``, tags are ``;``-separated text),
    because ``datasets`` infers each split's columns from its own file and refuses a folder whose
    files disagree. JSON Lines is the default because ``datasets`` reads a CSV with pandas' type
    guessing, which turns transcripts such as ``NA`` or ``null`` into missing values, ``007`` into
    the number 7, and a column empty in one split into another type there. The layout needs the
    audio beside its metadata, so ``copy_audio`` must be true.
    """
    if not copy_audio:
        raise FormatError(
            "the audiofolder layout keeps the audio beside its metadata; export it with the audio copied"
        )
    if metadata_format not in ("csv", "jsonl"):
        raise ValueError("metadata_format is 'csv' or 'jsonl'")
    rows = list(_rows(frame))
    any_split = any(_text(r.split) in AUDIOFOLDER_SPLITS for r in rows)
    columns = _table_columns(rows, with_split=False)
    with _export(
        frame,
        out,
        "audiofolder",
        True,
        progress,
        dataset_version=dataset_version,
        model_fingerprints=model_fingerprints,
    ) as export:
        for folder in [*AUDIOFOLDER_SPLITS.values(), UNASSIGNED, ""]:
            export.reserve(f"{folder}/metadata.{metadata_format}".lstrip("/"))
        tables: dict[str, _TableWriter] = {}
        with _ExitStack() as stack:
            for row in rows:
                split = _text(row.split)
                folder = AUDIOFOLDER_SPLITS.get(split or "", UNASSIGNED) if any_split else ""
                if folder not in tables:
                    sink = stack.enter(export.text(f"{folder}/metadata.{metadata_format}".lstrip("/")))
                    tables[folder] = _TableWriter(sink, metadata_format, columns, uniform=True)
                tables[folder].write(_record(row, export.audio(row, folder), with_split=False))
                export.step()
        return export.finish()


class _ExitStack:
    """Enter several table files as rows reach them; close them all at the end."""

    def __init__(self) -> None:
        self._managers: list[Any] = []

    def enter(self, manager: Any) -> Any:
        value = manager.__enter__()
        self._managers.append(manager)
        return value

    def close_last(self) -> None:
        """Close the two managers entered last (a shard's tar, then its file)."""
        for _ in range(2):
            self._managers.pop().__exit__(None, None, None)

    def __enter__(self) -> _ExitStack:
        return self

    def __exit__(self, *exc: Any) -> None:
        for manager in reversed(self._managers):
            manager.__exit__(*exc)


# ---------------------------------------------------------------- NeMo


def write_nemo(
    frame: pd.DataFrame,
    out: Path,
    *,
    copy_audio: bool,
    progress: Progress = None,
    dataset_version: str | None = None,
    model_fingerprints: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write NeMo manifests, one per split: ``train_manifest.json``, ``dev_manifest.json``,
    ``test_manifest.json`` and ``unassigned_manifest.json`` for clips without a split.

    Each line: ``audio_filepath`` (relative to the manifest when copied, else the stored file's
    absolute path), ``duration``, ``text`` (the transcript, "" when there is none), ``label`` and
    ``tags`` when the clip has them, ``original_name`` when the audio file is named otherwise (NeMo
    ignores keys it does not use), then the metadata keys.
    """
    with _export(
        frame,
        out,
        "nemo",
        copy_audio,
        progress,
        dataset_version=dataset_version,
        model_fingerprints=model_fingerprints,
    ) as export:
        names = {s: f"{s}_manifest.json" for s in ("train", "dev", "test", UNASSIGNED)}
        for name in names.values():
            export.reserve(name)
        with _ExitStack() as stack:
            sinks: dict[str, _TextSink] = {}
            for row in _rows(frame):
                split = _text(row.split)
                key = split if split in names else UNASSIGNED
                if key not in sinks:
                    sinks[key] = stack.enter(export.text(names[key]))
                ref = export.audio(row)
                line: dict[str, Any] = {
                    "audio_filepath": ref,
                    "duration": _number(row.duration_s),
                    "text": _text(row.transcript) or "",
                }
                original = _text(row.original_name)
                if original is not None and original != ref:
                    line["original_name"] = original
                label = _text(row.label)
                if label is not None:
                    line["label"] = label
                tags = _tags(row.tags)
                if tags:
                    line["tags"] = tags
                for meta_key, value in _metadata(row.metadata).items():
                    line[_meta_column(meta_key)] = value
                sinks[key].write(_to_json(line) + "\n")
                export.step()
        return export.finish()


# ---------------------------------------------------------------- Label Studio


def _by_clip(frame: pd.DataFrame | None, columns: tuple[str, ...]) -> dict[Any, list[dict[str, Any]]]:
    grouped: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    if frame is None or frame.empty:
        return grouped
    present = [c for c in columns if c in frame.columns]
    for values in zip(*(frame[c].tolist() for c in present), strict=True):
        record = dict(zip(present, values, strict=True))
        grouped[record["clip_id"]].append(record)
    return grouped


def write_labelstudio(
    frame: pd.DataFrame,
    out: Path,
    *,
    copy_audio: bool,
    progress: Progress = None,
    annotations: pd.DataFrame | None = None,
    predictions: pd.DataFrame | None = None,
    user_ids: Mapping[str, int] | None = None,
    classes: Sequence[str] = (),
    tags: Sequence[str] = (),
    transcribes: bool = False,
    document_root: Path | None = None,
    dataset_version: str | None = None,
    model_fingerprints: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write ``tasks.json`` that Label Studio imports, ``label_config.xml`` to create its project, and
    ``labelstudio_users.json``: the people to create in Label Studio before importing the tasks.

    Each task: ``data.audio`` is a ``/data/local-files/?d=<path>`` reference relative to
    ``document_root`` (by default the export's parent folder when the audio is copied, else the
    stored files' common folder): start Label Studio with
    ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``
    set to it, and add a Local Files storage for the audio folder. The clip's metadata sits beside
    ``audio`` in ``data`` (with ``original_name`` when the file is named otherwise); the final
    label, transcript and tags as an annotation marked ``ground_truth`` by Earmark's final-label
    pseudo-annotator; one annotation per row of ``annotations`` (long: clip_id, annotator, label,
    transcript, tags); full prediction objects (``model_version``, ``score``, ``result``) from
    ``predictions`` (clip_id, model, label, transcript, confidence).

    ``completed_by`` names every annotation's author the way :mod:`labeling.data.formats.identities`
    says (``user_ids`` maps annotators to Label Studio ids instead). Label Studio refuses an import
    naming people it does not know, so create the ones ``labelstudio_users.json`` lists first (each
    entry is the body of one ``POST /api/users/``). The config offers every class of ``classes`` and
    tag of ``tags`` (the project's), used or not, and any others the data holds; a transcript box
    when ``transcribes`` or the data has transcripts; and an ``unsure`` checkbox, ticked in the
    annotations whose ``unsure`` is true.
    """
    rows = list(_rows(frame))
    anns = _by_clip(annotations, ("clip_id", "annotator", "label", "transcript", "tags", "unsure"))
    preds = _by_clip(predictions, ("clip_id", "model", "label", "transcript", "confidence"))
    users = dict(user_ids or {})
    if document_root is not None:
        doc_root = Path(document_root)
    elif copy_audio:
        doc_root = Path(out).parent
    else:
        parents = [str(Path(str(r.audio_path)).parent) for r in rows]
        doc_root = Path(os.path.commonpath(parents)) if parents else Path(out).parent
    doc_root = doc_root.absolute()
    out_abs = Path(out).absolute()
    class_list: dict[str, None] = dict.fromkeys(str(c) for c in classes)
    tag_values: dict[str, None] = dict.fromkeys(str(t) for t in tags)
    people: dict[str, str] = {}  # e-mail → name to show
    has_text = False
    ids = iter(range(1, 1 << 62))

    def result(label: Any, transcript: Any, tags: Any) -> list[dict[str, Any]]:
        nonlocal has_text
        items = []
        if _text(label) is not None:
            class_list.setdefault(str(label).strip(), None)
            items.append(_ls_result(next(ids), "label", "choices", {"choices": [str(label).strip()]}))
        if _text(transcript) is not None:
            has_text = True
            items.append(_ls_result(next(ids), "transcription", "textarea", {"text": [str(transcript)]}))
        tag_list = _tags(tags)
        if tag_list:
            for t in tag_list:
                tag_values.setdefault(t, None)
            items.append(_ls_result(next(ids), "tags", "choices", {"choices": tag_list}))
        return items

    def author(name: str) -> int | dict[str, str]:
        if name in users:
            return users[name]
        who = completed_by_for(name)
        if isinstance(who, dict):
            people.setdefault(who["email"], name)
        return who

    with _export(
        frame,
        out,
        "labelstudio",
        copy_audio,
        progress,
        dataset_version=dataset_version,
        model_fingerprints=model_fingerprints,
    ) as export:
        export.reserve("label_config.xml")
        export.reserve(LABELSTUDIO_USERS)
        with export.text("tasks.json") as sink:
            sink.write("[\n")
            for n, row in enumerate(rows):
                ref = export.audio(row)
                data: dict[str, Any] = {"audio": _labelstudio_audio(ref, out_abs, doc_root, copy_audio)}
                original = _text(row.original_name)
                if original is not None and original != ref:
                    data["original_name"] = original
                if _text(row.split) is not None:
                    data["split"] = _text(row.split)
                for key, value in _metadata(row.metadata).items():
                    clash = key in ("audio", "split", "original_name") or key.startswith("metadata.")
                    data[f"metadata.{key}" if clash else key] = value
                task: dict[str, Any] = {"data": data, "annotations": [], "predictions": []}
                final = result(row.label, row.transcript, row.tags)
                if final:
                    people.setdefault(FINAL_LABEL_EMAIL, "Earmark final labels")
                    task["annotations"].append(
                        {
                            "result": final,
                            "ground_truth": True,
                            "was_cancelled": False,
                            "completed_by": {"email": FINAL_LABEL_EMAIL},
                        }
                    )
                for ann in anns.get(row.clip_id, []):
                    items = result(ann.get("label"), ann.get("transcript"), ann.get("tags"))
                    if not items:
                        continue
                    if ann.get("unsure") is True:
                        items.append(_ls_result(next(ids), UNSURE, "choices", {"choices": [UNSURE]}))
                    task["annotations"].append(
                        {
                            "result": items,
                            "ground_truth": False,
                            "was_cancelled": False,
                            "completed_by": author(str(ann.get("annotator"))),
                        }
                    )
                for pred in preds.get(row.clip_id, []):
                    items = result(pred.get("label"), pred.get("transcript"), None)
                    if not items:
                        continue
                    prediction: dict[str, Any] = {"model_version": str(pred.get("model")), "result": items}
                    score = _number(pred.get("confidence"))
                    if score is not None:
                        prediction["score"] = float(score)
                    task["predictions"].append(prediction)
                sink.write(("," if n else "") + _to_json(task) + "\n")
                export.step()
            sink.write("]\n")
        with export.text("label_config.xml") as sink:
            with_text = has_text or transcribes or not class_list
            sink.write(_label_config(list(class_list), list(tag_values), with_text))
        with export.text(LABELSTUDIO_USERS) as sink:
            listed = [
                {"email": e, "username": username_for(e), "first_name": name[:256], "last_name": ""}
                for e, name in people.items()
            ]
            sink.write(json.dumps(listed, ensure_ascii=False, indent=1) + "\n")
        return export.finish()


#: The people an export's annotations name, to create in Label Studio before importing the tasks:
#: a list of user objects, each one the body ``POST /api/users/`` takes (``email``, ``username``,
#: ``first_name``, ``last_name``).
LABELSTUDIO_USERS = "labelstudio_users.json"


def _ls_result(n: int, control: str, kind: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"r{n}",
        "from_name": control,
        "to_name": "audio",
        "type": kind,
        "value": value,
        "origin": "manual",
    }


def _label_config(classes: list[str], tags: list[str], with_text: bool) -> str:
    lines = ["<View>", '  <Audio name="audio" value="$audio"/>']
    if classes:
        lines.append('  <Choices name="label" toName="audio" choice="single-radio" showInline="true">')
        lines += [f"    <Choice value={quoteattr(c)}/>" for c in classes]
        lines.append("  </Choices>")
    if tags:
        lines.append('  <Choices name="tags" toName="audio" choice="multiple" showInline="true">')
        lines += [f"    <Choice value={quoteattr(t)}/>" for t in tags]
        lines.append("  </Choices>")
    if with_text:
        lines.append(
            '  <TextArea name="transcription" toName="audio" rows="2" editable="true" maxSubmissions="1"/>'
        )
    lines.append(f'  <Choices name="{UNSURE}" toName="audio" choice="multiple" showInline="true">')
    lines.append(f'    <Choice value="{UNSURE}"/>')
    lines.append("  </Choices>")
    lines.append("</View>")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- Kaldi


def write_kaldi(
    frame: pd.DataFrame,
    out: Path,
    *,
    copy_audio: bool,
    progress: Progress = None,
    dataset_version: str | None = None,
    model_fingerprints: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write a Kaldi data directory per split under ``data/`` (see :mod:`labeling.data.formats.kaldi`).

    Copied audio sits in the export folder under its original name and ``wav.scp`` names it
    relative to that folder (Kaldi's scripts run from it); referenced audio by absolute path, with
    the clips' names in ``MANIFEST.json``. A split holding clips with and without a transcript puts
    the untranscribed ones in ``data/<split>_untranscribed/``, a directory without ``text``: every
    ``text`` line then has a transcript, as lhotse's reader needs, and every utterance of a directory
    with ``text`` is in it, as Kaldi's ``validate_data_dir.sh`` needs (``--no-text`` for the others).
    """
    rows = list(_rows(frame))
    splits = ("train", "dev", "test", UNASSIGNED)
    with _export(
        frame,
        out,
        "kaldi",
        copy_audio,
        progress,
        dataset_version=dataset_version,
        model_fingerprints=model_fingerprints,
    ) as export:
        for split in splits:
            for folder in (split, f"{split}{UNTRANSCRIBED}"):
                for name in ("wav.scp", "text", "utt2spk", "spk2utt", "spk2gender", "utt2dur"):
                    export.reserve(f"data/{folder}/{name}")
        by_split: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            row_split = _text(row.split)
            meta = _metadata(row.metadata)
            by_split.setdefault(row_split if row_split in splits else UNASSIGNED, []).append(
                {
                    "clip_id": _clip_id(row.clip_id),
                    "audio": export.audio(row),
                    "transcript": _text(row.transcript),
                    "duration": _number(row.duration_s),
                    "speaker": meta.get("speaker"),
                    "gender": meta.get("gender"),
                }
            )
            export.step()
        for split, items in list(by_split.items()):
            untranscribed = [i for i in items if i["transcript"] is None]
            if untranscribed and len(untranscribed) < len(items):
                by_split[split] = [i for i in items if i["transcript"] is not None]
                by_split[f"{split}{UNTRANSCRIBED}"] = untranscribed
        for split, items in by_split.items():
            for name, lines in kaldi_tables(items).items():
                with export.text(f"data/{split}/{name}") as sink:
                    for line in lines:
                        sink.write(line + "\n")
        return export.finish()


#: The Kaldi data directory of a split's clips without a transcript, beside the split's own.
UNTRANSCRIBED = "_untranscribed"

# ---------------------------------------------------------------- lhotse


def write_lhotse(
    frame: pd.DataFrame,
    out: Path,
    *,
    copy_audio: bool,
    progress: Progress = None,
    dataset_version: str | None = None,
    model_fingerprints: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write lhotse manifests per split: ``<split>/recordings.jsonl.gz`` and
    ``<split>/supervisions.jsonl.gz`` (``train``, ``dev``, ``test``, ``unassigned``), lines as
    :mod:`labeling.data.formats.lhotse_manifests` builds them.

    Copied audio sits in the export folder under its original name and the recordings name it
    relative to that folder (lhotse opens a relative source from the folder it runs in: run from the
    export folder); referenced audio by absolute path, with the clips' names in ``MANIFEST.json``.
    """
    rows = list(_rows(frame))
    splits = ("train", "dev", "test", UNASSIGNED)
    with _export(
        frame,
        out,
        "lhotse",
        copy_audio,
        progress,
        dataset_version=dataset_version,
        model_fingerprints=model_fingerprints,
    ) as export:
        for folder in splits:
            export.reserve(f"{folder}/{RECORDINGS}")
            export.reserve(f"{folder}/{SUPERVISIONS}")
        by_split: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
        for row in rows:
            split = _text(row.split)
            key = split if split in splits else UNASSIGNED
            if not _int(row.sample_rate) or _number(row.duration_s) is None:
                raise FormatError(f"clip {row.clip_id}: its sample rate or duration is unknown")
            recording = recording_dict(
                str(_clip_id(row.clip_id)),
                export.audio(row),
                sampling_rate=_int(row.sample_rate) or 0,
                duration_s=float(_number(row.duration_s) or 0.0),
                channels=_int(row.channels) or 1,
            )
            custom = {
                "label": _text(row.label),
                "tags": _tags(row.tags),
                "split": split,
                "original_name": _text(row.original_name),
                "sha256": _text(row.sha256),
                "clip_id": _clip_id(row.clip_id),
            }
            supervision = supervision_dict(
                recording, text=_text(row.transcript), metadata=_metadata(row.metadata), custom=custom
            )
            by_split.setdefault(key, []).append((recording, supervision))
            export.step()
        for split, pairs in by_split.items():
            for name, index in ((RECORDINGS, 0), (SUPERVISIONS, 1)):
                with export.gzipped_text(f"{split}/{name}") as sink:
                    for pair in pairs:
                        sink.write(_to_json(pair[index]) + "\n")
        return export.finish()


# ---------------------------------------------------------------- WebDataset


def _tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0  # the same clips give the same shard, byte for byte
    tar.addfile(info, io.BytesIO(data))


def write_webdataset(
    frame: pd.DataFrame,
    out: Path,
    *,
    copy_audio: bool = True,
    progress: Progress = None,
    shard_size: int = DEFAULT_SHARD_BYTES,
    dataset_version: str | None = None,
    model_fingerprints: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write WebDataset shards per split: ``train-000000.tar``, ``dev-000000.tar``… (``unassigned-…``
    for clips without a split), each under ``shard_size`` bytes (see
    :mod:`labeling.data.formats.webdataset_shards`). A sample is the clip's audio, as stored, under
    its original extension, and a ``.json`` of every field of the clip. The shards hold the audio, so
    ``copy_audio`` must be true.
    """
    if not copy_audio:
        raise FormatError("WebDataset shards hold the audio itself; export them with the audio copied")
    rows = list(_rows(frame))
    splits = ("train", "dev", "test", UNASSIGNED)
    by_split: dict[str, list[_Row]] = {}
    for row in rows:
        split = _text(row.split)
        by_split.setdefault(split if split in splits else UNASSIGNED, []).append(row)
    plan = ShardPlan(int(shard_size))
    with _export(
        frame,
        out,
        "webdataset",
        True,
        progress,
        dataset_version=dataset_version,
        model_fingerprints=model_fingerprints,
    ) as export:
        for split in splits:
            members = by_split.get(split, [])
            shard = 0
            plan.start()
            with _ExitStack() as stack:
                tar: tarfile.TarFile | None = None
                for row in members:
                    key = sample_key(_clip_id(row.clip_id))
                    try:
                        audio = read_url(str(row.audio_path))
                    except FileNotFoundError:
                        raise FormatError(
                            f"clip {row.clip_id}: its stored audio {row.audio_path} is missing"
                        ) from None
                    record = sample_json(
                        clip_id=_clip_id(row.clip_id),
                        sha256=_text(row.sha256),
                        original_name=_text(row.original_name),
                        duration_s=_number(row.duration_s),
                        sample_rate=_int(row.sample_rate),
                        channels=_int(row.channels),
                        split=_text(row.split),
                        label=_text(row.label),
                        transcript=_text(row.transcript),
                        tags=_tags(row.tags),
                        metadata=_metadata(row.metadata),
                    )
                    text = _to_json(record).encode("utf-8")
                    size = member_bytes(len(audio)) + member_bytes(len(text))
                    if tar is None or not plan.fits(size):
                        if tar is not None:
                            stack.close_last()
                            shard += 1
                        plan.start()
                        sink = stack.enter(export.binary(f"{split}-{shard:06d}.tar"))
                        tar = stack.enter(  # closed by the stack, with its file, when the shard is full
                            tarfile.open(fileobj=sink, mode="w|", format=tarfile.USTAR_FORMAT)  # noqa: SIM115
                        )
                    ext = audio_extension(_text(row.original_name) or str(row.audio_path))
                    _tar_member(tar, f"{key}.{ext}", audio)
                    _tar_member(tar, f"{key}.json", text)
                    plan.add(size)
                    export.step()
        return export.finish()


# ---------------------------------------------------------------- Common Voice

#: The columns of a Common Voice release's TSVs (release 17 on), in their order.
COMMONVOICE_COLUMNS = (
    "client_id",
    "path",
    "sentence_id",
    "sentence",
    "sentence_domain",
    "up_votes",
    "down_votes",
    "age",
    "gender",
    "accents",
    "variant",
    "locale",
    "segment",
)
#: Split → the TSV holding it; every clip is also in ``validated.tsv``, as in a release.
COMMONVOICE_TSVS = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}
COMMONVOICE_VALIDATED = "validated.tsv"
#: A clip without a speaker gets this ``client_id``: readers split lines on tabs after stripping
#: them, so an empty first cell would shift every column.
COMMONVOICE_NO_SPEAKER = "unknown"


#: What ends a cell or a line of an unquoted TSV for one reader or another.
_TSV_BREAKS = re.compile("[\t\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")


def _tsv_cell(value: str | None) -> str:
    """A TSV cell as Common Voice writes them: unquoted, so tabs and line breaks become spaces."""
    return _TSV_BREAKS.sub(" ", value) if value else ""


def write_commonvoice(
    frame: pd.DataFrame,
    out: Path,
    *,
    copy_audio: bool = True,
    progress: Progress = None,
    dataset_version: str | None = None,
    model_fingerprints: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write a Common Voice release's layout: the audio in ``clips/``, ``train.tsv``, ``dev.tsv``,
    ``test.tsv`` for the clips of each split and ``validated.tsv`` for every clip.

    Columns are :data:`COMMONVOICE_COLUMNS`, tab-separated and unquoted as Common Voice writes them.
    ``client_id`` is the clip's ``speaker`` metadata (``unknown`` without one), ``sentence`` its
    final transcript (tabs and line breaks made spaces; empty without one), ``path`` its file in
    ``clips/``; the other columns come from the metadata keys of the same name (votes ``0`` without
    one, since readers take them for numbers). Other metadata, labels and tags have no column.

    The audio is copied as stored, not converted to MP3: ``path`` names the file with its own
    extension (``.wav``, ``.flac``…), which lhotse's and Earmark's readers open as it is.
    """
    if not copy_audio:
        raise FormatError("a Common Voice release keeps its audio in clips/; export it with the audio copied")
    rows = list(_rows(frame))
    with _export(
        frame,
        out,
        "commonvoice",
        True,
        progress,
        dataset_version=dataset_version,
        model_fingerprints=model_fingerprints,
    ) as export:
        for name in (*COMMONVOICE_TSVS.values(), COMMONVOICE_VALIDATED):
            export.reserve(name)
        lines: dict[str, list[str]] = defaultdict(list)
        for row in rows:
            meta = _metadata(row.metadata)
            cells = {key: _tsv_cell(meta.get(key)) for key in COMMONVOICE_COLUMNS}
            cells["client_id"] = _tsv_cell(meta.get("speaker")) or COMMONVOICE_NO_SPEAKER
            cells["path"] = export.audio(row, "clips", flat=True)
            cells["sentence"] = _tsv_cell(_text(row.transcript))
            for votes in ("up_votes", "down_votes"):
                cells[votes] = cells[votes] if cells[votes].isdigit() else "0"
            line = "\t".join(cells[c] for c in COMMONVOICE_COLUMNS) + "\n"
            lines[COMMONVOICE_VALIDATED].append(line)
            tsv = COMMONVOICE_TSVS.get(_text(row.split) or "")
            if tsv is not None:
                lines[tsv].append(line)
            export.step()
        for name in (*COMMONVOICE_TSVS.values(), COMMONVOICE_VALIDATED):
            with export.text(name) as sink:
                sink.write("\t".join(COMMONVOICE_COLUMNS) + "\n")
                for line in lines[name]:
                    sink.write(line)
        return export.finish()


# ---------------------------------------------------------------- LibriSpeech

#: Split → the folder of its subset; clips without a split go in ``unassigned``.
LIBRISPEECH_SUBSETS = {"train": "train", "dev": "dev", "test": "test"}
#: Speaker and chapter of clips whose metadata has none.
LIBRISPEECH_NO_SPEAKER = "unknown"
LIBRISPEECH_NO_CHAPTER = "0"
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")
#: FLAC holds 8, 16 and 24-bit PCM; anything else (float, 32-bit) is written as 24-bit.
_FLAC_SUBTYPES = {"PCM_S8": "int16", "PCM_U8": "int16", "PCM_16": "int16", "PCM_24": "int32"}


def _librispeech_id(value: str | None, default: str) -> str:
    """A speaker or chapter id LibriSpeech readers can use: lhotse turns the ``-`` of an utterance
    id into folders, so ids hold letters, digits and ``_`` only."""
    text = _ID_UNSAFE.sub("_", value.strip()).strip("_") if value else ""
    return text or default


def _flac_bytes(source: str) -> bytes:
    """The clip's audio as FLAC: a FLAC file as it is, anything else decoded and re-encoded without
    loss of its samples (PCM kept at its bit depth)."""
    import soundfile as sf

    data = read_url(source)
    if data[:4] == b"fLaC":
        return data
    info = sf.info(io.BytesIO(data))
    dtype = _FLAC_SUBTYPES.get(info.subtype, "int32")
    subtype = "PCM_16" if dtype == "int16" else "PCM_24"
    samples, rate = sf.read(io.BytesIO(data), dtype=dtype, always_2d=True)
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="FLAC", subtype=subtype)
    return buffer.getvalue()


def write_librispeech(
    frame: pd.DataFrame,
    out: Path,
    *,
    copy_audio: bool = True,
    progress: Progress = None,
    dataset_version: str | None = None,
    model_fingerprints: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write OpenSLR's LibriSpeech layout: ``<subset>/<speaker>/<chapter>/`` holding
    ``<speaker>-<chapter>-<utterance>.flac`` and ``<speaker>-<chapter>.trans.txt``, a line
    ``<speaker>-<chapter>-<utterance> TRANSCRIPT`` per clip, and ``SPEAKERS.TXT`` beside the subsets.

    Subsets are named after the clips' ``subset`` metadata when it names their split (as a
    LibriSpeech import has it: ``train-clean-100``, ``dev-other``…), else after the split (``train``,
    ``dev``, ``test``; ``unassigned`` for clips without one). Speaker and chapter are the clips'
    ``speaker`` and ``chapter`` metadata, made of letters, digits and ``_`` (other characters become
    ``_``); a clip without a speaker goes under
    speaker ``unknown``, without a chapter under chapter ``0``. Utterances are numbered from 0000
    per speaker and chapter in clip order. Transcripts are upper-cased on one line, as LibriSpeech
    writes them; a clip without a transcript gets its audio but no line (LibriSpeech readers go by
    the lines and leave it out). ``SPEAKERS.TXT`` gives each speaker's sex (``F``/``M`` from the
    ``gender`` metadata), subset, minutes and the speaker's name as stored.

    The audio is FLAC, as LibriSpeech readers open ``<id>.flac``: FLAC clips are copied, others
    re-encoded, so their bytes (and SHA-256) differ from the stored ones. 8, 16 and 24-bit PCM keep
    every sample; float and 32-bit audio, which FLAC cannot hold, become 24-bit.
    """
    if not copy_audio:
        raise FormatError("a LibriSpeech tree holds its audio as FLAC files; export it with the audio copied")
    rows = list(_rows(frame))
    with _export(
        frame,
        out,
        "librispeech",
        True,
        progress,
        dataset_version=dataset_version,
        model_fingerprints=model_fingerprints,
    ) as export:
        export.reserve("SPEAKERS.TXT")
        chapters: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        speakers: dict[str, dict[str, Any]] = {}
        taken: dict[str, str] = {}
        for row in rows:
            meta = _metadata(row.metadata)
            name = meta.get("speaker")
            speaker = _librispeech_id(name, LIBRISPEECH_NO_SPEAKER)
            if name is not None and taken.setdefault(speaker, name) != name:
                raise FormatError(
                    f"the speakers {taken[speaker]!r} and {name!r} both become {speaker!r} in a "
                    "LibriSpeech tree (ids hold letters, digits and _); rename one in the metadata"
                )
            chapter = _librispeech_id(meta.get("chapter"), LIBRISPEECH_NO_CHAPTER)
            split = _text(row.split)
            subset = meta.get("subset")
            if not subset or split_from_words(subset) != split:
                subset = LIBRISPEECH_SUBSETS.get(split or "", UNASSIGNED)
            subset = safe_name(subset)
            lines = chapters[(subset, speaker, chapter)]
            utt = f"{speaker}-{chapter}-{len(lines):04d}"
            folder = f"{subset}/{speaker}/{chapter}"
            try:
                audio = _flac_bytes(str(row.audio_path))
            except FileNotFoundError:
                raise FormatError(
                    f"clip {row.clip_id}: its stored audio {row.audio_path} is missing"
                ) from None
            with export.binary(f"{folder}/{utt}.flac") as sink:
                sink.write(audio)
            text = _text(row.transcript)
            lines.append(f"{utt} {' '.join(text.upper().split())}\n" if text else "")
            who = speakers.setdefault(
                speaker, {"sex": _sex(meta.get("gender")), "subset": subset, "seconds": 0.0, "name": name}
            )
            who["sex"] = who["sex"] or _sex(meta.get("gender"))
            who["seconds"] += float(_number(row.duration_s) or 0.0)
            export.step()
        for (subset, speaker, chapter), lines in chapters.items():
            with export.text(f"{subset}/{speaker}/{chapter}/{speaker}-{chapter}.trans.txt") as sink:
                for line in lines:
                    sink.write(line)
        with export.text("SPEAKERS.TXT") as sink:
            sink.write(";ID |SEX| SUBSET | MINUTES | NAME\n")
            for speaker, who in speakers.items():
                name = " ".join(str(who["name"] or "").replace("|", "/").split())
                sink.write(
                    f"{speaker} | {who['sex']} | {who['subset']} | {who['seconds'] / 60:.2f} | {name}\n"
                )
        return export.finish()


def _sex(gender: str | None) -> str:
    """LibriSpeech's ``F``/``M`` for a gender value, or the value itself when it is neither."""
    text = " ".join((gender or "").replace("|", "/").split())
    low = text.lower()
    if low.startswith(("female", "woman")) or low == "f":
        return "F"
    if low.startswith(("male", "man")) or low == "m":
        return "M"
    return text


# ---------------------------------------------------------------- one row per annotation

#: Columns of ``annotations.csv``.
ANNOTATION_TABLE_COLUMNS = (
    "sha256",
    "file_name",
    "split",
    "annotator",
    "label",
    "transcript",
    "tags",
    "unsure",
    "time_spent_ms",
    "convention_version",
    "created_at",
    "updated_at",
    "cannot_label_reason",
)


def _timestamp(value: Any) -> str | None:
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, datetime):
        stamp = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return stamp.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)


def write_annotations(
    frame: pd.DataFrame,
    out: Path,
    *,
    copy_audio: bool = False,
    progress: Progress = None,
    annotations: pd.DataFrame | None = None,
    dataset_version: str | None = None,
    model_fingerprints: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write ``annotations.csv``: one row per annotation of the exported clips, for agreement work in
    R or a spreadsheet. No audio.

    Columns: the clip's ``sha256``, its original name as ``file_name``, ``split``, ``annotator``,
    ``label``, ``transcript``, ``tags`` (``;``-separated), ``unsure`` (true/false),
    ``time_spent_ms``, ``convention_version``, ``created_at`` and ``updated_at`` (when it was last
    submitted; UTC, ISO 8601) and ``cannot_label_reason``. The cells are made safe for spreadsheets as
    in :func:`write_csv` (``MANIFEST.json`` says so), and Earmark's labels import reads the file back
    as annotations, every column kept, each clip found by its ``sha256``.
    """
    rows = {r.clip_id: r for r in _rows(frame)}
    columns = ("clip_id", *ANNOTATION_TABLE_COLUMNS[3:])
    with _export(
        frame,
        out,
        "annotations",
        False,
        progress,
        dataset_version=dataset_version,
        model_fingerprints=model_fingerprints,
    ) as export:
        export.escaped_csv.append("annotations.csv")
        with export.text("annotations.csv") as sink:
            sink.write(_sheet_line([safe_cell(c) for c in ANNOTATION_TABLE_COLUMNS]))
            if annotations is not None and not annotations.empty:
                present = [c for c in columns if c in annotations.columns]
                for values in zip(*(annotations[c].tolist() for c in present), strict=True):
                    ann = dict(zip(present, values, strict=True))
                    row = rows.get(ann["clip_id"])
                    if row is None:
                        continue
                    spent = _int(ann.get("time_spent_ms"))
                    convention = _int(ann.get("convention_version"))
                    cells = [
                        _text(row.sha256),
                        _text(row.original_name),
                        _text(row.split),
                        _text(ann.get("annotator")),
                        _text(ann.get("label")),
                        _text(ann.get("transcript")),
                        _tags_cell(_tags(ann.get("tags"))),
                        bool(ann.get("unsure")),
                        spent,
                        convention,
                        _timestamp(ann.get("created_at")),
                        _timestamp(ann.get("updated_at")),
                        _text(ann.get("cannot_label_reason")),
                    ]
                    sink.write(_sheet_line([safe_cell(c) for c in cells]))
            for _ in rows:
                export.step()
        return export.finish()


#: Writers by the name ``earmark export --format`` uses.
WRITERS: dict[str, Callable[..., list[Path]]] = {
    "csv": write_csv,
    "jsonl": write_jsonl,
    "audiofolder": write_audiofolder,
    "nemo": write_nemo,
    "kaldi": write_kaldi,
    "labelstudio": write_labelstudio,
    "lhotse": write_lhotse,
    "webdataset": write_webdataset,
    "commonvoice": write_commonvoice,
    "librispeech": write_librispeech,
    "annotations": write_annotations,
}
