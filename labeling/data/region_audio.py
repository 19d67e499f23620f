"""A file's bytes read from disk only when asked: :class:`FileBytes`, what the region editor's audio
and loudness track are served from.

It behaves as a read-only ``bytes`` does for a web server answering range requests: ``len()`` is the
full size, a slice reads just those bytes, and :meth:`encode` gives the whole. The editor fetches the
audio a range at a time as it plays, and a few bytes of the loudness track around an edge it snaps,
so the server never holds a long recording in memory.
"""

from __future__ import annotations

from pathlib import Path


class FileBytes:
    """The bytes of the file at ``path``; its size is taken once, when made."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.size = self.path.stat().st_size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: slice | int) -> bytes | int:
        if isinstance(key, slice):
            if key.step not in (None, 1):
                raise ValueError("only contiguous slices are read")
            start, stop, _ = key.indices(self.size)
        else:
            start = key + self.size if key < 0 else key
            if not 0 <= start < self.size:
                raise IndexError("index out of range")
            stop = start + 1
        with self.path.open("rb") as fh:
            fh.seek(start)
            data = fh.read(max(0, stop - start))
        return data if isinstance(key, slice) else data[0]

    def encode(self, *_: object) -> bytes:
        """The whole file (what a request without a range gets)."""
        return self.path.read_bytes()
