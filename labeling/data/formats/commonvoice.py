"""Common Voice releases: call :func:`read_commonvoice` on one of its TSV files.

A release holds ``train.tsv``, ``dev.tsv``, ``test.tsv``, ``validated.tsv``, ``other.tsv``… beside a
``clips/`` folder. Each row names a clip (``path``) and what was read (``sentence``); ``client_id``
(a hashed speaker id) becomes the ``speaker`` metadata and the other columns (votes, age, gender,
accents, locale, segment, variant…) metadata as they are. The TSV's name sets the split
(train/dev/test); ``validated``, ``other`` and the rest leave it unset. Common Voice writes its TSVs
without quoting, so quotes in sentences are kept as they are.
"""

from __future__ import annotations

import csv
from pathlib import Path

from labeling.data.formats._common import DEFAULT_LIMITS, Refused, Resolver, Table, keep_text
from labeling.data.formats.base import FormatError, ImportPlan, Problem, ReadLimits, SourceItem

TSV_SPLITS = {"train": "train", "dev": "dev", "test": "test"}
#: Columns that are not metadata: the clip, its sentence, and the id of the sentence's text.
NOT_METADATA = ("path", "sentence", "client_id")


def read_commonvoice(
    path: Path,
    *,
    audio_root: Path | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> ImportPlan:
    """Read a Common Voice TSV and its clips.

    Parameters
    ----------
    path
        ``train.tsv``, ``dev.tsv``, ``test.tsv``, ``validated.tsv``… of a Common Voice release.
    audio_root
        The folder of the clips (default: ``clips/`` beside the TSV). Nothing outside it is read.

    Required columns: ``path`` and ``sentence``.
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    root = Path(audio_root) if audio_root is not None else path.parent / "clips"
    if not root.is_dir():
        raise FormatError(f"the clips folder {root} does not exist; name the folder holding the clips")
    table = Table(path, limits, delimiter="\t", quoting=csv.QUOTE_NONE, strip=False)  # as written
    table.require(["path"], ["sentence"])
    split = TSV_SPLITS.get(path.stem.lower())
    resolver = Resolver([root])
    plan = ImportPlan(source_format="commonvoice")
    seen: dict[Path, int] = {}
    for line, row in table:
        ref = f"{path.name} line {line}"
        if row is None:
            plan.problems.append(Problem(ref, "more cells than the header has columns; row skipped"))
            continue
        try:
            audio, name = resolver.resolve(row["path"], root)
        except Refused as exc:
            plan.problems.append(Problem(ref, f"{row['path'] or '(empty path)'}: {exc}"))
            continue
        if audio in seen:
            plan.problems.append(
                Problem(ref, f"{name} is listed again (first on line {seen[audio]}); skipped")
            )
            continue
        seen[audio] = line
        metadata = {k: v for k, v in row.items() if k not in NOT_METADATA and v.strip()}
        if row.get("client_id"):
            metadata["speaker"] = row["client_id"]
        plan.items.append(
            SourceItem(
                path=audio,
                name=name,
                metadata=metadata,
                transcript=keep_text(row["sentence"]),
                split=split,
            )
        )
    return plan
