"""``earmark import PATH --project NAME``: audio from a folder or zip, with names and metadata."""

from __future__ import annotations

import argparse
from pathlib import Path

from labeling.commands import print_json, progress_bar, user_errors, workspace


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="import audio files (folder, recursively, or zip) into a project",
        description="Import audio into a project. Bad files are skipped and listed; the rest lands "
        "in one transaction. Re-running the same import adds nothing.",
    )
    p.add_argument("path", type=Path, help="a folder (searched recursively) or a .zip")
    p.add_argument("--project", required=True, help="project name (created if it does not exist)")
    p.add_argument(
        "--pattern",
        help=r"regex with named groups over file names, e.g. "
        r"'(?P<label>\d)_(?P<speaker>[a-z]+)_(?P<index>\d+)\.wav'",
    )
    p.add_argument("--metadata", type=Path, help="CSV with one row per file or per group value")
    p.add_argument("--join", help="the CSV column to join on: a --pattern group or file_name (default)")
    p.add_argument(
        "--group-by",
        default="speaker",
        help="metadata field whose values never straddle splits (default: speaker)",
    )
    p.add_argument("--no-create", action="store_true", help="fail if the project does not exist")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from labeling.formats.folder import SourceError
    from labeling.importer import ImportRefused, import_path
    from labeling.projects import ProjectError

    update, close = progress_bar("importing", quiet=args.json)
    with workspace() as ws, user_errors(SourceError, ImportRefused, ProjectError):
        try:
            report = import_path(
                ws,
                args.path,
                args.project,
                pattern=args.pattern,
                metadata=args.metadata,
                join=args.join,
                group_by=args.group_by,
                create=not args.no_create,
                progress=update,
            )
        finally:
            close()
    if args.json:
        print_json(report.to_dict())
        return 0
    if report.created_project:
        print(f"created project {report.project!r}")
    print(report.summary())
    for problem in report.rejected[:50]:
        print(f"  rejected {problem.ref}: {problem.reason}")
    if len(report.rejected) > 50:
        print(f"  … and {len(report.rejected) - 50} more (use --json for the full list)")
    for problem in report.warnings[:10]:
        print(f"  note {problem.ref}: {problem.reason}")
    return 0
