"""Alembic environment: runs against the connection or URL handed over by :mod:`db.migrate`."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from db.engine import make_engine
from db.migrate import allow_table_rebuilds
from db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection: Connection) -> None:
    allow_table_rebuilds(connection)
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("Earmark runs migrations online only: earmark db upgrade")
run_migrations()
