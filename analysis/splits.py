"""Train/dev/test assignment by group: call :func:`assign_splits`.

Whole groups (speakers, by default) go to one split, so no speaker is heard in training and test.
Groups already placed keep their split, so importing more of a speaker never moves them; new groups
are taken in an order fixed by a hash of their name (not by arrival) and each goes to the split
furthest below its target share of clips.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import pandas as pd

DEFAULT_FRACTIONS: Mapping[str, float] = {"train": 0.8, "dev": 0.1, "test": 0.1}
# Ties go to test first: with few groups, a test split matters more than a dev split.
TIE_ORDER = ("train", "test", "dev")


def _order_key(group: str, salt: str) -> str:
    return hashlib.sha256(f"{salt}\x00{group}".encode()).hexdigest()


def assign_splits(
    groups: pd.Series,
    *,
    existing: Mapping[str, str] | None = None,
    existing_counts: Mapping[str, int] | None = None,
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    salt: str = "",
) -> pd.Series:
    """Assign a split to every row so that each group lands in exactly one split.

    Parameters
    ----------
    groups : Series of str
        The group of each clip (e.g. its speaker), one row per clip.
    existing : mapping group -> split, optional
        Groups that already have a split (from earlier imports); they keep it.
    existing_counts : mapping split -> number of clips, optional
        Clips already in each split, so targets count the whole project.
    fractions : mapping split -> share
        Target share of clips per split; must sum to 1.
    salt : str
        Mixed into the ordering hash (e.g. the project name).

    Returns
    -------
    Series of str, same index as ``groups``.
    """
    if abs(sum(fractions.values()) - 1.0) > 1e-9 or any(v < 0 for v in fractions.values()):
        raise ValueError("split fractions must be non-negative and sum to 1")
    existing = dict(existing or {})
    counts = {name: int((existing_counts or {}).get(name, 0)) for name in fractions}
    sizes = groups.astype(str).value_counts()
    total = sum(counts.values()) + int(sizes.sum())
    mapping = dict(existing)
    for group in sizes.index:
        if group in existing:
            counts[existing[group]] = counts.get(existing[group], 0) + int(sizes[group])
    for group in sorted((g for g in sizes.index if g not in existing), key=lambda g: _order_key(g, salt)):
        order = [s for s in TIE_ORDER if s in fractions] + [s for s in fractions if s not in TIE_ORDER]
        deficits = {s: fractions[s] * total - counts[s] for s in order}
        choice = max(order, key=lambda s: deficits[s])
        mapping[group] = choice
        counts[choice] += int(sizes[group])
    return groups.astype(str).map(mapping).rename("split")
