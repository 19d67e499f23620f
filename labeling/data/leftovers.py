"""What killed imports and exports leave behind, swept when the next one starts.

* ``.incoming-*`` files in the audio store: a copy into the store that never got its final name.
* ``.<name>.partial-*`` folders and files beside an export: an export that never finished.
* Orphaned audio: stored files no clip refers to (an import that failed after storing them).

A leftover is removed only when it is older than the grace period (an hour) and no live process
holds its lock: writers hold an advisory lock (:func:`hold`) on what they are writing. Orphaned audio
is judged against the database, so audio another import has stored and is about to commit keeps its
file (storing the same bytes again renews its age).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import select

from db.engine import Database
from db.models import Clip, ProductionClip
from labeling.platform.storage import AudioStorage

GRACE_S = 3600.0

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: age alone decides
    fcntl = None  # type: ignore[assignment]


def hold(path: Path) -> int | None:
    """Take the advisory lock that tells a sweep ``path`` is being written; close the fd to release."""
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def release(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def _in_use(path: Path) -> bool:
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return True  # cannot look: leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def sweep_stale(paths: Iterable[Path], *, grace_s: float = GRACE_S, now: float | None = None) -> list[Path]:
    """Remove the given leftovers that are older than ``grace_s`` and not locked; returns what went."""
    now = time.time() if now is None else now
    removed = []
    for path in paths:
        try:
            if now - path.lstat().st_mtime < grace_s or _in_use(path):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed


def incoming_files(store: AudioStorage) -> list[Path]:
    """Unfinished copies into a local store."""
    if not store.is_local:
        return []
    root = Path(store.url)
    return list(root.glob("??/.incoming-*")) if root.is_dir() else []


def partial_exports(folder: Path) -> list[Path]:
    """Unfinished exports (folders and zips) directly in ``folder``."""
    folder = Path(folder)
    return list(folder.glob(".*.partial-*")) if folder.is_dir() else []


#: Every column that names stored audio: what any of them names is in use.
AUDIO_REFERENCES = (Clip.storage_key, ProductionClip.storage_key)


def sweep_orphan_audio(db: Database, store: AudioStorage, *, grace_s: float = GRACE_S) -> list[str]:
    """Remove stored audio that no clip (of any project, deleted or not) or logged production request
    refers to, once it is older
    than ``grace_s``: an import still running has stored its files within that time, or renewed them."""
    keys = list(store.iter_keys())
    if not keys:
        return []
    with db.read() as s:
        used = {key for column in AUDIO_REFERENCES for key in s.scalars(select(column).distinct())}
    removed = []
    for key in keys:
        if key in used:
            continue
        age = store.age_seconds(key)
        if age is None or age < grace_s:
            continue
        # Looked up again just before removing: an import may have committed it meanwhile.
        with db.read() as s:
            if any(s.scalar(select(column).where(column == key).limit(1)) for column in AUDIO_REFERENCES):
                continue
        store.remove(key)
        removed.append(key)
    return removed
