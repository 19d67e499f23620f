"""Whole columns from the database at once: call :func:`read_frame`.

A view over a million clips needs a few columns of every row, not ORM objects: SQLAlchemy's per-row
result processing (JSON decoding, time-zone handling) and building a DataFrame from ``Row`` objects
cost more than the query. :func:`read_frame` runs a Core ``select`` on the session's own connection
(same transaction) and builds one array per column:

- SQLite: the DBAPI cursor's rows, transposed, with the cyclic garbage collector paused (it would
  otherwise walk the millions of fresh tuples several times);
- PostgreSQL: ``COPY (query) TO STDOUT`` in CSV, parsed by pandas' C reader.

Values come back as the driver stores them: select plain columns or SQL expressions (timestamps are
text on SQLite; cast or format them in SQL when a page needs them).
"""

from __future__ import annotations

import gc
import io
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Select
from sqlalchemy.orm import Session

#: dtype names :func:`read_frame` understands: numpy ``int64``/``float64``/``bool``, pandas nullable
#: ``Int64``, and ``object`` (strings and anything else, None for NULL).
DTYPES = ("int64", "Int64", "float64", "bool", "object")


@contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _column(values: tuple[Any, ...] | list[Any], dtype: str) -> Any:
    if dtype == "int64":
        return np.fromiter(values, dtype=np.int64, count=len(values))
    if dtype == "float64":
        return np.array(values, dtype=np.float64)  # None becomes NaN
    if dtype == "bool":
        return np.array(values, dtype=bool)
    if dtype == "Int64":
        return pd.array(values, dtype="Int64")
    # A Series of object dtype: pandas would otherwise infer its Arrow-backed string dtype, a copy
    # that makes later element-wise work slower, not faster.
    return pd.Series(values, dtype=object)


def _sqlite(s: Session, stmt: Select[Any], dtypes: Mapping[str, str]) -> pd.DataFrame:
    conn = s.connection()
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = tuple(compiled.params[name] for name in (compiled.positiontup or ()))
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with _gc_paused():
            rows = cursor.execute(str(compiled), params).fetchall()
            columns = list(zip(*rows, strict=True)) if rows else [() for _ in dtypes]
            del rows
            return pd.DataFrame(
                {
                    name: _column(col, dtype)
                    for (name, dtype), col in zip(dtypes.items(), columns, strict=True)
                }
            )
    finally:
        cursor.close()


_CSV_DTYPES = {"int64": "int64", "Int64": "Int64", "float64": "float64", "bool": "object", "object": "object"}


def _postgres(s: Session, stmt: Select[Any], dtypes: Mapping[str, str]) -> pd.DataFrame:
    conn = s.connection()
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    buffer = io.BytesIO()
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor, cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)") as copy:
        for block in copy:
            buffer.write(block)
    buffer.seek(0)
    if not buffer.getbuffer().nbytes:
        return pd.DataFrame({name: _column([], dtype) for name, dtype in dtypes.items()})
    frame = pd.read_csv(
        buffer,
        header=None,
        names=list(dtypes),
        dtype={name: _CSV_DTYPES[d] for name, d in dtypes.items()},
        keep_default_na=False,
        na_values={name: [""] for name in dtypes},
    )
    for name, dtype in dtypes.items():
        if dtype == "bool":
            frame[name] = frame[name].map({"t": True, "f": False}).astype(bool)
        elif dtype == "object":
            # Keep object dtype with None for NULL, as the SQLite path returns.
            frame[name] = pd.Series(frame[name].to_numpy(dtype=object), dtype=object).where(
                frame[name].notna(), None
            )
    return frame


def read_frame(s: Session, stmt: Select, dtypes: Mapping[str, str]) -> pd.DataFrame:
    """The rows of ``stmt`` as a DataFrame with one column per entry of ``dtypes`` (in select order).

    Parameters
    ----------
    stmt : Select
        A Core select whose result columns match ``dtypes`` one for one.
    dtypes : mapping of column name to dtype
        One of :data:`DTYPES` each. ``int64`` columns must hold no NULL (use ``Int64``).
    """
    unknown = sorted(set(dtypes.values()) - set(DTYPES))
    if unknown:
        raise ValueError(f"unknown dtypes {unknown}; use {', '.join(DTYPES)}")
    if s.get_bind().dialect.name == "postgresql":
        return _postgres(s, stmt, dtypes)
    return _sqlite(s, stmt, dtypes)
