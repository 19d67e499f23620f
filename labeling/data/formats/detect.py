"""Which format a source is in, for ``--format auto``: call :func:`detect_format`.

It looks only at names and the first bytes (the first task, line or header row), so it is quick on
large files; the reader chosen then reads the whole source carefully. The answer may be a variant
(``labelstudio_min``, ``labelstudio_csv``, ``zip``) of a format users name with ``--format``
(:data:`CHOICES`).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labeling.data.formats._common import UTF8_BOM, sniff_delimiter
from labeling.data.formats.audiofolder import read_audiofolder
from labeling.data.formats.base import FormatError, ImportPlan
from labeling.data.formats.commonvoice import read_commonvoice
from labeling.data.formats.kaldi import is_kaldi_dir, read_kaldi
from labeling.data.formats.labelstudio import read_labelstudio, read_labelstudio_csv, read_labelstudio_min
from labeling.data.formats.labelstudio_asr import MANIFEST_NAME as ASR_MANIFEST
from labeling.data.formats.labelstudio_asr import is_labelstudio_asr, read_labelstudio_asr
from labeling.data.formats.librispeech import is_librispeech_tree, read_librispeech
from labeling.data.formats.nemo import read_nemo

#: What :func:`detect_format` answers.
FORMATS = (
    "folder",
    "zip",
    "labelstudio",
    "labelstudio_min",
    "labelstudio_csv",
    "labelstudio_asr",
    "commonvoice",
    "audiofolder",
    "nemo",
    "kaldi",
    "librispeech",
)
#: What users name with ``--format``: every answer above is one of these or a variant of one.
CHOICES = ("folder", "labelstudio", "commonvoice", "audiofolder", "nemo", "kaldi", "librispeech")
#: Formats whose reader takes a folder.
FOLDER_READERS = frozenset({"audiofolder", "kaldi", "librispeech", "labelstudio_asr"})
#: Options each format's reader takes beyond ``audio_root`` (``--config``, ``--path-map``, …).
READER_OPTIONS: dict[str, frozenset[str]] = {
    "labelstudio": frozenset(
        {"config", "users", "classes", "tag_groups", "label_from", "transcript_from", "audio_key"}
    ),
    "nemo": frozenset({"path_map"}),
    "kaldi": frozenset({"path_map"}),
}
#: Readers of the formats above, by name; ``folder`` and ``zip`` are read by
#: :mod:`labeling.data.formats.folder`.
READERS: dict[str, Callable[..., ImportPlan]] = {
    "labelstudio": read_labelstudio,
    "labelstudio_min": read_labelstudio_min,
    "labelstudio_csv": read_labelstudio_csv,
    "labelstudio_asr": read_labelstudio_asr,
    "commonvoice": read_commonvoice,
    "audiofolder": read_audiofolder,
    "nemo": read_nemo,
    "kaldi": read_kaldi,
    "librispeech": read_librispeech,
}
METADATA_NAMES = ("metadata.csv", "metadata.jsonl")
#: Columns only Label Studio's CSV export has beside the task data and the controls.
LABELSTUDIO_CSV_MARKERS = frozenset({"annotator", "annotation_id", "lead_time"})
COMMONVOICE_COLUMNS = frozenset({"path", "sentence"})
_PEEK = 1 << 20
_PEEK_MAX = 64 << 20


def detect_format(path: Path) -> str:
    """Name the format of ``path``: one of :data:`FORMATS`.

    A folder is ``audiofolder`` when it (or a split folder in it) holds ``metadata.csv`` or
    ``metadata.jsonl``, ``commonvoice`` when it holds a Common Voice TSV beside ``clips/``, and a
    plain ``folder`` otherwise. Files are told apart by their first task, line or header.
    """
    path = Path(path)
    if path.is_dir():
        return _folder_format(path)
    if not path.is_file():
        raise FormatError(f"{path} does not exist")
    with path.open("rb") as f:
        head = f.read(_PEEK)
    if head.startswith(b"PK\x03\x04") or (path.suffix.lower() == ".zip" and zipfile.is_zipfile(path)):
        return "zip"
    suffix = path.suffix.lower()
    text = head.removeprefix(UTF8_BOM).decode("utf-8", errors="replace")
    if suffix in (".csv", ".tsv"):
        return _table_format(path, text, sniff_delimiter(path, "\t" if suffix == ".tsv" else ","))
    stripped = text.lstrip()
    if stripped.startswith("["):
        return _json_array_format(path, head)
    if stripped.startswith("{"):
        return _json_object_format(path, head, text)
    raise FormatError(_unknown(path))


def _unknown(path: Path) -> str:
    return (
        f"could not tell the format of {path.name}; name it with --format (one of {', '.join(CHOICES)}; "
        "or csv for labels of clips the project already holds)"
    )


def _folder_format(path: Path) -> str:
    folders = [path] + [p for p in sorted(path.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    if any((folder / name).is_file() for folder in folders for name in METADATA_NAMES):
        return "audiofolder"
    if (path / "clips").is_dir():
        for tsv in sorted(path.glob("*.tsv")):
            header = _first_line(tsv).split("\t")
            if {h.strip() for h in header} >= COMMONVOICE_COLUMNS:
                return "commonvoice"
    if is_kaldi_dir(path):
        return "kaldi"
    if is_librispeech_tree(path):
        return "librispeech"
    if (path / ASR_MANIFEST).is_file() and is_labelstudio_asr(path / ASR_MANIFEST):
        return "labelstudio_asr"  # Label Studio's ASR_MANIFEST export, unpacked
    if _holds_nemo_manifests(path):
        return "nemo"
    return "folder"


def _holds_nemo_manifests(path: Path) -> bool:
    """A folder of NeMo manifests: a JSON (Lines) file whose first line names an ``audio_filepath``."""
    for candidate in sorted(path.iterdir())[:1000]:
        if candidate.suffix.lower() not in (".json", ".jsonl") or candidate.name == "MANIFEST.json":
            continue
        if not candidate.is_file():
            continue
        try:
            first = json.loads(_first_line(candidate) or "null")
        except json.JSONDecodeError:
            continue
        if isinstance(first, dict) and "audio_filepath" in first:
            return True
    return False


def _first_line(path: Path) -> str:
    with path.open("rb") as f:
        head = f.readline(_PEEK)
    return head.removeprefix(UTF8_BOM).decode("utf-8", errors="replace").rstrip("\r\n")


def _table_format(path: Path, text: str, delimiter: str) -> str:
    header = {h.strip().strip('"') for h in text.splitlines()[0].split(delimiter)} if text else set()
    if header >= COMMONVOICE_COLUMNS and delimiter == "\t":
        return "commonvoice"
    if header & LABELSTUDIO_CSV_MARKERS:
        return "labelstudio_csv"
    if "file_name" in header or any(h.endswith("_file_name") for h in header):
        return "audiofolder"
    if header >= COMMONVOICE_COLUMNS:
        return "commonvoice"
    raise FormatError(_unknown(path))


def _read_more(path: Path, head: bytes) -> str | None:
    """The first ``_PEEK_MAX`` bytes as text when the file is longer than ``head``."""
    if path.stat().st_size <= len(head):
        return None
    with path.open("rb") as f:
        return f.read(_PEEK_MAX).removeprefix(UTF8_BOM).decode("utf-8", errors="replace")


def _first_value(text: str, start: int) -> Any:
    return json.JSONDecoder().raw_decode(text, start)[0]


def _json_array_format(path: Path, head: bytes) -> str:
    text = head.removeprefix(UTF8_BOM).decode("utf-8", errors="replace")
    start = text.index("[") + 1
    while start < len(text) and text[start].isspace():
        start += 1
    if text[start : start + 1] == "]":
        return "labelstudio"  # an export of no tasks
    try:
        first = _first_value(text, start)
    except json.JSONDecodeError:
        more = _read_more(path, head)
        if more is None:
            raise FormatError(f"{path.name} is not valid JSON") from None
        try:
            first = _first_value(more, start)
        except json.JSONDecodeError:
            raise FormatError(f"{path.name} is not valid JSON, or its first task is enormous") from None
    if isinstance(first, dict) and isinstance(first.get("data"), dict):
        return "labelstudio"
    if isinstance(first, dict):
        return "labelstudio_min"
    raise FormatError(_unknown(path))


def _json_object_format(path: Path, head: bytes, text: str) -> str:
    first_line = text.lstrip().split("\n", 1)[0]
    try:
        first = json.loads(first_line)
    except json.JSONDecodeError:
        first = None  # a pretty-printed object: a single Label Studio task, perhaps
    if isinstance(first, dict):
        if "audio_filepath" in first:
            # Label Studio's ASR_MANIFEST is NeMo-shaped, one line per annotation, with its annotator
            return "labelstudio_asr" if "annotator" in first else "nemo"
        if "file_name" in first or any(k.endswith("_file_name") for k in first):
            return "audiofolder"
        if isinstance(first.get("data"), dict):
            return "labelstudio"
        raise FormatError(_unknown(path))
    start = text.index("{")
    try:
        obj = _first_value(text, start)
    except json.JSONDecodeError:
        more = _read_more(path, head)
        try:
            obj = _first_value(more, start) if more is not None else None
        except json.JSONDecodeError:
            obj = None
    if isinstance(obj, dict) and isinstance(obj.get("data"), dict):
        return "labelstudio"
    raise FormatError(_unknown(path))
