"""Sub-commands of ``earmark``; see :mod:`labeling.cli`. Helpers shared by the commands live here."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from db.migrate import SchemaOutOfDate


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@contextmanager
def workspace(*, require_schema: bool = True) -> Iterator[Any]:
    """Open the configured workspace, turning configuration problems into plain messages."""
    from labeling.platform.workspace import Workspace

    try:
        ws = Workspace.open(require_schema=require_schema)
    except SchemaOutOfDate as exc:
        raise UserError(str(exc), exit_code=3) from exc
    except Exception as exc:
        # A wrong URL or an unreachable server: say which database, never the password.
        from sqlalchemy.engine import make_url

        from labeling.platform.config import Settings

        try:
            where = make_url(Settings.from_env().database_url).render_as_string(hide_password=True)
        except Exception:
            where = "the configured database"
        raise UserError(f"cannot open {where}: {exc}") from exc
    try:
        yield ws
    finally:
        ws.close()


@contextmanager
def user_errors(*kinds: type[BaseException]) -> Iterator[None]:
    """Report the given exception types as user errors (their message says what to fix)."""
    try:
        yield
    except kinds as exc:
        raise UserError(str(exc)) from exc


def jsonable(obj: Any) -> Any:
    """Plain JSON values: NaN and infinities become null, numpy scalars become numbers."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", None) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def print_json(obj: Any) -> None:
    json.dump(jsonable(obj), sys.stdout, indent=2, default=str, ensure_ascii=False, allow_nan=False)
    sys.stdout.write("\n")


def progress_bar(desc: str, *, quiet: bool = False) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A tqdm bar on stderr driven by ``(done, total)`` callbacks; returns (update, close)."""
    from tqdm import tqdm

    bar: Any = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if quiet:
            return
        if bar is None:
            bar = tqdm(
                total=total,
                desc=desc,
                unit="file",
                file=sys.stderr,
                leave=False,
                disable=None if not sys.stderr.isatty() else False,
                mininterval=0.2,
            )
        bar.n = done
        bar.refresh() if done == total else bar.update(0)

    def close() -> None:
        if bar is not None:
            bar.close()

    return update, close
