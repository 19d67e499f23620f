"""Row ids as people type them: :func:`as_id` for "name or id" lookups, :func:`row_id` for arguments.

Every table's ids are 32-bit integers on PostgreSQL (``integer``), so a number of 2^31 or more names
no row: such a number is treated as a name (which it may be), or refused as an id with that reason,
and never reaches the database, which would refuse it with an error instead of an answer.
"""

from __future__ import annotations

import argparse

#: The largest id any row can have (PostgreSQL's ``integer``).
MAX_ID = 2**31 - 1


def as_id(ref: object) -> int | None:
    """``ref`` as a row id when it can be one (an int, or ASCII digits, 1 to :data:`MAX_ID`), else None."""
    if isinstance(ref, bool):
        return None
    if isinstance(ref, int):
        value = ref
    elif isinstance(ref, str) and ref.strip().isascii() and ref.strip().isdigit():
        value = int(ref.strip())
    else:
        return None
    return value if 0 < value <= MAX_ID else None


def row_id(text: str) -> int:
    """An argparse type for an id: a whole number from 1 to :data:`MAX_ID`, else a clear refusal."""
    value = as_id(text)
    if value is None:
        stripped = text.strip()
        if stripped.isascii() and stripped.lstrip("-").isdigit():
            raise argparse.ArgumentTypeError(
                f"{stripped} is not an id Earmark gives out (ids run from 1 to {MAX_ID:,})"
            )
        raise argparse.ArgumentTypeError(f"{text!r} is not an id (a whole number such as 12)")
    return value


def positive_seconds(text: str) -> float:
    """An argparse type for a duration: a finite number of seconds above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value
