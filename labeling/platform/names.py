"""Names people type — of projects, users, classes, tags, versions — checked the same way everywhere."""

from __future__ import annotations

import unicodedata

#: The longest name accepted, in characters.
MAX_NAME_LENGTH = 200


def validate_name(name: str, *, what: str, error: type[ValueError] = ValueError) -> str:
    """``name`` NFC-normalised and stripped; ``error`` (a message naming ``what``) if it is empty, longer
    than :data:`MAX_NAME_LENGTH` or holds control characters."""
    name = unicodedata.normalize("NFC", (name or "").strip())
    if not name:
        raise error(f"the {what} is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise error(f"the {what} is longer than {MAX_NAME_LENGTH} characters")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise error(f"the {what} contains control characters")
    return name
