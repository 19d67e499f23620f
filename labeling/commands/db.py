"""``earmark db upgrade|check|backup|restore``."""

from __future__ import annotations

import argparse
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
    b = dbsub.add_parser(
        "backup",
        help="write a consistent backup to PATH (SQLite: a database file; PostgreSQL: pg_dump -Fc)",
    )
    b.add_argument("path", type=Path)
    b.set_defaults(run=backup)
    r = dbsub.add_parser(
        "restore",
        help="restore a backup made by 'earmark db backup' into an empty database",
        description="Restore a backup made by 'earmark db backup' into an empty database of the same "
        "engine. A PostgreSQL archive is SQL that pg_restore runs: Earmark restores one only when its "
        "table of contents holds exactly Earmark's schema objects and data (anything else, such as a "
        "function of its own or a COPY ... FROM PROGRAM, is refused before anything is restored), and "
        "with --no-owner --no-privileges. Restore with a role that owns the new database, not a "
        "superuser, and only archives you made.",
    )
    r.add_argument("path", type=Path)
    r.set_defaults(run=restore)


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
    from db.backup import BackupError
    from db.backup import backup as do_backup

    with workspace(require_schema=False) as ws:
        try:
            done = do_backup(ws.db, args.path)
        except BackupError as exc:
            raise UserError(str(exc)) from exc
        where = make_url(ws.db.url).render_as_string(hide_password=True)
        print(f"backed up {where} to {done.path} ({done.size_bytes / 2**20:.1f} MiB, {done.engine})")
    return 0


def restore(args: argparse.Namespace) -> int:
    from db.backup import BackupError
    from db.backup import restore as do_restore
    from db.migrate import schema_status

    with workspace(require_schema=False) as ws:
        try:
            do_restore(ws.db, args.path)
        except BackupError as exc:
            raise UserError(str(exc)) from exc
        where = make_url(ws.db.url).render_as_string(hide_password=True)
        print(f"restored {args.path} into {where}")
        status = schema_status(ws.db)
        if not status.up_to_date:
            print(status.message())
    return 0
