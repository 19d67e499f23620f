"""Schema migrations: ``upgrade(db)``, ``schema_status(db)``, ``require_current_schema(db)``.

Alembic runs from code (no alembic.ini): the scripts live in ``db/migrations``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from db.engine import Database

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
UPGRADE_HINT = "earmark db upgrade"


class SchemaOutOfDate(RuntimeError):
    """The database is behind (or ahead of) this version of Earmark."""


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation would choke on '%' in passwords.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def allow_table_rebuilds(connection: Connection) -> None:
    """Let batch migrations rebuild a SQLite table that triggers on other tables name.

    Batch mode copies a table, drops it and renames the copy; since SQLite 3.26 the rename re-parses
    every trigger and refuses while one names the dropped table (the triggers on ``resolutions`` name
    ``clips``). The legacy rename skips that check, which SQLite documents for this very pattern; the
    table ends under its old name, so the triggers stay right. No effect on PostgreSQL.
    """
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("PRAGMA legacy_alter_table = ON")


def upgrade(db: Database, revision: str = "head") -> None:
    cfg = alembic_config(db.url)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(db: Database, revision: str) -> None:
    cfg = alembic_config(db.url)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    def message(self) -> str:
        if self.up_to_date:
            return f"Database schema is up to date (revision {self.head})."
        if self.current is None:
            return f"The database has no Earmark schema yet. Create it with: {UPGRADE_HINT}"
        return (
            f"The database schema is at revision {self.current}, this Earmark needs {self.head}. "
            f"Upgrade it with: {UPGRADE_HINT}"
        )


def schema_status(db: Database) -> SchemaStatus:
    return SchemaStatus(current=current_revision(db), head=head_revision())


def require_current_schema(db: Database) -> None:
    """Refuse to work on an out-of-date schema, naming the command that fixes it."""
    status = schema_status(db)
    if not status.up_to_date:
        raise SchemaOutOfDate(status.message())
