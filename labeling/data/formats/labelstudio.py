"""Label Studio exports of audio tasks: call :func:`read_labelstudio`.

It reads every export Label Studio makes of a classification/transcription project and tells them
apart by content: the JSON export (from the UI: ``completed_by`` is a user id and ``predictions`` are
ids; or a snapshot: ``completed_by`` is an object with an ``email`` and predictions are full objects
with ``model_version``, ``score`` and ``result``), JSON_MIN (one flat object per annotation), and the
CSV/TSV export (JSON_MIN's fields as columns, lists written as JSON text; the delimiter is sniffed,
since Label Studio names its TSV download ``.csv`` too).

How results map onto Earmark:

* the label is the first single ``choices`` control (the labeling config's, given with ``config``),
  the transcript the first ``textarea``;
* a ``choices`` control whose name contains "tag" gives tags as they are; any further ``choices``
  control gives tags ``"<control>:<choice>"`` (``noise:car``), the grouped tags of a project;
* each annotator's annotation is an :class:`~labeling.data.formats.base.ExternalAnnotation`; one marked
  ``ground_truth`` is also the clip's imported final label; Earmark's own final labels (written by
  Earmark's export as the pseudo-annotator of :mod:`labeling.data.formats.identities`) are final labels
  only, never somebody's annotation;
* full predictions become :class:`~labeling.data.formats.base.ExternalPrediction` (model = its
  ``model_version``); cancelled (skipped) annotations and prediction ids are reported, not imported;
* a ``choices`` control named ``unsure`` (Earmark's export adds one) marks the annotation unsure;
* results of a time region (a value with ``start`` and ``end``: ``labels``, or a per-region choice or
  text) are counted and reported, never read as the whole clip's label; :func:`read_labelstudio_regions`
  reads them as regions, for a ``regions`` project.

Transcripts are kept as written (leading and trailing spaces too); labels and tags are trimmed. The
tags a labeling config offers become the plan's ``declared_tags``, so the project's tag vocabulary
comes back with them.

JSON_MIN and CSV carry no result types: a single choice is a plain string (``"digit": "0"``) and a
multiple choice a list, side by side with the task data. Which column is what comes from the
labeling config (``config``, or ``label_config.xml`` beside the export); without it, from the
project's classes and tags (``classes``, ``tag_groups``): a column whose values are classes is the
label, one whose values are tags gives tags. A column that differs between the annotators of one
task is an annotation too; when it cannot be placed, or nothing could, the reader refuses and asks
for the config. The plan's warnings say which column became what.

Annotators are named as :mod:`labeling.data.formats.identities` says (``labelstudio:<e-mail>``,
``labelstudio-user-<id>``, or the Earmark name an Earmark-made address encodes); ``users`` (Label
Studio's user list, ``/api/users``) turns the ids of a UI export into e-mails.

Audio named ``/data/upload/<project>/<8 hex>-<name>`` is looked up by name under ``audio_root`` (the
folder the user names: Label Studio's upload folder or the folder the files were uploaded from);
``/data/local-files/?d=<path>`` by that path, or its tail, under ``audio_root``. Other URLs are never
fetched.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pandas as pd

from labeling.data.formats._common import (
    DEFAULT_LIMITS,
    Refused,
    Resolver,
    Table,
    check_size,
    clean_text,
    decode_utf8,
    keep_text,
    load_json,
    referenced_audio,
    sniff_delimiter,
    split_from_words,
    text_value,
)
from labeling.data.formats.base import (
    SPLITS,
    ExternalAnnotation,
    ExternalPrediction,
    FormatError,
    ImportPlan,
    Problem,
    ReadLimits,
    SourceItem,
)
from labeling.data.formats.identities import FINAL_LABEL, LABELSTUDIO_USER, identity_from_email

REMOTE_REFUSED = (
    "remote URL not fetched (Earmark never downloads audio): download it, name its folder with --audio-root"
)
UPLOAD_PREFIX = re.compile(r"^[0-9a-fA-F]{8}-(.+)$")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aif", ".aiff", ".webm")
#: Columns JSON_MIN and CSV exports add beside the task data and the controls.
MIN_META_KEYS = frozenset(
    {"id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time", "agreement", "drafts"}
)
LABEL_NAMES = frozenset({"label", "labels", "class", "category", "choice", "choices", "intent", "sentiment"})
TRANSCRIPT_NAMES = frozenset({"transcription", "transcript", "text", "sentence"})
ANONYMOUS = "labelstudio-anonymous-{}"
USER = LABELSTUDIO_USER
CONFIG_NAME = "label_config.xml"
#: A task data field Earmark's export writes when the audio's file name is not the clip's name.
ORIGINAL_NAME = "original_name"
#: The control (and its one choice) marking an annotation its annotator was unsure of.
UNSURE = "unsure"
#: What a result of a time region is read as: counted, not imported.
REGION = "region"
_AUDIO_TAGS = frozenset({"audio", "audioplus"})


@dataclass
class _Result:
    from_name: str
    kind: str  # Label Studio's result type, lower case
    values: list[str]


@dataclass
class _Annotation:
    annotator: str | None
    results: list[_Result]
    ground_truth: bool = False
    updated: str = ""
    ref: str = ""
    user_id: int | None = None  # Label Studio's id, when that is all the export says


@dataclass
class _Prediction:
    model: str
    score: float | None
    results: list[_Result]


@dataclass
class _Task:
    ref: str
    data: dict[str, Any]
    annotations: list[_Annotation] = field(default_factory=list)
    predictions: list[_Prediction] = field(default_factory=list)


# ---------------------------------------------------------------- the labeling config


@dataclass(frozen=True)
class Control:
    """One ``<Choices>`` or ``<TextArea>`` of a labeling config."""

    name: str
    kind: str  # "choices" or "textarea"
    multiple: bool = False
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelConfig:
    """What Earmark needs of a Label Studio labeling config: the audio fields and the controls."""

    audio_keys: tuple[str, ...]
    controls: tuple[Control, ...]

    @property
    def label(self) -> Control | None:
        """The label: the first single choice not named like tags, else the first single choice."""
        single = [c for c in self.controls if c.kind == "choices" and not c.multiple]
        return next((c for c in single if not _is_tag_control(c.name)), single[0] if single else None)

    def control(self, name: str) -> Control | None:
        return next((c for c in self.controls if c.name == name), None)


def read_label_config(source: Path | str, *, limits: ReadLimits = DEFAULT_LIMITS) -> LabelConfig:
    """Parse a labeling config (``label_config.xml``, or its text) into a :class:`LabelConfig`.

    Document type declarations are refused (no entity may expand), as is anything but ``<View>``.
    """
    import xml.etree.ElementTree as ET

    if isinstance(source, Path):
        if not source.is_file():
            raise FormatError(f"the labeling config {source} does not exist")
        check_size(source, 16 * 1024**2, "labeling config")
        name, text = source.name, decode_utf8(source.read_bytes(), source.name)
    else:
        name, text = "the labeling config", source
    if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        raise FormatError(f"{name} declares a document type or entities; a labeling config has none")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise FormatError(f"{name} is not a labeling config Earmark reads: {exc}") from None
    if root.tag.lower() != "view":
        raise FormatError(f"{name} is not a Label Studio labeling config (it does not start with <View>)")
    audio: list[str] = []
    controls: list[Control] = []
    for element in root.iter():
        tag = element.tag.lower() if isinstance(element.tag, str) else ""
        if tag in _AUDIO_TAGS:
            value = element.get("value", "")
            if value.startswith("$") and value[1:] not in audio:
                audio.append(value[1:])
        elif tag in ("choices", "textarea") and element.get("name"):
            values = []
            for child in element.iter():
                if isinstance(child.tag, str) and child.tag.lower() == "choice":
                    choice = child.get("alias") or child.get("value")
                    if choice and choice not in values:
                        values.append(choice)
            controls.append(
                Control(
                    name=str(element.get("name")),
                    kind=tag,
                    multiple=tag == "choices" and element.get("choice", "single").lower() == "multiple",
                    values=tuple(values),
                )
            )
    return LabelConfig(audio_keys=tuple(audio), controls=tuple(controls))


def read_users(
    source: Path | Mapping[Any, Any] | None, *, limits: ReadLimits = DEFAULT_LIMITS
) -> dict[int, str]:
    """Label Studio user id → e-mail, from its user list (the JSON ``/api/users`` answers, or a CSV
    with ``id`` and ``email`` columns) or a mapping."""
    if source is None:
        return {}
    if isinstance(source, Mapping):
        return {int(k): str(v) for k, v in source.items() if str(k).strip().isdigit()}
    path = Path(source)
    if not path.is_file():
        raise FormatError(f"the Label Studio user list {path} does not exist")
    if path.suffix.lower() in (".csv", ".tsv"):
        table = Table(path, limits, delimiter=sniff_delimiter(path))
        id_column, email_column = table.require(["id"], ["email"])
        rows = [row for _, row in table if row is not None]
        pairs: list[tuple[Any, Any]] = [(r[id_column], r[email_column]) for r in rows]
    else:
        doc = load_json(path, limits)
        if isinstance(doc, dict):
            doc = doc.get("results", doc.get("users"))
        if not isinstance(doc, list):
            raise FormatError(
                f"{path.name} is not a Label Studio user list (a list of users with id and email)"
            )
        pairs = [(u.get("id"), u.get("email")) for u in doc if isinstance(u, dict)]
    users: dict[int, str] = {}
    for user_id, email in pairs:
        if isinstance(user_id, bool) or not isinstance(email, str) or not email.strip():
            continue
        text = str(user_id).strip()
        if text.isdigit():
            users[int(text)] = email.strip()
    if not users:
        raise FormatError(f"{path.name} lists no user with an id and an e-mail")
    return users


def _config_beside(path: Path, limits: ReadLimits) -> LabelConfig | None:
    beside = path.parent / CONFIG_NAME
    return read_label_config(beside, limits=limits) if beside.is_file() else None


def read_labelstudio(
    path: Path,
    *,
    audio_root: Path | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
    audio_key: str | None = None,
    label_from: str | None = None,
    transcript_from: str | None = None,
    user_names: Mapping[int | str, str] | None = None,
    config: Path | str | LabelConfig | None = None,
    users: Path | Mapping[Any, Any] | None = None,
    classes: Sequence[str] = (),
    tag_groups: Mapping[str, Sequence[str]] | None = None,
) -> ImportPlan:
    """Read any Label Studio export (JSON, JSON_MIN, CSV or TSV) of audio tasks.

    Parameters
    ----------
    path
        The exported file.
    audio_root
        The folder holding the audio (default: the export's folder). Nothing outside it is read.
    audio_key
        The task data field holding the audio reference (default: the config's ``<Audio>`` field,
        ``audio``, else the first field that looks like one).
    label_from, transcript_from
        Control names (``from_name``) to take the label and transcript from, when the first
        ``choices``/``textarea`` control is not the one meant.
    user_names
        Label Studio user id (or email) → Earmark annotator name, overriding the identities below.
    config
        The project's labeling config (``label_config.xml``): which fields are controls, which
        choice is the label, and every class (``declared_classes`` of the plan). Default: a
        ``label_config.xml`` beside the export.
    users
        Label Studio's user list (``/api/users`` JSON, or a CSV of ``id,email``): a UI export names
        annotators by id only, and this turns them into the people they are.
    classes, tag_groups
        The project's classes and tag vocabulary, to tell JSON_MIN and CSV columns apart without a
        config.
    """
    path = Path(path)
    _check_file(path)
    options = _Options(
        audio_key=audio_key,
        label_from=label_from,
        transcript_from=transcript_from,
        user_names=dict(user_names or {}),
        users=read_users(users, limits=limits),
        config=_config(config, path, limits),
        config_given=config is not None,
        classes=tuple(classes),
        tag_groups={str(g): tuple(v) for g, v in (tag_groups or {}).items()},
    )
    if path.suffix.lower() in (".csv", ".tsv"):
        return _read_table(path, audio_root, limits, options)
    doc = load_json(path, limits)
    if isinstance(doc, dict):
        if not isinstance(doc.get("data"), dict):
            raise FormatError(f"{path.name} is not a Label Studio export: it should hold a list of tasks")
        doc = [doc]  # one task on its own
    if not isinstance(doc, list):
        raise FormatError(f"{path.name} is not a Label Studio export: it should hold a list of tasks")
    problems: list[Problem] = []
    warnings: list[Problem] = []
    if any(isinstance(t, dict) and isinstance(t.get("data"), dict) for t in doc):
        tasks = _full_tasks(doc, problems, options)
        used = {
            r.from_name
            for t in tasks
            for results in [*(a.results for a in t.annotations), *(p.results for p in t.predictions)]
            for r in results
        }
        _check_config(options, used, warnings)
        return _plan(path, tasks, problems, warnings, audio_root, options, "labelstudio", limits)
    records = _min_records(doc, problems)
    _check_config(options, {k for r in records for k in r}, warnings)
    columns = _min_columns(path, records, options, warnings)
    tasks = _min_tasks(records, columns, options)
    return _plan(path, tasks, problems, warnings, audio_root, options, "labelstudio_min", limits, columns)


def _check_config(options: _Options, used: set[str], warnings: list[Problem]) -> None:
    """A config about other controls is refused when named, and left aside when merely found beside."""
    config = options.config
    if config is None or not used or any(c.name in used for c in config.controls):
        return
    names = ", ".join(repr(c.name) for c in config.controls) or "no controls"
    if options.config_given:
        raise FormatError(
            f"the labeling config names {names}, none of which this export holds (it holds "
            f"{', '.join(map(repr, sorted(used)[:10]))}); is it the config of another project?"
        )
    warnings.append(Problem(CONFIG_NAME, f"beside the export but about other controls ({names}); not used"))
    options.config = None


@dataclass
class _Options:
    audio_key: str | None = None
    label_from: str | None = None
    transcript_from: str | None = None
    user_names: dict[int | str, str] = field(default_factory=dict)
    users: dict[int, str] = field(default_factory=dict)
    config: LabelConfig | None = None
    config_given: bool = False  # named by the user, not found beside the export
    classes: tuple[str, ...] = ()
    tag_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _config(config: Path | str | LabelConfig | None, path: Path, limits: ReadLimits) -> LabelConfig | None:
    if isinstance(config, LabelConfig):
        return config
    if isinstance(config, str) and config.lstrip().startswith("<"):
        return read_label_config(config, limits=limits)
    if config is not None:
        return read_label_config(Path(config), limits=limits)
    return _config_beside(path, limits)


def read_labelstudio_min(path: Path, **kwargs: Any) -> ImportPlan:
    """Read a JSON_MIN export (see :func:`read_labelstudio`, which recognises it by itself)."""
    return read_labelstudio(path, **kwargs)


def read_labelstudio_csv(path: Path, **kwargs: Any) -> ImportPlan:
    """Read a Label Studio CSV (or TSV) export (see :func:`read_labelstudio`, which recognises it by
    its name): JSON_MIN's fields as columns, one row per annotation."""
    return read_labelstudio(path, **kwargs)


def _read_table(path: Path, audio_root: Path | None, limits: ReadLimits, options: _Options) -> ImportPlan:
    default = "\t" if path.suffix.lower() == ".tsv" else ","
    table = Table(path, limits, delimiter=sniff_delimiter(path, default), strip=False)
    problems: list[Problem] = []
    records = []
    for line, row in table:
        if row is None:
            problems.append(Problem(f"line {line}", "more cells than the header has columns; row skipped"))
            continue
        record: dict[str, Any] = {}
        for key, cell in row.items():
            if not cell.strip():
                continue
            if cell.lstrip()[:1] in "{[":
                try:
                    record[key] = json.loads(cell)
                    continue
                except json.JSONDecodeError:
                    pass
            record[key] = cell
        record["__ref"] = f"line {line}"
        records.append(record)
    warnings: list[Problem] = []
    _check_config(options, set(table.header), warnings)
    columns = _min_columns(path, records, options, warnings)
    tasks = _min_tasks(records, columns, options)
    return _plan(path, tasks, problems, warnings, audio_root, options, "labelstudio_csv", limits, columns)


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise FormatError(f"{path} is a folder; name the file Label Studio exported")
    if not path.is_file():
        raise FormatError(f"{path} does not exist")


# ---------------------------------------------------------------- annotators


def _annotator(completed_by: Any, options: _Options) -> tuple[str | None, int | None]:
    """``(annotator name, Label Studio user id)`` of an annotation's ``completed_by``."""
    names = options.user_names
    user_id: Any = None
    email = None
    if isinstance(completed_by, dict):
        user_id = completed_by.get("id")
        email = completed_by.get("email") if isinstance(completed_by.get("email"), str) else None
    elif isinstance(completed_by, bool) or completed_by is None:
        return None, None
    elif isinstance(completed_by, int):
        user_id = completed_by
    elif isinstance(completed_by, float) and completed_by.is_integer():
        user_id = int(completed_by)
    elif isinstance(completed_by, str) and completed_by.strip():
        text = completed_by.strip()
        if text.isdigit():
            user_id = int(text)
        else:
            email = text
    if isinstance(user_id, bool) or not isinstance(user_id, int):
        user_id = None
    for key in (user_id, str(user_id) if user_id is not None else None, email):
        if key is not None and key in names:
            return str(names[key]), user_id
    if not (email and email.strip()) and user_id is not None:
        email = options.users.get(user_id)
    if email and email.strip():
        return identity_from_email(email), user_id
    return (USER.format(user_id), user_id) if user_id is not None else (None, None)


# ---------------------------------------------------------------- full JSON


def _results(raw: Any, where: str, problems: list[Problem]) -> list[_Result]:
    if not isinstance(raw, list):
        if raw is not None:
            problems.append(Problem(where, "its result is not a list; ignored"))
        return []
    out = []
    for item in raw:
        if not isinstance(item, dict):
            problems.append(Problem(where, "a result item is not an object; ignored"))
            continue
        kind = str(item.get("type") or "").lower()
        name = item.get("from_name")
        value = item.get("value")
        if not isinstance(name, str) or not isinstance(value, dict):
            problems.append(Problem(where, "a result item has no from_name or value; ignored"))
            continue
        if _is_region(value):
            out.append(_Result(name, REGION, [kind or "untyped"]))
            continue
        if kind == "choices":
            values = value.get("choices")
        elif kind == "textarea":
            values = value.get("text")
            values = [values] if isinstance(values, str) else values
        else:
            out.append(_Result(name, kind, []))
            continue
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            problems.append(Problem(where, f"the {kind} result of {name!r} is not a list of text; ignored"))
            continue
        out.append(_Result(name, kind, values))
    return out


def _is_region(value: Any) -> bool:
    """A result value (or a JSON_MIN cell's item) about a stretch of time: it has a start and an end."""
    return isinstance(value, dict) and "start" in value and "end" in value


def _full_tasks(doc: list[Any], problems: list[Problem], options: _Options) -> list[_Task]:
    tasks: list[_Task] = []
    prediction_ids = 0
    for index, raw in enumerate(doc, start=1):
        task_id = raw.get("id") if isinstance(raw, dict) else None
        ref = f"task {task_id}" if isinstance(task_id, (int, str)) and task_id != "" else f"task #{index}"
        if not isinstance(raw, dict) or not isinstance(raw.get("data"), dict):
            problems.append(Problem(ref, "not a Label Studio task (no data object); skipped"))
            continue
        task = _Task(ref=ref, data=raw["data"])
        annotations = raw.get("annotations", raw.get("completions")) or []
        if not isinstance(annotations, list):
            problems.append(Problem(ref, "its annotations are not a list; none imported"))
            annotations = []
        for raw_ann in annotations:
            if not isinstance(raw_ann, dict):
                problems.append(Problem(ref, "an annotation is not an object; skipped"))
                continue
            ann_ref = f"{ref}, annotation {raw_ann.get('id', '?')}"
            annotator, user_id = _annotator(raw_ann.get("completed_by"), options)
            if raw_ann.get("was_cancelled") is True or raw_ann.get("skipped") is True:
                who = f" by {annotator}" if annotator else ""
                problems.append(Problem(ann_ref, f"cancelled (skipped){who} in Label Studio; not imported"))
                continue
            updated = raw_ann.get("updated_at") or raw_ann.get("created_at") or ""
            task.annotations.append(
                _Annotation(
                    annotator=annotator,
                    results=_results(raw_ann.get("result"), ann_ref, problems),
                    ground_truth=raw_ann.get("ground_truth") is True,
                    updated=updated if isinstance(updated, str) else "",
                    ref=ann_ref,
                    user_id=user_id,
                )
            )
        predictions = raw.get("predictions") or []
        if not isinstance(predictions, list):
            problems.append(Problem(ref, "its predictions are not a list; none imported"))
            predictions = []
        for pred in predictions:
            if isinstance(pred, int) and not isinstance(pred, bool):
                prediction_ids += 1
                continue
            if not isinstance(pred, dict):
                problems.append(Problem(ref, "a prediction is neither an id nor an object; skipped"))
                continue
            model = pred.get("model_version")
            score = pred.get("score")
            number = score if isinstance(score, (int, float)) and not isinstance(score, bool) else None
            task.predictions.append(
                _Prediction(
                    model=str(model).strip() if model not in (None, "") else "labelstudio",
                    score=float(number) if number is not None and math.isfinite(number) else None,
                    results=_results(pred.get("result"), f"{ref}, prediction", problems),
                )
            )
        tasks.append(task)
    if prediction_ids:
        problems.append(
            Problem(
                "predictions",
                f"{prediction_ids} predictions are only ids in this export and cannot be imported; "
                "export a snapshot with full predictions to import them",
            )
        )
    return tasks


# ---------------------------------------------------------------- JSON_MIN and CSV


def _min_records(doc: list[Any], problems: list[Problem]) -> list[dict[str, Any]]:
    records = []
    for index, raw in enumerate(doc, start=1):
        if not isinstance(raw, dict):
            problems.append(Problem(f"item #{index}", "not an object; skipped"))
            continue
        record = dict(raw)
        record["__ref"] = f"item #{index}"
        records.append(record)
    return records


def _looks_like_audio(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    text = value.strip().lower()
    path = urlsplit(text).path if "://" in text else text
    return text.startswith("/data/") or path.endswith(AUDIO_SUFFIXES)


def _pick_audio_key(data: Mapping[str, Any], audio_key: str | None) -> str | None:
    if audio_key:
        return audio_key if audio_key in data else None
    if "audio" in data:
        return "audio"
    return next((k for k, v in data.items() if not k.startswith("__") and _looks_like_audio(v)), None)


@dataclass(frozen=True)
class _Column:
    """What a JSON_MIN/CSV column holds when it is a control: its kind and, for tags, the prefix."""

    kind: str  # "choices" or "textarea"
    role: str  # "label", "tags" or "transcript"
    prefix: str | None = None  # tags: "<prefix>:<value>"; None: the value is the tag


def _values(value: Any) -> list[str]:
    if isinstance(value, dict):
        value = value.get("choices", value.get("text"))
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _is_text(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def _min_columns(
    path: Path, records: list[dict[str, Any]], options: _Options, warnings: list[Problem]
) -> dict[str, _Column]:
    """Which JSON_MIN/CSV columns are controls, and what each gives; the rest is task data.

    From the labeling config when there is one; otherwise from names Label Studio's templates use,
    values that are the project's classes or tags, and columns that differ between the annotators of
    one task. Refuses, naming the columns, when annotations are there but cannot all be placed.
    """
    audio_key = options.audio_key or next(
        (k for k in (options.config.audio_keys if options.config else ()) if any(k in r for r in records)),
        None,
    )
    present: dict[str, list[Any]] = {}
    for record in records:
        key = _pick_audio_key(record, audio_key)
        for name, value in record.items():
            if name in MIN_META_KEYS or name == key or name.startswith("__"):
                continue
            present.setdefault(name, []).append(value)
    columns: dict[str, _Column] = {}
    if options.config is not None:
        columns = _columns_from_config(options.config, present)
    else:
        columns = _columns_inferred(present, records, options, audio_key)
    for name in list(columns):
        if name == options.label_from:
            columns[name] = _Column("choices", "label")
        elif name == options.transcript_from:
            columns[name] = _Column("textarea", "transcript")
    if options.label_from and options.label_from in present and options.label_from not in columns:
        columns[options.label_from] = _Column("choices", "label")
    if (
        options.transcript_from
        and options.transcript_from in present
        and options.transcript_from not in columns
    ):
        columns[options.transcript_from] = _Column("textarea", "transcript")
    labels = [n for n, c in columns.items() if c.role == "label"]
    for extra in labels[1:]:  # one label: further single choices are grouped tags, as in the JSON export
        columns[extra] = _Column("choices", "tags", None if _is_tag_control(extra) else extra)
    for name, values in present.items():
        if any(_is_region(v) or (isinstance(v, list) and any(map(_is_region, v))) for v in values):
            columns[name] = _Column(REGION, "regions")  # counted, never clip metadata
        elif name == UNSURE and (name not in columns or columns[name].role != "label"):
            columns[name] = _Column("choices", "unsure")
    if present:
        said = []
        for name in present:
            column = columns.get(name)
            if column is None:
                said.append(f"{name!r} → clip metadata")
            elif column.role == "tags":
                how = f"tags ({column.prefix}:…)" if column.prefix else "tags"
                said.append(f"{name!r} → {how}")
            elif column.role == "regions":
                said.append(f"{name!r} → time regions (not imported)")
            else:
                said.append(f"{name!r} → {column.role}")
        source = "the labeling config" if options.config is not None else "the values"
        warnings.append(Problem("columns", f"read from {source}: {', '.join(said)}"))
    return columns


def _columns_from_config(config: LabelConfig, present: Mapping[str, list[Any]]) -> dict[str, _Column]:
    columns: dict[str, _Column] = {}
    label = config.label
    transcript = next((c for c in config.controls if c.kind == "textarea"), None)
    for control in config.controls:
        if control.name not in present:
            continue
        if control is label:
            columns[control.name] = _Column("choices", "label")
        elif control.kind == "choices":
            columns[control.name] = _Column(
                "choices", "tags", None if _is_tag_control(control.name) else control.name
            )
        elif control is transcript:
            columns[control.name] = _Column("textarea", "transcript")
        else:
            columns[control.name] = _Column("textarea", "ignored")
    return columns


def _varies_within_a_task(name: str, records: list[dict[str, Any]], audio_key: str | None) -> bool:
    seen: dict[str, str] = {}
    for record in records:
        task = record.get("id")
        audio = _pick_audio_key(record, audio_key)
        group = str(task) if task not in (None, "") else str(record.get(audio) if audio else None)
        value = json.dumps(record.get(name), sort_keys=True, ensure_ascii=False)
        if seen.setdefault(group, value) != value:
            return True
    return False


def _columns_inferred(
    present: Mapping[str, list[Any]],
    records: list[dict[str, Any]],
    options: _Options,
    audio_key: str | None,
) -> dict[str, _Column]:
    classes = set(options.classes)
    group_of: dict[str, set[str]] = {}
    for group, group_values in options.tag_groups.items():
        for value in group_values:
            group_of.setdefault(value, set()).add(group)
    full_tags = {f"{g}:{v}" for g, values in options.tag_groups.items() for v in values}
    columns: dict[str, _Column] = {}
    unplaced: dict[str, list[str]] = {}
    named = {options.label_from, options.transcript_from, UNSURE}  # unsure: placed by _min_columns
    for name, raw_values in present.items():
        lower = name.lower()
        if name in named:
            continue  # placed by the user
        if any(isinstance(v, dict) for v in raw_values):
            if any(isinstance(v, dict) and isinstance(v.get("choices"), list) for v in raw_values):
                role = "label" if lower in LABEL_NAMES else "tags"
                columns[name] = _Column("choices", role, None if _is_tag_control(name) else name)
            elif any(isinstance(v, dict) and "text" in v for v in raw_values):
                columns[name] = _Column("textarea", "transcript")
            continue
        if not all(_is_text(v) for v in raw_values):
            continue
        values = {t for v in raw_values for t in _values(v) if t.strip()}
        has_lists = any(isinstance(v, list) for v in raw_values)
        if lower in TRANSCRIPT_NAMES or "transcri" in lower:
            columns[name] = _Column("textarea", "transcript")
        elif "tag" in lower:
            columns[name] = _Column("choices", "tags", None)
        elif values and classes and values <= classes and not has_lists:
            columns[name] = _Column("choices", "label")
        elif values and full_tags and values <= full_tags:
            columns[name] = _Column("choices", "tags", None)
        elif values and all(group_of.get(v) for v in values):
            groups = set.intersection(*(group_of[v] for v in values))
            prefix = name if name in groups else (sorted(groups)[0] if len(groups) == 1 else None)
            if prefix is None:
                unplaced[name] = sorted(values)[:5]
            else:
                columns[name] = _Column("choices", "tags", prefix)
        elif lower in LABEL_NAMES and not has_lists:
            columns[name] = _Column("choices", "label")
        elif has_lists:
            columns[name] = _Column("choices", "tags", name)
        elif _varies_within_a_task(name, records, audio_key):
            unplaced[name] = sorted(values)[:5]
    labels = [n for n, c in columns.items() if c.role == "label"]
    if len(labels) > 1 and options.label_from is None:
        for name in labels:
            unplaced[name] = sorted({t for v in present[name] for t in _values(v)})[:5]
    annotated = any("annotator" in r or "annotation_id" in r for r in records)
    candidates = {
        name: sorted({t for v in vals for t in _values(v)})[:5]
        for name, vals in present.items()
        if name not in columns and name not in named and all(isinstance(v, str) for v in vals)
    }
    placed_by_user = any(n in present for n in (options.label_from, options.transcript_from) if n)
    if unplaced or (annotated and not columns and not placed_by_user and candidates):
        shown = unplaced or candidates
        listed = "; ".join(f"{name!r} ({', '.join(map(repr, vals))}…)" for name, vals in shown.items())
        known = (
            f" The project's classes are {', '.join(map(repr, options.classes[:10]))}."
            if options.classes
            else " The project has no classes yet to recognise them by."
        )
        raise FormatError(
            "cannot tell which columns of this Label Studio export are the label, tags or clip "
            f"metadata: {listed}.{known} Name the project's labeling config with --config "
            "label_config.xml (Label Studio: project Settings → Labeling Interface → Code), or the "
            "label column with --label-column; nothing was imported"
        )
    return columns


def _min_tasks(
    records: list[dict[str, Any]], columns: Mapping[str, _Column], options: _Options
) -> list[_Task]:
    by_id: dict[Any, _Task] = {}
    tasks = []
    for record in records:
        ref = record.pop("__ref")
        key = _pick_audio_key(record, options.audio_key)
        task_id = record.get("id")
        group = (
            ("id", str(task_id))
            if task_id not in (None, "")
            else ("audio", str(record.get(key) if key else None))
        )
        data: dict[str, Any] = {}
        results = []
        for name, value in record.items():
            if name in MIN_META_KEYS:
                continue
            column = None if name == key else columns.get(name)
            if column is None:
                data[name] = value
            elif column.kind == REGION:
                count = len(value) if isinstance(value, list) else 1
                results.append(_Result(name, REGION, ["region"] * count))
            elif column.role != "ignored":
                results.append(_Result(name, column.kind, _values(value)))
        task = by_id.get(group)
        if task is None:
            task_ref = f"task {task_id}" if task_id not in (None, "") else ref
            task = by_id[group] = _Task(ref=task_ref, data=data)
            tasks.append(task)
        if results or "annotator" in record:
            annotator, user_id = _annotator(record.get("annotator"), options)
            task.annotations.append(
                _Annotation(
                    annotator=annotator,
                    results=results,
                    updated=str(record.get("updated_at") or record.get("created_at") or ""),
                    ref=f"{task.ref}, annotation {record.get('annotation_id', '?')}",
                    user_id=user_id,
                )
            )
    return tasks


# ---------------------------------------------------------------- audio references


class _AudioFinder:
    def __init__(self, root: Path, limits: ReadLimits, *, allow: frozenset[Path] = frozenset()) -> None:
        self.root = root
        self.limits = limits
        self.resolver = Resolver([root], allow=allow)
        self._by_name: dict[str, list[str]] | None = None
        # An Earmark export that refers to stored audio names it relative to the files' common folder.
        self._referenced = {p.as_posix(): p for p in allow}

    def _index(self) -> dict[str, list[str]]:
        if self._by_name is None:
            self._by_name = {}
            seen = 0
            for folder, dirs, files in os.walk(self.root):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                for name in files:
                    seen += 1
                    if seen > self.limits.max_rows:
                        raise FormatError(f"{self.root} holds over {self.limits.max_rows:,} files to search")
                    rel = (Path(folder) / name).relative_to(self.root).as_posix()
                    self._by_name.setdefault(name, []).append(rel)
        return self._by_name

    def _upload(self, rest: str) -> tuple[Path, str]:
        parts = [p for p in rest.split("/") if p]
        if not parts or ".." in parts:
            raise Refused("the upload path leads outside the import folder")
        file_name = parts[-1]
        stripped = UPLOAD_PREFIX.match(file_name)
        shown = stripped.group(1) if stripped else file_name
        index = self._index()
        for wanted in (file_name, shown):
            hits = index.get(wanted, [])
            if len(hits) > 1:
                tail = "/".join(parts[-2:])
                preferred = [h for h in hits if h.endswith(tail)]
                hits = preferred if len(preferred) == 1 else hits
            if len(hits) == 1:
                path, _ = self.resolver.resolve(hits[0], self.root)
                return path, shown
            if len(hits) > 1:
                raise Refused(
                    f"{len(hits)} files named {wanted!r} under {self.root}; name the folder holding "
                    "just this project's files"
                )
        raise Refused(
            f"no file named {file_name!r} or {shown!r} under {self.root}; name the folder holding the "
            "audio (Label Studio's media/upload folder, or the files as they were uploaded)"
        )

    def _local(self, rel: str) -> tuple[Path, str]:
        parts = [p for p in rel.replace("\\", "/").split("/") if p]
        if ".." in parts or not parts:
            return self.resolver.resolve(rel, self.root)
        tail = "/" + "/".join(parts)
        hits = [p for text, p in self._referenced.items() if text.endswith(tail)]
        if len(hits) == 1:
            return hits[0], parts[-1]
        last: Refused | None = None
        for start in range(len(parts)):
            tail = "/".join(parts[start:])
            try:
                return self.resolver.resolve(tail, self.root)
            except Refused as exc:
                if "outside" in str(exc):
                    raise
                last = exc
        assert last is not None
        raise last

    def find(self, ref: str) -> tuple[Path, str]:
        text = ref.strip()
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme in ("http", "https"):
            if not parts.path.startswith(("/data/upload/", "/data/local-files")):
                raise Refused(REMOTE_REFUSED)
        elif len(scheme) > 1:  # one letter is a Windows drive
            raise Refused(f"{scheme}:// storage is not fetched; download the files and name their folder")
        if parts.path.startswith("/data/local-files"):
            rel = parse_qs(parts.query).get("d", [""])[0]
            if not rel:
                raise Refused("a local-files URL without ?d=<path>")
            return self._local(rel)
        if parts.path.startswith("/data/upload/"):
            return self._upload(unquote(parts.path[len("/data/upload/") :]))
        try:
            return self.resolver.resolve(text, self.root)
        except Refused as exc:
            if "not found" in str(exc) and "%" in text:
                return self.resolver.resolve(unquote(text), self.root)
            raise


# ---------------------------------------------------------------- tasks → plan


def _is_tag_control(name: str) -> bool:
    return "tag" in name.lower()


@dataclass
class _Roles:
    label: str | None
    transcript: str | None
    prefixes: dict[str, str | None] = field(default_factory=dict)  # tag controls' prefixes

    @classmethod
    def of(cls, tasks: list[_Task], options: _Options, columns: Mapping[str, _Column] | None) -> _Roles:
        if columns is not None:
            return cls(
                label=next((n for n, c in columns.items() if c.role == "label"), None),
                transcript=next((n for n, c in columns.items() if c.role == "transcript"), None),
                prefixes={n: c.prefix for n, c in columns.items() if c.role == "tags"},
            )
        config = options.config
        if config is not None:
            label = config.label
            text = next((c for c in config.controls if c.kind == "textarea"), None)
            return cls(
                label=options.label_from or (label.name if label else None),
                transcript=options.transcript_from or (text.name if text else None),
            )
        choices: list[str] = []
        texts: list[str] = []
        for task in tasks:
            for results in [a.results for a in task.annotations] + [p.results for p in task.predictions]:
                for r in results:
                    bucket = choices if r.kind == "choices" else texts if r.kind == "textarea" else None
                    if bucket is not None and r.from_name not in bucket:
                        bucket.append(r.from_name)
        label_from = options.label_from or next(
            (c for c in choices if not _is_tag_control(c) and c != UNSURE), None
        )
        return cls(label=label_from, transcript=options.transcript_from or (texts[0] if texts else None))

    def read(
        self, results: list[_Result], ignored: Counter[str]
    ) -> tuple[str | None, str | None, tuple[str, ...]]:
        label = transcript = None
        tags: list[str] = []
        for r in results:
            if r.kind == REGION:
                ignored[f"time regions of {r.from_name!r}"] += max(1, len(r.values))
                continue
            if r.kind == "choices" and r.from_name == UNSURE and r.from_name != self.label:
                continue  # read by _is_unsure
            if r.kind == "choices" and r.from_name == self.label:
                if label is None and r.values:
                    label = clean_text(r.values[0])
            elif r.kind == "choices":
                default = None if _is_tag_control(r.from_name) else r.from_name
                prefix = self.prefixes.get(r.from_name, default)
                for raw in r.values:
                    value = clean_text(raw)
                    if not value:
                        continue
                    tag = f"{prefix}:{value}" if prefix else value
                    if tag not in tags:
                        tags.append(tag)
            elif r.kind == "textarea" and r.from_name == self.transcript:
                if transcript is None:  # as written: a space at either end is the annotator's
                    transcript = keep_text(" ".join(v for v in r.values if v.strip()))
            else:
                ignored[f"{r.kind or 'untyped'} results of {r.from_name!r}"] += 1
        return label, transcript, tuple(tags)


def _plan(
    path: Path,
    tasks: list[_Task],
    problems: list[Problem],
    warnings: list[Problem],
    audio_root: Path | None,
    options: _Options,
    source_format: str,
    limits: ReadLimits,
    columns: Mapping[str, _Column] | None = None,
) -> ImportPlan:
    root = Path(audio_root) if audio_root is not None else path.parent
    if not root.is_dir():
        raise FormatError(f"the audio folder {root} does not exist")
    finder = _AudioFinder(root, limits, allow=referenced_audio(path.parent))
    roles = _Roles.of(tasks, options, columns)
    ignored: Counter[str] = Counter()
    plan = ImportPlan(problems=problems, warnings=warnings, source_format=source_format)
    config = options.config
    if config is not None and config.label is not None:
        plan.declared_classes = list(config.label.values)
    if config is not None:
        plan.declared_tags = _declared_tags(config)
    audio_key = options.audio_key or next(
        (k for k in (config.audio_keys if config else ()) if any(k in t.data for t in tasks)), None
    )
    final_only = _ground_truth_only(tasks)
    for name in sorted(final_only):
        plan.warnings.append(
            Problem(
                name,
                "made only ground-truth annotations: read as final labels, not as this person's "
                "annotations (name Label Studio's users with --users to tell people apart)",
            )
        )
    seen: dict[Path, str] = {}
    for task in tasks:
        key = _pick_audio_key(task.data, audio_key)
        ref = task.data.get(key) if key else None
        if not isinstance(ref, str) or not ref.strip():
            wanted = f"field {audio_key!r}" if audio_key else "audio field"
            plan.problems.append(Problem(task.ref, f"no {wanted} in the task data; skipped"))
            continue
        try:
            audio, name = finder.find(ref)
        except Refused as exc:
            plan.problems.append(Problem(task.ref, f"{ref}: {exc}"))
            continue
        if audio in seen:
            plan.problems.append(Problem(task.ref, f"{name} is already imported from {seen[audio]}; skipped"))
            continue
        seen[audio] = task.ref
        original = task.data.get(ORIGINAL_NAME)
        item = SourceItem(
            path=audio, name=original if isinstance(original, str) and original.strip() else name
        )
        for field_name, value in task.data.items():
            if field_name in (key, ORIGINAL_NAME):
                continue
            text = text_value(value)
            if text is None or not text.strip():
                continue
            if field_name == "split" and text.strip() in SPLITS:
                item.split = text.strip()
            elif field_name == "split" and split_from_words(text):
                item.split = split_from_words(text)
            else:
                meta_key = field_name.removeprefix("metadata.")
                item.metadata[meta_key] = text
        _add_annotations(item, task, roles, ignored, plan.problems, final_only)
        for pred in task.predictions:
            label, transcript, _ = roles.read(pred.results, ignored)
            if label is None and transcript is None:
                continue
            if any(p.model == pred.model for p in item.predictions):
                again = f"a second prediction of {pred.model!r}; the first is kept"
                plan.problems.append(Problem(task.ref, again))
                continue
            item.predictions.append(ExternalPrediction(pred.model, label, transcript, pred.score))
        plan.items.append(item)
    for what, count in ignored.most_common():
        if what.startswith("time regions of "):
            why = (
                f"{count} not imported as labels of whole clips; import them into a regions project "
                "with: earmark regions import-labelstudio"
            )
            plan.problems.append(Problem(what, why))
        else:
            why = f"{count} {what} are not a label, transcript or tags; not imported"
            plan.problems.append(Problem("results", why))
    return plan


def _declared_tags(config: LabelConfig) -> list[str]:
    """Every tag a labeling config offers, written as the reader writes tags it reads."""
    label = config.label
    tags: list[str] = []
    for control in config.controls:
        if control.kind != "choices" or control is label or control.name == UNSURE:
            continue
        prefix = None if _is_tag_control(control.name) else control.name
        for raw in control.values:
            value = clean_text(raw)
            tag = f"{prefix}:{value}" if prefix and value else value
            if tag and tag not in tags:
                tags.append(tag)
    return tags


def _is_unsure(results: list[_Result]) -> bool:
    return any(
        r.kind == "choices" and r.from_name == UNSURE and any(v.strip() for v in r.values) for r in results
    )


def _ground_truth_only(tasks: list[_Task]) -> set[str]:
    """Label Studio users known only by id whose every annotation is ground truth: Earmark's final
    labels imported into Label Studio come back like this, so they are final labels, not a person's."""
    ground_truth: set[str] = set()
    other: set[str] = set()
    for task in tasks:
        for ann in task.annotations:
            if (
                ann.annotator is None
                or ann.user_id is None
                or not ann.annotator.startswith("labelstudio-user-")
            ):
                continue
            (ground_truth if ann.ground_truth else other).add(ann.annotator)
    return ground_truth - other


def _add_annotations(
    item: SourceItem,
    task: _Task,
    roles: _Roles,
    ignored: Counter[str],
    problems: list[Problem],
    final_only: set[str],
) -> None:
    chosen: dict[str, tuple[_Annotation, ExternalAnnotation]] = {}
    anonymous = 0
    for ann in task.annotations:
        label, transcript, tags = roles.read(ann.results, ignored)
        if label is None and transcript is None and not tags:
            problems.append(Problem(ann.ref, "no label, transcript or tags in this annotation; skipped"))
            continue
        is_final = ann.annotator is FINAL_LABEL or ann.annotator in final_only
        if (
            (ann.ground_truth or is_final)
            and item.label is None
            and item.transcript is None
            and not item.tags
        ):
            item.label, item.transcript, item.tags = label, transcript, tags
        if is_final or (ann.ground_truth and ann.annotator is None):
            continue  # the final label only: nobody to credit it to
        name = ann.annotator
        if name is None:
            anonymous += 1
            name = ANONYMOUS.format(anonymous)
        external = ExternalAnnotation(
            annotator=name, label=label, transcript=transcript, tags=tags, unsure=_is_unsure(ann.results)
        )
        if name in chosen:
            kept, _ = chosen[name]
            problems.append(
                Problem(ann.ref, f"{name} annotated this task more than once; the latest annotation is kept")
            )
            if ann.updated < kept.updated:
                continue
        chosen[name] = (ann, external)
    item.annotations.extend(external for _, external in chosen.values())


# ---------------------------------------------------------------- time regions


@dataclass
class LabelStudioRegions:
    """The time regions of a Label Studio JSON export, one row per region and class.

    ``regions`` has ``task, recording, annotator, final, start, end, label, text, tags``:
    ``recording`` is the audio's file name as imported (Label Studio's upload prefix removed),
    ``final`` marks regions of Earmark's own final-label pseudo-annotator.
    """

    regions: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)


REGION_COLUMNS = ("task", "recording", "annotator", "final", "start", "end", "label", "text", "tags")


def _recording_name(ref: str) -> str:
    """The file name a task's audio reference gives its clip (as :func:`read_labelstudio` names it)."""
    parts = urlsplit(ref.strip())
    if parts.path.startswith("/data/local-files"):
        path = parse_qs(parts.query).get("d", [""])[0]
    else:
        path = unquote(parts.path)
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    if parts.path.startswith("/data/upload/"):
        stripped = UPLOAD_PREFIX.match(name)
        name = stripped.group(1) if stripped else name
    return name


def _region_rows(raw: Any, where: str, problems: list[Problem]) -> list[dict[str, Any]]:
    """One row per (region, class) of an annotation's results, joined by Label Studio's region ``id``."""
    if not isinstance(raw, list):
        return []
    spans: dict[str, dict[str, Any]] = {}
    for n, item in enumerate(raw):
        value = item.get("value") if isinstance(item, dict) else None
        if not isinstance(item, dict) or not isinstance(value, dict) or not _is_region(value):
            continue
        region_id = str(item.get("id") or f"#{n}")
        span = spans.setdefault(region_id, {"labels": [], "text": None, "tags": [], "bounds": None})
        try:
            bounds = (float(value["start"]), float(value["end"]))
        except (TypeError, ValueError):
            problems.append(Problem(where, f"region {region_id}: start/end are not numbers; skipped"))
            span["bad"] = True
            continue
        span["bounds"] = span["bounds"] or bounds
        kind = str(item.get("type") or "").lower()
        labels = value.get(kind) or value.get("labels")
        if kind.endswith("labels") and isinstance(labels, list):
            span["labels"] += [str(v).strip() for v in labels if str(v).strip()]
        elif kind == "textarea":
            text = value.get("text")
            text = text if isinstance(text, list) else [text]
            span["text"] = " ".join(t for t in text if isinstance(t, str) and t) or None
        elif kind == "choices" and isinstance(value.get("choices"), list):
            span["tags"] += [str(v).strip() for v in value["choices"]]
    rows = []
    for region_id, span in spans.items():
        if span.get("bad"):
            continue
        if not span["labels"]:
            problems.append(Problem(where, f"region {region_id} has no label; skipped"))
            continue
        start, end = span["bounds"]
        for label in dict.fromkeys(span["labels"]):
            rows.append(
                {"start": start, "end": end, "label": label, "text": span["text"], "tags": span["tags"]}
            )
    return rows


def read_labelstudio_regions(
    path: Path,
    *,
    audio_key: str | None = None,
    user_names: Mapping[int | str, str] | None = None,
    users: Path | Mapping[Any, Any] | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> LabelStudioRegions:
    """The time regions (``labels`` results with ``start``/``end``) of a Label Studio JSON export.

    A region's class is its ``labels`` value (a region with two classes gives two rows); a per-region
    ``textarea`` with the same region ``id`` gives its transcript, a per-region ``choices`` its tags.
    Annotators are named as :func:`read_labelstudio` names them (``users``, ``user_names``).
    Cancelled annotations, and predictions, are not read. JSON_MIN and CSV exports drop the region
    ids that tie a transcript to its region: export JSON for regions.
    """
    path = Path(path)
    _check_file(path)
    doc = load_json(path, limits)
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list) or not any(
        isinstance(t, dict) and isinstance(t.get("data"), dict) for t in doc
    ):
        raise FormatError(f"{path.name} is not a Label Studio JSON export (a list of tasks with data)")
    options = _Options(user_names=dict(user_names or {}), users=read_users(users, limits=limits))
    problems: list[Problem] = []
    rows: list[dict[str, Any]] = []
    for index, task in enumerate(doc, start=1):
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            continue
        ref = f"task {task.get('id', f'#{index}')}"
        key = _pick_audio_key(task["data"], audio_key)
        audio = task["data"].get(key) if key else None
        if not isinstance(audio, str) or not audio.strip():
            problems.append(Problem(ref, "no audio field in the task data; skipped"))
            continue
        original = task["data"].get(ORIGINAL_NAME)
        name = original if isinstance(original, str) and original.strip() else _recording_name(audio)
        for raw in task.get("annotations") or []:
            if not isinstance(raw, dict) or raw.get("was_cancelled") is True:
                continue
            where = f"{ref}, annotation {raw.get('id', '?')}"
            annotator, _ = _annotator(raw.get("completed_by"), options)
            found = _region_rows(raw.get("result"), where, problems)
            if found and annotator is None:
                problems.append(Problem(where, "names no annotator; its regions are skipped"))
                continue
            final = annotator == FINAL_LABEL
            for row in found:
                rows.append({"task": ref, "recording": name, "annotator": annotator, "final": final, **row})
    return LabelStudioRegions(pd.DataFrame(rows, columns=list(REGION_COLUMNS)), problems)
