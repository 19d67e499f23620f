"""``earmark db upgrade|check|backup``."""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

from sqlalchemy.engine import make_url

from labeling.commands import UserError, workspace


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="create, upgrade, check or back up the database")
    dbsub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    dbsub.add_parser("upgrade", help="migrate the database to this version's schema").set_defaults(
        run=upgrade
    )
    dbsub.add_parser("check", help="say whether the schema is current (exit 3 if not)").set_defaults(
        run=check
    )
    b = dbsub.add_parser("backup", help="copy a consistent snapshot of the SQLite database to PATH")
    b.add_argument("path", type=Path)
    b.set_defaults(run=backup)


def upgrade(args: argparse.Namespace) -> int:
    from db.migrate import schema_status
    from db.migrate import upgrade as do_upgrade

    with workspace(require_schema=False) as ws:
        before = schema_status(ws.db)
        do_upgrade(ws.db)
        after = schema_status(ws.db)
        where = make_url(ws.db.url).render_as_string(hide_password=True)
        if before.current == after.current:
            print(f"{where}: already at revision {after.current}")
        else:
            print(f"{where}: upgraded from {before.current or 'empty'} to {after.current}")
    return 0


def check(args: argparse.Namespace) -> int:
    from db.migrate import schema_status

    with workspace(require_schema=False) as ws:
        status = schema_status(ws.db)
        print(status.message())
        return 0 if status.up_to_date else 3


def backup(args: argparse.Namespace) -> int:
    with workspace(require_schema=False) as ws:
        url = make_url(ws.db.url)
        if url.get_backend_name() != "sqlite":
            safe = url.set(drivername="postgresql").render_as_string(hide_password=True)
            raise UserError(
                "earmark db backup copies SQLite databases. For PostgreSQL use its own tool, e.g.\n"
                f"  pg_dump --format=custom --file {args.path} '{safe}'",
                exit_code=2,
            )
        target = Path(args.path).expanduser()
        if target.exists():
            raise UserError(f"{target} already exists; choose a new file name")
        target.parent.mkdir(parents=True, exist_ok=True)
        # SQLite's online backup API: a consistent copy even while the app is writing.
        src = sqlite3.connect(str(url.database))
        dst = sqlite3.connect(str(target))
        try:
            with dst:
                src.backup(dst)
        finally:
            dst.close()
            src.close()
        print(f"backed up {url.database} to {target} ({target.stat().st_size / 2**20:.1f} MiB)")
    return 0
