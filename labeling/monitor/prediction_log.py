"""A prediction log read a line at a time, every line on its own: :func:`log_lines` and
:func:`parse_line`, with :func:`check_values` for what a line (or a record a script holds) carries.

A log of a day's traffic is written by a server, not a person, and one broken or hostile line must
not cost the others: a line that is too long, not UTF-8, not JSON, nested too deep or holding a value
too large is that line's problem, and reading goes on. The limits are every import's: a value of at
most 1 MiB (labels, transcripts, metadata and file names are never longer), a line of at most 1 MiB,
and JSON nested at most 64 levels.

Lines end at ``\\n`` only (``\\r\\n`` too): JSON text may hold U+2028, U+2029 and U+0085 unescaped,
and those are not line breaks in a log. A UTF-8 byte order mark before the first line is dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

#: The longest line of a prediction log, in bytes (without its line break).
MAX_LINE_BYTES = 1024**2
#: The longest text value (or key) a record may carry, in bytes of UTF-8.
MAX_VALUE_BYTES = 1024**2
#: The deepest nesting of lists and objects in a record (the record itself is level 1).
MAX_DEPTH = 64

_BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 20


class LogFileError(ValueError):
    """The file as a whole is not a prediction log Earmark reads (no line of it could be)."""


def _mib(n: int) -> str:
    return f"{n / 2**20:g} MiB"


def log_lines(path: Path, *, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, str | None, str]]:
    """Yield ``(line number, text, "")`` per non-blank line, or ``(line number, None, reason)`` for
    a line that cannot be read as text; a line longer than ``max_line_bytes`` is skipped without
    being held in memory."""
    with Path(path).open("rb") as f:
        number = 0
        while True:
            raw = f.readline(max_line_bytes + 2)  # the longest line, its "\r\n", and one byte more
            if not raw:
                return
            number += 1
            if number == 1:
                if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
                    raise LogFileError(f"{Path(path).name} is UTF-16; save it as UTF-8 and try again")
                raw = raw.removeprefix(_BOM)
            body = raw.removesuffix(b"\n").removesuffix(b"\r")
            if len(body) > max_line_bytes:
                while raw and not raw.endswith(b"\n"):  # skip the rest of the line
                    raw = f.readline(_CHUNK)
                yield (
                    number,
                    None,
                    f"the line is longer than {_mib(max_line_bytes)}; a log line holds one request",
                )
                continue
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield (
                    number,
                    None,
                    f"not UTF-8 text (byte {exc.start + 1} of the line is 0x{body[exc.start]:02x})",
                )
                continue
            if text.strip():
                yield number, text, ""


def parse_line(text: str) -> Any:
    """One line's JSON value; raises ValueError saying why it is not one Earmark reads."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # an integer of thousands of digits, refused by int()
        raise ValueError(f"not JSON Earmark reads ({exc})") from None
    check_values(value)
    return value


def check_values(value: Any, *, what: str = "the record") -> None:
    """Refuse ``value`` nested deeper than :data:`MAX_DEPTH`, or holding a text or key longer than
    :data:`MAX_VALUE_BYTES`; raises ValueError. Iterative, so no nesting exhausts the stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            # A character is at most 4 bytes of UTF-8: only long texts need encoding to measure.
            if len(node) * 4 > MAX_VALUE_BYTES and len(node.encode("utf-8", "replace")) > MAX_VALUE_BYTES:
                raise ValueError(f"{what} holds a value longer than {_mib(MAX_VALUE_BYTES)}")
            continue
        if isinstance(node, Mapping):
            children = [*node.keys(), *node.values()]
        elif isinstance(node, list | tuple):
            children = list(node)
        else:
            continue
        if depth > MAX_DEPTH:
            raise ValueError(f"{what} is nested deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)


def check_size(meta: Mapping[str, Any]) -> None:
    """Refuse metadata that takes more than :data:`MAX_LINE_BYTES` as JSON (what a log line may hold)."""
    size = len(json.dumps(meta, ensure_ascii=False, default=str).encode("utf-8", "replace"))
    if size > MAX_LINE_BYTES:
        raise ValueError(f"its metadata takes more than {_mib(MAX_LINE_BYTES)}")
