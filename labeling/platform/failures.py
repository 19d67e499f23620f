"""Failures of the machinery under a command, said as what to do: :func:`plain_failure`.

A command that meets one of these has nothing wrong with its input; the environment is not ready
(credentials missing) or busy (another process holds the SQLite file's write lock, or a write did not
get its turn within its bound). The command line prints the message instead of a traceback.
"""

from __future__ import annotations

import sqlite3

from db.engine import SQLITE_BUSY_TIMEOUT_MS, WriteWaitTimeout

# Pages catch WriteWaitTimeout from here: they never import db/ themselves.
__all__ = ["WriteWaitTimeout", "plain_failure"]


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    node: BaseException | None = exc
    while node is not None and node not in seen and len(seen) < 20:
        seen.append(node)
        node = node.__cause__ or node.__context__
    return seen


def plain_failure(exc: BaseException) -> str | None:
    """What to tell the user about ``exc``, or None when it is not one of the known failures."""
    for cause in _chain(exc):
        if isinstance(cause, WriteWaitTimeout):
            return str(cause)
        orig = getattr(cause, "orig", cause)  # SQLAlchemy wraps the driver's error
        if isinstance(orig, sqlite3.OperationalError) and (
            "database is locked" in str(orig) or "database is busy" in str(orig)
        ):
            return (
                f"the database stayed locked by another process for more than "
                f"{SQLITE_BUSY_TIMEOUT_MS // 1000} s (a long import, a backup, or a process that hangs "
                "holding it); nothing was changed. Try again once it is done; with many people writing "
                "at once, use PostgreSQL (EARMARK_DATABASE_URL)."
            )
        name = type(cause).__name__
        module = type(cause).__module__
        if module.startswith("botocore") and name in {"NoCredentialsError", "PartialCredentialsError"}:
            return (
                "the S3 audio store (EARMARK_AUDIO_URL) needs credentials and none were found: set "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), and AWS_ENDPOINT_URL for a "
                "store other than Amazon's"
            )
    return None
