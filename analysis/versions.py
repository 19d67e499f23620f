"""Dataset versions as plain tables: call :func:`content_hash` for the identity of a snapshot and
:func:`version_diff` for what changed between two snapshots.

A snapshot is one row per clip with columns ``clip_id``, ``sha256`` (of the clip's audio bytes),
``label``, ``transcript``, ``tags`` (list of str) and ``split``. Its hash is taken over a canonical
serialisation that names clips by their audio hash, not their database id, so the same data labelled
the same way has the same hash in any database, whatever order the rows come in.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

ITEM_COLUMNS = ("clip_id", "sha256", "label", "transcript", "tags", "split")


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return None
    return str(value)


def _tags(value: Any) -> list[str]:
    if value is None or isinstance(value, float):
        return []
    if isinstance(value, str):
        return [value]
    return sorted({str(t) for t in value})


def canonical_lines(items: pd.DataFrame) -> list[str]:
    """One JSON line per clip, sorted by the clip's audio hash: the text :func:`content_hash` hashes.

    Each line is ``{"label", "sha256", "split", "tags", "transcript"}`` with keys sorted, tags sorted
    and de-duplicated, missing labels as ``null``, no whitespace and non-ASCII kept as UTF-8.
    """
    missing = [c for c in ("sha256", "label", "transcript", "tags", "split") if c not in items.columns]
    if missing:
        raise ValueError(f"a snapshot needs the columns {', '.join(missing)}")
    records = [
        {
            "sha256": str(sha),
            "label": _text(label),
            "transcript": _text(transcript),
            "tags": _tags(tags),
            "split": str(split),
        }
        for sha, label, transcript, tags, split in zip(
            items["sha256"], items["label"], items["transcript"], items["tags"], items["split"], strict=True
        )
    ]
    shas = [str(r["sha256"]) for r in records]
    if len(set(shas)) != len(shas):
        raise ValueError("a snapshot holds each audio content once; duplicate sha256 values found")
    records.sort(key=lambda r: str(r["sha256"]))
    return [json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False) for r in records]


def content_hash(items: pd.DataFrame) -> str:
    """SHA-256 (hex) of :func:`canonical_lines` joined by newlines, each line terminated by one."""
    digest = hashlib.sha256()
    for line in canonical_lines(items):
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


@dataclass(frozen=True)
class VersionDiff:
    """What changed from snapshot ``old`` to snapshot ``new``.

    Attributes
    ----------
    added, removed
        Rows of ``new`` / ``old`` whose clip is not in the other snapshot.
    relabelled
        ``clip_id, old_label, new_label, old_transcript, new_transcript`` for clips whose label or
        transcript differs.
    retagged
        ``clip_id, added_tags, removed_tags`` (lists) for clips whose tag set differs.
    resplit
        ``clip_id, old_split, new_split``.
    by_split, by_tag
        Clip counts per split / per tag in each snapshot: ``split|tag, old, new, delta``.
    """

    added: pd.DataFrame
    removed: pd.DataFrame
    relabelled: pd.DataFrame
    retagged: pd.DataFrame
    resplit: pd.DataFrame
    by_split: pd.DataFrame
    by_tag: pd.DataFrame

    def summary(self) -> dict[str, Any]:
        """Counts, as stored in a dataset version's ``changes``."""
        return {
            "added": len(self.added),
            "removed": len(self.removed),
            "relabelled": len(self.relabelled),
            "retagged": len(self.retagged),
            "resplit": len(self.resplit),
            "by_split": {
                str(r.split): {"old": int(r.old), "new": int(r.new)} for r in self.by_split.itertuples()
            },
            "by_tag": {str(r.tag): int(r.delta) for r in self.by_tag.itertuples() if r.delta},
        }

    @property
    def unchanged(self) -> bool:
        return not any(
            len(f) for f in (self.added, self.removed, self.relabelled, self.retagged, self.resplit)
        )


