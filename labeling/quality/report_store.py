"""Reports that take seconds on a large project, stored beside the data fingerprint they describe.

The agreement report reads every rating of a project; at a million clips that is many seconds of
work. It is kept in ``stored_reports`` with a digest of :func:`labeling.data.clips.data_fingerprint`, so
any process or app server shows it at once while the labels are unchanged, and a page can show the
previous report, saying so, while a worker recomputes it::

    stored = read_report(s, project_id, "agreement", params)
    if stored is None or stored.token != token_digest(token):
        ...compute, then save_report(s, project_id, "agreement", params, token, value, seconds=...)

A report that took less than :data:`INLINE_S` to compute is simply recomputed when stale: only slow
ones are worth showing as they were.

Values are plain JSON with pandas frames inside (written as Parquet, which keeps dtypes and index),
never pickles: a row of the database must not be able to run code in the app.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import StoredReport, utcnow
from labeling.data.clips import data_fingerprint

if TYPE_CHECKING:
    from db.engine import Database

__all__ = [
    "Report",
    "Stored",
    "decode_value",
    "encode_value",
    "is_current",
    "params_key",
    "read_report",
    "save_report",
    "stored_or_computed",
    "token_digest",
]


#: Stale reports that took less than this to compute are recomputed at once rather than shown as stored.
INLINE_S = 1.0


@dataclass(frozen=True)
class Stored:
    """A stored report: its value, the fingerprint digest it was computed on, when, and how long it took."""

    value: Any
    token: str
    computed_at: datetime
    seconds: float

    def usable(self, token: tuple[object, ...], *, allow_stale: bool) -> bool:
        """Current for ``token``, or stale but slow enough to compute that showing it is worth it."""
        return self.token == token_digest(token) or (allow_stale and self.seconds >= INLINE_S)


@dataclass(frozen=True)
class Report:
    """A report from :func:`stored_or_computed`: ``fresh`` False when it predates the labels."""

    value: Any
    fresh: bool
    computed_at: datetime
    seconds: float


def token_digest(token: tuple[object, ...]) -> str:
    """A fixed-length digest of a data fingerprint (its parts are counts, ids and timestamps)."""
    return hashlib.sha256(repr(token).encode("utf-8")).hexdigest()


def params_key(params: Mapping[str, Any]) -> str:
    return json.dumps(dict(params), sort_keys=True, separators=(",", ":"))[:200]


# --- encoding ----------------------------------------------------------------------------------------


def _frame_bytes(frame: pd.DataFrame) -> bytes:
    out = io.BytesIO()
    frame.to_parquet(out, index=True)
    return out.getvalue()


def _nested(column: pd.Series) -> bool:
    return column.dtype == object and bool(column.map(lambda v: isinstance(v, dict | list | tuple)).any())


def encode_value(value: Any) -> Any:
    """``value`` as JSON values, frames and series tagged and written as base64 Parquet."""
    if isinstance(value, pd.DataFrame):
        names = list(value.columns)
        # Columns of dicts or lists (votes, who said what) go as JSON: Parquet would make them structs.
        nested = {str(c): [encode_value(v) for v in value[c]] for c in names if _nested(value[c])}
        frame = value.drop(columns=[c for c in names if str(c) in nested])
        frame.columns = [str(c) for c in frame.columns]  # Parquet wants string column names
        frame.attrs = {}
        return {
            "__frame__": base64.b64encode(_frame_bytes(frame)).decode("ascii"),
            "columns": [str(c) for c in names],
            "column_types": [type(c).__name__ for c in names],
            "nested": nested,
            "attrs": encode_value(dict(value.attrs)),
        }
    if isinstance(value, pd.Series):
        name = "__value__" if value.name is None else str(value.name)
        return {"__series__": encode_value(value.to_frame(name)), "name": value.name}
    if isinstance(value, Mapping):
        return {"__dict__": [[encode_value(k), encode_value(v)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [encode_value(v) for v in value]}
    if isinstance(value, list):
        return [encode_value(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if isinstance(value, pd.Timestamp | datetime):
        return {"__time__": value.isoformat()}
    if value is pd.NA:
        return None
    return value


def _column(name: str, kind: str) -> Any:
    if kind == "int":
        return int(name)
    if kind in ("float", "float64"):
        return float(name)
    return name


def decode_value(value: Any) -> Any:
    """The inverse of :func:`encode_value`."""
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__frame__" in value:
        flat = pd.read_parquet(io.BytesIO(base64.b64decode(value["__frame__"])))
        nested = value["nested"]
        frame = pd.DataFrame(
            {
                n: (
                    pd.Series(decode_value(nested[n]), index=flat.index, dtype=object)
                    if n in nested
                    else flat[n]
                )
                for n in value["columns"]
            },
            index=flat.index,
        )
        frame.columns = [_column(n, k) for n, k in zip(value["columns"], value["column_types"], strict=True)]
        frame.attrs = decode_value(value["attrs"])
        return frame
    if "__series__" in value:
        frame = decode_value(value["__series__"])
        series = frame.iloc[:, 0]
        series.name = value["name"]
        return series
    if "__dict__" in value:
        return {decode_value(k): decode_value(v) for k, v in value["__dict__"]}
    if "__tuple__" in value:
        return tuple(decode_value(v) for v in value["__tuple__"])
    if "__float__" in value:
        return float(value["__float__"])
    if "__time__" in value:
        return pd.Timestamp(value["__time__"])
    raise ValueError(f"not an encoded report value: keys {sorted(value)}")


# --- reading and writing -----------------------------------------------------------------------------


def read_report(s: Session, project_id: int, kind: str, params: Mapping[str, Any]) -> Stored | None:
    """The stored report of ``kind`` for these parameters, whatever data it was computed on, or None."""
    row = s.scalar(
        select(StoredReport).where(
            StoredReport.project_id == project_id,
            StoredReport.kind == kind,
            StoredReport.params == params_key(params),
        )
    )
    if row is None:
        return None
    try:
        value = decode_value(json.loads(zlib.decompress(row.payload)))
    except (ValueError, zlib.error, OSError):
        return None  # written by another version, or damaged: compute it again
    return Stored(value=value, token=row.token, computed_at=row.computed_at, seconds=row.seconds)


def save_report(
    s: Session,
    project_id: int,
    kind: str,
    params: Mapping[str, Any],
    token: tuple[object, ...],
    value: Any,
    *,
    seconds: float,
) -> datetime:
    """Keep ``value`` as the report of ``kind`` computed on the data whose fingerprint is ``token``;
    returns the time it is stored with."""
    payload = zlib.compress(json.dumps(encode_value(value), allow_nan=False).encode("utf-8"), 6)
    key = params_key(params)
    now = utcnow()
    mine = (StoredReport.project_id == project_id, StoredReport.kind == kind, StoredReport.params == key)
    try:
        with s.begin_nested():
            s.execute(delete(StoredReport).where(*mine))
            s.add(
                StoredReport(
                    project_id=project_id,
                    kind=kind,
                    params=key,
                    token=token_digest(token),
                    payload=payload,
                    seconds=float(seconds),
                    computed_at=now,
                )
            )
            s.flush()
    except IntegrityError:
        pass  # another process stored the same report at the same moment: theirs is as good
    return now


def report_stamp(
    s: Session, project_id: int, kind: str, params: Mapping[str, Any]
) -> tuple[str, datetime] | None:
    """The stored report's fingerprint digest and time, without reading the report (a cache key)."""
    row = s.execute(
        select(StoredReport.token, StoredReport.computed_at).where(
            StoredReport.project_id == project_id,
            StoredReport.kind == kind,
            StoredReport.params == params_key(params),
        )
    ).one_or_none()
    return None if row is None else (row[0], row[1])


