"""Label Studio exports of audio tasks: call :func:`read_labelstudio`.

It reads every export Label Studio makes of a classification/transcription project and tells them
apart by content: the JSON export (from the UI: ``completed_by`` is a user id and ``predictions`` are
ids; or a snapshot: ``completed_by`` is an object with an ``email`` and predictions are full objects
with ``model_version``, ``score`` and ``result``), JSON_MIN (one flat object per annotation), and the
CSV/TSV export (JSON_MIN's columns, with lists written as JSON text).

How results map onto Earmark:

* the first ``choices`` control is the label; the first ``textarea`` control is the transcript;
* a ``choices`` control whose name contains "tag" gives tags as they are; any further ``choices``
  control gives tags ``"<control>:<choice>"`` (``noise:car``), the grouped tags of a project;
* each annotator's annotation is an :class:`~labeling.formats.base.ExternalAnnotation`; one marked
  ``ground_truth`` is also the clip's imported final label;
* full predictions become :class:`~labeling.formats.base.ExternalPrediction` (model = its
  ``model_version``); cancelled (skipped) annotations and prediction ids are reported, not imported.

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from labeling.formats._common import (
    DEFAULT_LIMITS,
    Refused,
    Resolver,
    Table,
    clean_text,
    load_json,
    split_from_words,
    text_value,
)
from labeling.formats.base import (
    SPLITS,
    ExternalAnnotation,
    ExternalPrediction,
    FormatError,
    ImportPlan,
    Problem,
    ReadLimits,
    SourceItem,
)

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
USER = "labelstudio-user-{}"


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


def read_labelstudio(
    path: Path,
    *,
    audio_root: Path | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
    audio_key: str | None = None,
    label_from: str | None = None,
    transcript_from: str | None = None,
    user_names: Mapping[int | str, str] | None = None,
) -> ImportPlan:
    """Read any Label Studio export (JSON, JSON_MIN, CSV or TSV) of audio tasks.

    Parameters
    ----------
    path
        The exported file.
    audio_root
        The folder holding the audio (default: the export's folder). Nothing outside it is read.
    audio_key
        The task data field holding the audio reference (default ``audio``, else the first field that
        looks like one).
    label_from, transcript_from
        Control names (``from_name``) to take the label and transcript from, when the first
        ``choices``/``textarea`` control is not the one meant.
    user_names
        Label Studio user id (or email) → Earmark annotator name. Without it annotators are named by
        email when the export has one, else ``labelstudio-user-<id>``.
    """
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() in (".csv", ".tsv"):
        return read_labelstudio_csv(
            path,
            audio_root=audio_root,
            limits=limits,
            audio_key=audio_key,
            label_from=label_from,
            transcript_from=transcript_from,
            user_names=user_names,
        )
    doc = load_json(path, limits)
    if isinstance(doc, dict):
        if not isinstance(doc.get("data"), dict):
            raise FormatError(f"{path.name} is not a Label Studio export: it should hold a list of tasks")
        doc = [doc]  # one task on its own
    if not isinstance(doc, list):
        raise FormatError(f"{path.name} is not a Label Studio export: it should hold a list of tasks")
    problems: list[Problem] = []
    if any(isinstance(t, dict) and isinstance(t.get("data"), dict) for t in doc):
        tasks = _full_tasks(doc, problems, user_names)
        source_format = "labelstudio"
    else:
        tasks = _min_tasks(_min_records(doc, problems), audio_key, label_from, transcript_from, user_names)
        source_format = "labelstudio_min"
    return _plan(
        path, tasks, problems, audio_root, audio_key, label_from, transcript_from, source_format, limits
    )


def read_labelstudio_min(path: Path, **kwargs: Any) -> ImportPlan:
    """Read a JSON_MIN export (see :func:`read_labelstudio`, which recognises it by itself)."""
    return read_labelstudio(path, **kwargs)


def read_labelstudio_csv(
    path: Path,
    *,
    audio_root: Path | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
    audio_key: str | None = None,
    label_from: str | None = None,
    transcript_from: str | None = None,
    user_names: Mapping[int | str, str] | None = None,
) -> ImportPlan:
    """Read a Label Studio CSV (or TSV) export: JSON_MIN's fields as columns, one row per annotation."""
    path = Path(path)
    _check_file(path)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    table = Table(path, limits, delimiter=delimiter)
    problems: list[Problem] = []
    records = []
    for line, row in table:
        if row is None:
            problems.append(Problem(f"line {line}", "more cells than the header has columns; row skipped"))
            continue
        record: dict[str, Any] = {}
        for key, cell in row.items():
            if cell == "":
                continue
            if cell[:1] in "{[":
                try:
                    record[key] = json.loads(cell)
                    continue
                except json.JSONDecodeError:
                    pass
            record[key] = cell
        record["__ref"] = f"line {line}"
        records.append(record)
    tasks = _min_tasks(records, audio_key, label_from, transcript_from, user_names)
    return _plan(
        path, tasks, problems, audio_root, audio_key, label_from, transcript_from, "labelstudio_csv", limits
    )


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise FormatError(f"{path} is a folder; name the file Label Studio exported")
    if not path.is_file():
        raise FormatError(f"{path} does not exist")


# ---------------------------------------------------------------- annotators


def _annotator(completed_by: Any, user_names: Mapping[int | str, str] | None) -> str | None:
    names = user_names or {}
    user_id: Any = None
    email = None
    if isinstance(completed_by, dict):
        user_id = completed_by.get("id")
        email = completed_by.get("email") if isinstance(completed_by.get("email"), str) else None
    elif isinstance(completed_by, bool) or completed_by is None:
        return None
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
            return str(names[key])
    if email:
        return email.strip()
    return USER.format(user_id) if user_id is not None else None


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


def _full_tasks(
    doc: list[Any], problems: list[Problem], user_names: Mapping[int | str, str] | None
) -> list[_Task]:
    tasks = []
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
            annotator = _annotator(raw_ann.get("completed_by"), user_names)
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
            is_number = isinstance(score, (int, float)) and not isinstance(score, bool)
            task.predictions.append(
                _Prediction(
                    model=str(model).strip() if model not in (None, "") else "labelstudio",
                    score=float(score) if is_number and math.isfinite(score) else None,
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


def _min_role(key: str, value: Any, label_from: str | None, transcript_from: str | None) -> str | None:
    """'choices', 'textarea' or None (task data) for a JSON_MIN field."""
    lower = key.lower()
    if key == transcript_from:
        return "textarea"
    if key == label_from:
        return "choices"
    if isinstance(value, dict):
        if isinstance(value.get("choices"), list):
            return "choices"
        if "text" in value:
            return "textarea"
        return None
    is_text = isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
    if not is_text:
        return None
    if lower in TRANSCRIPT_NAMES or "transcri" in lower:
        return "textarea"
    if "tag" in lower or lower in LABEL_NAMES:
        return "choices"
    return None


def _min_values(value: Any, role: str) -> list[str]:
    if isinstance(value, dict):
        value = value.get("choices") if role == "choices" else value.get("text")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _min_tasks(
    records: list[dict[str, Any]],
    audio_key: str | None,
    label_from: str | None,
    transcript_from: str | None,
    user_names: Mapping[int | str, str] | None,
) -> list[_Task]:
    by_id: dict[Any, _Task] = {}
    tasks = []
    for record in records:
        ref = record.pop("__ref")
        key = _pick_audio_key(record, audio_key)
        task_id = record.get("id")
        group = ("id", str(task_id)) if task_id not in (None, "") else ("audio", str(record.get(key)))
        data: dict[str, Any] = {}
        results = []
        for name, value in record.items():
            if name in MIN_META_KEYS:
                continue
            role = None if name == key else _min_role(name, value, label_from, transcript_from)
            if role is None:
                data[name] = value
            else:
                results.append(_Result(name, role, _min_values(value, role)))
        task = by_id.get(group)
        if task is None:
            task_ref = f"task {task_id}" if task_id not in (None, "") else ref
            task = by_id[group] = _Task(ref=task_ref, data=data)
            tasks.append(task)
        if results or "annotator" in record:
            task.annotations.append(
                _Annotation(
                    annotator=_annotator(record.get("annotator"), user_names),
                    results=results,
                    updated=str(record.get("updated_at") or record.get("created_at") or ""),
                    ref=f"{task.ref}, annotation {record.get('annotation_id', '?')}",
                )
            )
    return tasks


# ---------------------------------------------------------------- audio references


class _AudioFinder:
    def __init__(self, root: Path, limits: ReadLimits) -> None:
        self.root = root
        self.limits = limits
        self.resolver = Resolver([root])
        self._by_name: dict[str, list[str]] | None = None

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

    @classmethod
    def of(cls, tasks: list[_Task], label_from: str | None, transcript_from: str | None) -> _Roles:
        choices: list[str] = []
        texts: list[str] = []
        for task in tasks:
            for results in [a.results for a in task.annotations] + [p.results for p in task.predictions]:
                for r in results:
                    bucket = choices if r.kind == "choices" else texts if r.kind == "textarea" else None
                    if bucket is not None and r.from_name not in bucket:
                        bucket.append(r.from_name)
        label = label_from or next((c for c in choices if not _is_tag_control(c)), None)
        return cls(label=label, transcript=transcript_from or (texts[0] if texts else None))

    def read(
        self, results: list[_Result], ignored: Counter[str]
    ) -> tuple[str | None, str | None, tuple[str, ...]]:
        label = transcript = None
        tags: list[str] = []
        for r in results:
            if r.kind == "choices" and r.from_name == self.label:
                if label is None and r.values:
                    label = clean_text(r.values[0])
            elif r.kind == "choices":
                for value in r.values:
                    value = clean_text(value)
                    if not value:
                        continue
                    tag = value if _is_tag_control(r.from_name) else f"{r.from_name}:{value}"
                    if tag not in tags:
                        tags.append(tag)
            elif r.kind == "textarea" and r.from_name == self.transcript:
                if transcript is None:
                    transcript = clean_text(" ".join(v.strip() for v in r.values if v.strip()))
            else:
                ignored[f"{r.kind or 'untyped'} results of {r.from_name!r}"] += 1
        return label, transcript, tuple(tags)


def _plan(
    path: Path,
    tasks: list[_Task],
    problems: list[Problem],
    audio_root: Path | None,
    audio_key: str | None,
    label_from: str | None,
    transcript_from: str | None,
    source_format: str,
    limits: ReadLimits,
) -> ImportPlan:
    root = Path(audio_root) if audio_root is not None else path.parent
    if not root.is_dir():
        raise FormatError(f"the audio folder {root} does not exist")
    finder = _AudioFinder(root, limits)
    roles = _Roles.of(tasks, label_from, transcript_from)
    ignored: Counter[str] = Counter()
    plan = ImportPlan(problems=problems, source_format=source_format)
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
        item = SourceItem(path=audio, name=name)
        for field_name, value in task.data.items():
            if field_name == key:
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
                item.metadata[meta_key] = text.strip()
        _add_annotations(item, task, roles, ignored, plan.problems)
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
        why = f"{count} {what} are not a label, transcript or tags; not imported"
        plan.problems.append(Problem("results", why))
    return plan


def _add_annotations(
    item: SourceItem, task: _Task, roles: _Roles, ignored: Counter[str], problems: list[Problem]
) -> None:
    chosen: dict[str, tuple[_Annotation, ExternalAnnotation]] = {}
    anonymous = 0
    for ann in task.annotations:
        label, transcript, tags = roles.read(ann.results, ignored)
        if label is None and transcript is None and not tags:
            problems.append(Problem(ann.ref, "no label, transcript or tags in this annotation; skipped"))
            continue
        if ann.ground_truth and item.label is None and item.transcript is None and not item.tags:
            item.label, item.transcript, item.tags = label, transcript, tags
            if ann.annotator is None:
                continue  # the final label only: nobody to credit it to
        name = ann.annotator
        if name is None:
            anonymous += 1
            name = ANONYMOUS.format(anonymous)
        external = ExternalAnnotation(annotator=name, label=label, transcript=transcript, tags=tags)
        if name in chosen:
            kept, _ = chosen[name]
            problems.append(
                Problem(ann.ref, f"{name} annotated this task more than once; the latest annotation is kept")
            )
            if ann.updated < kept.updated:
                continue
        chosen[name] = (ann, external)
    item.annotations.extend(external for _, external in chosen.values())
