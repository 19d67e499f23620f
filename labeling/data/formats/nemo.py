"""NVIDIA NeMo manifests: call :func:`read_nemo` on a manifest (JSON Lines).

Each line is an object with ``audio_filepath`` (absolute, or relative to the manifest), ``duration``
and ``text`` (the transcript); a ``label`` (classification manifests) is the label, ``tags`` a list of
tags, and other keys become metadata (``duration`` is measured again on import, so it is not kept).
A line with a non-zero ``offset`` names a segment of a longer file, which Earmark does not import.
The manifest's name sets the split when it names one (``train_manifest.json`` → train). Values are
kept as written (``pred_text``, the transcript NeMo's ``transcribe_speech.py`` adds, starts with a
space when the model emits one). ``original_name``, which Earmark's export adds when the audio file is
named otherwise, is the clip's name.

Manifests made on another machine name absolute paths there (``/content/…``, ``/mnt/…``):
``path_map`` (``--path-map OLD=NEW``) reads them from a local copy.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from labeling.data.formats._common import (
    DEFAULT_LIMITS,
    Refused,
    Resolver,
    clean_text,
    json_lines,
    keep_text,
    map_path,
    metadata_from,
    parse_path_map,
    parse_tags,
    referenced_audio,
    split_from_words,
)
from labeling.data.formats.base import FormatError, ImportPlan, Problem, ReadLimits, SourceItem

NOT_METADATA = ("audio_filepath", "duration", "text", "label", "tags", "offset", "original_name")


def read_nemo(
    path: Path,
    *,
    audio_root: Path | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
    path_map: Iterable[str | tuple[str, Path]] = (),
) -> ImportPlan:
    """Read a NeMo manifest.

    Parameters
    ----------
    path
        The manifest, one JSON object per line; ``audio_filepath`` is required on every line.
    audio_root
        The folder holding the audio when it is not under the manifest's folder (manifests often
        name absolute paths). Audio outside both is refused.
    path_map
        ``(OLD, NEW)`` pairs or ``"OLD=NEW"`` strings: ``audio_filepath`` values starting with OLD
        are read from NEW instead.
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    base = path.parent
    mapping = parse_path_map(path_map)
    roots = [base] + ([Path(audio_root)] if audio_root is not None else []) + [new for _, new in mapping]
    resolver = Resolver(roots, allow=referenced_audio(base))
    split = split_from_words(path.stem)
    plan = ImportPlan(source_format="nemo")
    seen: dict[Path, int] = {}
    missing_key = 0
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
            missing_key += 1
            plan.problems.append(Problem(ref, "no audio_filepath; skipped"))
            continue
        offset = value.get("offset", 0)
        if offset not in (0, 0.0, None, "0", ""):
            plan.problems.append(Problem(ref, f"segment offsets not supported (offset {offset}); skipped"))
            continue
        try:
            audio, name = resolver.resolve(map_path(audio_ref, mapping), base)
        except Refused as exc:
            hint = ""
            if "outside" in str(exc) and Path(audio_ref).is_absolute():
                hint = " (--path-map OLD=NEW reads it from a local copy)"
            plan.problems.append(Problem(ref, f"{audio_ref}: {exc}{hint}"))
            continue
        if audio in seen:
            plan.problems.append(
                Problem(ref, f"{name} is listed again (first on line {seen[audio]}); skipped")
            )
            continue
        seen[audio] = line
        original = value.get("original_name")
        plan.items.append(
            SourceItem(
                path=audio,
                name=original if isinstance(original, str) and original.strip() else name,
                metadata=metadata_from(value, skip=NOT_METADATA),
                label=clean_text(value.get("label")),
                transcript=keep_text(value.get("text")),
                split=split,
                tags=parse_tags(value.get("tags")),
            )
        )
    if missing_key and not plan.items:
        raise FormatError(f"{path.name} is not a NeMo manifest: no line has an audio_filepath")
    return plan