def is_current(
    db: Database,
    project_id: int,
    kind: str,
    params: Mapping[str, Any],
    *,
    fingerprint: Callable[[Session, int], tuple[object, ...]] = data_fingerprint,
) -> bool:
    """Whether a report of ``kind`` is stored for the project's data as it is now (two index reads);
    ``fingerprint`` as in :func:`stored_or_computed`."""
    with db.read() as s:
        stamp = report_stamp(s, project_id, kind, params)
        return stamp is not None and stamp[0] == token_digest(fingerprint(s, project_id))


def stored_or_computed(
    db: Database,
    project_id: int,
    kind: str,
    params: Mapping[str, Any],
    compute: Callable[[Session], Any],
    *,
    allow_stale: bool = False,
    recompute: bool = False,
    fingerprint: Callable[[Session, int], tuple[object, ...]] = data_fingerprint,
) -> Report:
    """The stored report of ``kind`` while the labels are unchanged, else ``compute(session)``, stored.

    With ``allow_stale`` a report computed on older labels is returned as it is (``fresh`` False)
    when it took :data:`INLINE_S` or more to compute; ``recompute`` computes even when a current one
    is stored (a worker's refresh). ``fingerprint`` says what data the report describes (default:
    the clips and labels, :func:`~labeling.data.clips.data_fingerprint`).
    """
    with db.read() as s:
        token = fingerprint(s, project_id)
        stored = None if recompute else read_report(s, project_id, kind, params)
    if stored is not None and stored.usable(token, allow_stale=allow_stale):
        return Report(stored.value, stored.token == token_digest(token), stored.computed_at, stored.seconds)
    started = time.perf_counter()
    with db.read() as s:
        # The fingerprint is read first, so a report is never stored as newer than its data.
        token = fingerprint(s, project_id)
        value = compute(s)
    seconds = time.perf_counter() - started
    with db.write() as s:
        stored_at = save_report(s, project_id, kind, params, token, value, seconds=seconds)
    return Report(value, True, stored_at, seconds)