def _counts(name: str, old: pd.Series, new: pd.Series) -> pd.DataFrame:
    frame = pd.DataFrame({"old": old, "new": new}).fillna(0).astype(int)
    frame["delta"] = frame["new"] - frame["old"]
    frame.index.name = name
    return frame.reset_index().sort_values(name, ignore_index=True)


def _tag_counts(items: pd.DataFrame) -> pd.Series:
    exploded = items["tags"].map(_tags).explode().dropna()
    return exploded.value_counts()


def version_diff(old: pd.DataFrame, new: pd.DataFrame) -> VersionDiff:
    """Compare two snapshots (columns :data:`ITEM_COLUMNS`; ``old`` may be empty for a first version).

    Clips are matched by ``clip_id``. Extra columns of ``new`` (e.g. ``original_name``) are kept in
    ``added``, of ``old`` in ``removed``.
    """
    for what, frame in (("old", old), ("new", new)):
        missing = [c for c in ("clip_id", "label", "transcript", "tags", "split") if c not in frame.columns]
        if missing:
            raise ValueError(f"the {what} snapshot lacks the columns {', '.join(missing)}")
    old = old.astype({"clip_id": "int64"})
    new = new.astype({"clip_id": "int64"})
    old_ids, new_ids = set(old["clip_id"]), set(new["clip_id"])
    added = new[~new["clip_id"].isin(old_ids)].reset_index(drop=True)
    removed = old[~old["clip_id"].isin(new_ids)].reset_index(drop=True)
    both = old.merge(new, on="clip_id", suffixes=("_old", "_new"))

    def differs(col: str) -> pd.Series:
        # Lists, not Series: a Series of None turns into NaN, and NaN != NaN.
        a = [_text(v) for v in both[f"{col}_old"]]
        b = [_text(v) for v in both[f"{col}_new"]]
        return pd.Series([x != y for x, y in zip(a, b, strict=True)], index=both.index, dtype=bool)

    relabel = differs("label") | differs("transcript")
    relabelled = pd.DataFrame(
        {
            "clip_id": both.loc[relabel, "clip_id"],
            "old_label": both.loc[relabel, "label_old"],
            "new_label": both.loc[relabel, "label_new"],
            "old_transcript": both.loc[relabel, "transcript_old"],
            "new_transcript": both.loc[relabel, "transcript_new"],
        }
    ).reset_index(drop=True)
    old_tags = both["tags_old"].map(_tags)
    new_tags = both["tags_new"].map(_tags)
    added_tags = [sorted(set(b) - set(a)) for a, b in zip(old_tags, new_tags, strict=True)]
    removed_tags = [sorted(set(a) - set(b)) for a, b in zip(old_tags, new_tags, strict=True)]
    retag = pd.Series([bool(a or r) for a, r in zip(added_tags, removed_tags, strict=True)], index=both.index)
    retagged = pd.DataFrame(
        {
            "clip_id": both.loc[retag, "clip_id"],
            "added_tags": pd.Series(added_tags, index=both.index, dtype=object)[retag],
            "removed_tags": pd.Series(removed_tags, index=both.index, dtype=object)[retag],
        }
    ).reset_index(drop=True)
    resplit_mask = differs("split")
    resplit = pd.DataFrame(
        {
            "clip_id": both.loc[resplit_mask, "clip_id"],
            "old_split": both.loc[resplit_mask, "split_old"],
            "new_split": both.loc[resplit_mask, "split_new"],
        }
    ).reset_index(drop=True)
    by_split = _counts("split", old["split"].value_counts(), new["split"].value_counts())
    by_tag = _counts("tag", _tag_counts(old), _tag_counts(new))
    return VersionDiff(
        added=added,
        removed=removed,
        relabelled=relabelled,
        retagged=retagged,
        resplit=resplit,
        by_split=by_split,
        by_tag=by_tag,
    )
