"""Content-addressed audio storage: ``AudioStore(root).put(data, ext)`` returns the storage key.

The key is derived from the SHA-256 of the bytes, so the same bytes are stored once however often
they are imported. Stored files are written atomically and made read-only: originals never change.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def storage_key(sha256: str, ext: str) -> str:
    ext = ext.lower().lstrip(".")
    if not ext.isalnum() or len(ext) > 8:
        raise ValueError(f"unsupported audio file extension: {ext!r}")
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError("a storage key needs a lowercase hex SHA-256")
    return f"{sha256[:2]}/{sha256}.{ext}"


@dataclass(frozen=True)
class AudioStore:
    root: Path

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"storage key escapes the audio store: {key!r}")
        return path

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def put(self, data: bytes, ext: str, *, sha256: str | None = None) -> tuple[str, bool]:
        """Store ``data``; returns (key, created). Existing content is left untouched."""
        digest = sha256 or sha256_bytes(data)
        key = storage_key(digest, ext)
        target = self.path(key)
        if target.is_file():
            return key, False
        if not target.parent.is_dir():
            target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            Path(tmp).chmod(0o444)
            Path(tmp).replace(target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return key, True

    def remove(self, key: str) -> None:
        """Remove a file this process just wrote (used to undo a failed import)."""
        self.path(key).unlink(missing_ok=True)
