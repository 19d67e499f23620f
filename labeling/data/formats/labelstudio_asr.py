"""Label Studio's ASR_MANIFEST export: call :func:`read_labelstudio_asr`.

Label Studio writes it with its converter (``convert_to_asr_json_manifest`` in the Label Studio SDK's
``converter/audio.py``): a ``manifest.json`` of JSON Lines shaped like a NeMo manifest, but with **one
line per annotation**, not per clip. Each line is ``audio_filepath`` (``audio/<file>`` beside the
manifest for uploaded files, which Label Studio names ``<8 hex>-<name>``; the file's own path for local
files), ``duration``, ``text`` (that annotation's transcript) and ``annotator`` (the annotator's
e-mail, or their Label Studio user id as text). :func:`is_labelstudio_asr` tells it from a NeMo
manifest by that ``annotator`` key.

Every line is an annotation of its clip by its annotator (named as :mod:`labeling.data.formats.identities`
says; ``users``, Label Studio's user list, turns ids into people); nothing in the manifest says which
transcript is final, so none becomes a final transcript. A line by Earmark's final-label
pseudo-annotator is the clip's final transcript. Transcripts are kept as written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labeling.data.formats._common import (
    DEFAULT_LIMITS,
    UTF8_BOM,
    Refused,
    Resolver,
    json_lines,
    keep_text,
    referenced_audio,
)
from labeling.data.formats.base import (
    ExternalAnnotation,
    FormatError,
    ImportPlan,
    Problem,
    ReadLimits,
    SourceItem,
)
from labeling.data.formats.identities import FINAL_LABEL, LABELSTUDIO_USER, identity_from_email
from labeling.data.formats.labelstudio import read_users

#: The file Label Studio's ASR_MANIFEST export holds.
MANIFEST_NAME = "manifest.json"
#: The folder Label Studio's converter copies uploaded audio into, beside the manifest.
AUDIO_FOLDER = "audio"
_UPLOAD_PREFIX = re.compile(r"^[0-9a-fA-F]{8}-(.+)$")


def is_labelstudio_asr(path: Path) -> bool:
    """A JSON Lines file whose first line names an ``audio_filepath`` and an ``annotator``."""
    try:
        with Path(path).open("rb") as f:
            first = f.readline(1 << 20).removeprefix(UTF8_BOM).decode("utf-8", errors="replace")
        value = json.loads(first)
    except (OSError, ValueError):
        return False
    return isinstance(value, dict) and "audio_filepath" in value and "annotator" in value


def _annotator(value: Any, users: Mapping[int, str]) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if text.isdigit():
        email = users.get(int(text))
        return identity_from_email(email) if email else LABELSTUDIO_USER.format(int(text))
    return identity_from_email(text)


def read_labelstudio_asr(
    path: Path,
    *,
    audio_root: Path | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
    users: Path | Mapping[Any, Any] | None = None,
    **_options: Any,
) -> ImportPlan:
    """Read a Label Studio ASR_MANIFEST export (the ``manifest.json``, or the folder holding it).

    Parameters
    ----------
    path
        The manifest, or the unpacked export folder (``manifest.json`` and ``audio/``).
    audio_root
        Another folder the audio may be in (local files are named by their own path).
    users
        Label Studio's user list (``/api/users`` JSON, or a CSV of ``id,email``): lines naming the
        annotator by id become the people they are.

    Other Label Studio options (a labeling config, the project's classes) do not apply to a
    manifest of transcripts and are accepted and left unused.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise FormatError(f"{path} does not exist; name Label Studio's ASR_MANIFEST manifest.json")
    base = path.parent
    roots = [base] + ([Path(audio_root)] if audio_root is not None else [])
    resolver = Resolver(roots, allow=referenced_audio(base))
    people = read_users(users, limits=limits)
    plan = ImportPlan(source_format="labelstudio_asr")
    items: dict[Path, SourceItem] = {}
    first_line: dict[tuple[Path, str], int] = {}
    for line, value in json_lines(path, limits):
        ref = f"{path.name} line {line}"
        if isinstance(value, FormatError):
            plan.problems.append(Problem(ref, str(value)))
            continue
        if not isinstance(value, dict):
            plan.problems.append(Problem(ref, "not a JSON object; skipped"))
            continue
        audio_ref = value.get("audio_filepath")
        if not isinstance(audio_ref, str) or not audio_ref.strip():
            plan.problems.append(Problem(ref, "no audio_filepath; skipped"))
            continue
        annotator = _annotator(value.get("annotator"), people)
        if annotator is None:
            plan.problems.append(Problem(ref, "no annotator: not an annotation anyone made; skipped"))
            continue
        try:
            audio, name = resolver.resolve(audio_ref, base)
        except Refused as exc:
            plan.problems.append(Problem(ref, f"{audio_ref}: {exc}"))
            continue
        transcript = keep_text(value.get("text"))
        item = items.get(audio)
        if item is None:
            item = items[audio] = SourceItem(path=audio, name=_shown_name(name))
            plan.items.append(item)
        if annotator is FINAL_LABEL:
            if item.transcript is None:
                item.transcript = transcript
            continue
        if (audio, annotator) in first_line:
            plan.problems.append(
                Problem(
                    ref,
                    f"{annotator} transcribed {item.name} again (first on line "
                    f"{first_line[audio, annotator]}); the first is kept",
                )
            )
            continue
        first_line[audio, annotator] = line
        if transcript is None:
            plan.problems.append(Problem(ref, f"{annotator}'s annotation has no transcript; skipped"))
            continue
        item.annotations.append(ExternalAnnotation(annotator=annotator, transcript=transcript))
    if not plan.items and not plan.problems:
        raise FormatError(f"{path.name} holds no line; nothing to import")
    return plan


def _shown_name(name: str) -> str:
    """An uploaded file Label Studio copied into ``audio/`` under its upload name, shown by the name
    it was uploaded with."""
    folder, _, file_name = name.rpartition("/")
    match = _UPLOAD_PREFIX.match(file_name)
    if folder == AUDIO_FOLDER and match:
        return match.group(1)
    return name
