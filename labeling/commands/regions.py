"""``earmark regions``: time regions of a ``regions`` project's recordings in and out, and VAD proposals.

- ``earmark regions import PATH --project P --format F [--annotator NAME] [--users USERS]``
- ``earmark regions export PATH --project P --format F [--annotator NAME | --source S | --all]
  [--audio-root ROOT] [--overwrite]``
- ``earmark regions import-rttm FILE --project P [--annotator NAME]``
- ``earmark regions export-rttm FILE --project P [--annotator NAME | --source final|import|proposal]
  [--overwrite]``
- ``earmark regions import-labelstudio FILE --project P [--users USERS]``
- ``earmark regions propose --project P [--recording ID]``
- ``earmark regions cut --project P --to NEW [--kind classification|transcription] [--dry-run]``
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from labeling.commands import user_errors, workspace

# The format names only: the services load when a command runs.
REGION_FORMATS = ("rttm", "audacity", "csv", "jsonl", "kaldi", "nemo", "lhotse", "labelstudio")
EVERY_SET_FORMATS = ("csv", "jsonl", "nemo", "lhotse", "labelstudio")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "regions",
        help="time regions of long recordings in and out, in eight formats; energy-VAD proposals",
        description="Regions of a project of kind 'regions' (each clip a recording).",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    formats = ", ".join(REGION_FORMATS)
    any_in = actions.add_parser("import", help=f"read regions from a file or folder ({formats})")
    any_in.add_argument("path", type=Path, help="the file (a folder for audacity, kaldi, lhotse)")
    any_in.add_argument("--project", required=True, help="project name or id")
    any_in.add_argument("--format", required=True, choices=REGION_FORMATS, dest="fmt")
    any_in.add_argument("--annotator", help="whose regions they are when the file names no one")
    any_in.add_argument("--users", type=Path, help="labelstudio: its user list, to name annotators by e-mail")
    any_in.set_defaults(run=_import_any)

    any_out = actions.add_parser("export", help=f"write regions to a file or folder ({formats})")
    any_out.add_argument("path", type=Path, help="the file (a folder for audacity, kaldi, lhotse)")
    any_out.add_argument("--project", required=True, help="project name or id")
    any_out.add_argument("--format", required=True, choices=REGION_FORMATS, dest="fmt")
    chosen = any_out.add_mutually_exclusive_group()
    chosen.add_argument("--annotator", help="this annotator's regions")
    chosen.add_argument(
        "--source",
        choices=("final", "import", "proposal"),
        default="final",
        help="the set without a person to write (default: final)",
    )
    chosen.add_argument(
        "--all", action="store_true", dest="every", help=f"every set ({', '.join(EVERY_SET_FORMATS)})"
    )
    any_out.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing file; audacity, kaldi, lhotse: write into a folder that holds files, "
        "replacing those an earlier export wrote there (other files are kept)",
    )
    any_out.add_argument(
        "--audio-root",
        help="name each recording's audio ROOT/<file name> in manifests (default: the audio store's copy)",
    )
    any_out.set_defaults(run=_export_any)

    rttm_in = actions.add_parser("import-rttm", help="read an RTTM file's speaker turns as regions")
    rttm_in.add_argument("file", type=Path)
    rttm_in.add_argument("--project", required=True, help="project name or id")
    rttm_in.add_argument("--annotator", help="whose regions they are (default: the file's own set)")
    rttm_in.set_defaults(run=_import_rttm)

    rttm_out = actions.add_parser("export-rttm", help="write one set of regions per recording as RTTM")
    rttm_out.add_argument("file", type=Path)
    rttm_out.add_argument("--project", required=True, help="project name or id")
    which = rttm_out.add_mutually_exclusive_group()
    which.add_argument("--annotator", help="this annotator's regions")
    which.add_argument(
        "--source",
        choices=("final", "import", "proposal"),
        default="final",
        help="the set without a person to write (default: final)",
    )
    rttm_out.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    rttm_out.set_defaults(run=_export_rttm)

    ls_in = actions.add_parser("import-labelstudio", help="read a Label Studio JSON export's time regions")
    ls_in.add_argument("file", type=Path)
    ls_in.add_argument("--project", required=True, help="project name or id")
    ls_in.add_argument("--users", type=Path, help="Label Studio's user list, to name annotators by e-mail")
    ls_in.set_defaults(run=_import_labelstudio)

    propose = actions.add_parser("propose", help="propose speech regions with the energy VAD")
    propose.add_argument("--project", required=True, help="project name or id")
    propose.add_argument("--recording", type=int, help="one recording (clip id); default: every one")
    propose.set_defaults(run=_propose)

    cut = actions.add_parser(
        "cut",
        help="make a clip project from the final regions: one clip per region, its class or transcript",
        description=(
            "Cut every final region out of its recording as a clip of a new project, labelled with the "
            "region's class (classification) or transcript (transcription); each clip's metadata names "
            "the recording and the span."
        ),
    )
    cut.add_argument("--project", required=True, help="the regions project (name or id)")
    cut.add_argument("--to", required=True, help="name of the new clip project")
    cut.add_argument("--kind", choices=("classification", "transcription"), default="classification")
    cut.add_argument("--dry-run", action="store_true", help="say what would be made; write nothing")
    cut.set_defaults(run=_cut)


def _errors() -> Any:
    from labeling.data.projects import ProjectError
    from labeling.data.regions import RegionsError

    return user_errors(RegionsError, ProjectError)


def _print_import(report: Any) -> None:
    print(f"{report.regions:,} regions in {report.sets:,} sets on {report.recordings:,} recordings")
    if report.added_classes:
        print(f"classes added to the project: {', '.join(report.added_classes)}")
    for problem in report.problems:
        print(f"  not imported: {problem.ref}: {problem.reason}")


def _import_any(args: argparse.Namespace) -> int:
    from labeling.data.regions_io import import_regions

    with workspace() as ws, _errors(), ws.db.write() as s:
        report = import_regions(
            s, args.project, args.path, fmt=args.fmt, annotator=args.annotator, users=args.users
        )
    _print_import(report)
    return 0


def _export_any(args: argparse.Namespace) -> int:
    from labeling.data.export_folders import folder_contents
    from labeling.data.regions_io import FOLDER_FORMATS, export_regions

    before = folder_contents(args.path) if args.fmt in FOLDER_FORMATS else None
    with workspace() as ws, _errors(), ws.db.read() as s:
        n = export_regions(
            s,
            args.project,
            args.path,
            fmt=args.fmt,
            annotator=args.annotator,
            source=args.source,
            every=args.every,
            store=ws.store,
            audio_root=args.audio_root,
            overwrite=args.overwrite,
        )
    print(f"wrote {n:,} regions to {args.path} ({args.fmt})")
    if before is not None and not before.empty:
        print(f"  overwrote the folder, which held {before.describe()}; files no export wrote are kept")
    return 0


def _import_rttm(args: argparse.Namespace) -> int:
    from labeling.data.regions_io import import_rttm

    with workspace() as ws, _errors(), ws.db.write() as s:
        report = import_rttm(s, args.project, args.file, annotator=args.annotator)
    _print_import(report)
    return 0


def _export_rttm(args: argparse.Namespace) -> int:
    from labeling.data.regions_io import export_rttm

    with workspace() as ws, _errors(), ws.db.read() as s:
        n = export_rttm(
            s, args.project, args.file, annotator=args.annotator, source=args.source, overwrite=args.overwrite
        )
    print(f"wrote {n:,} turns to {args.file}")
    return 0


def _import_labelstudio(args: argparse.Namespace) -> int:
    from labeling.data.regions_io import import_labelstudio_regions

    with workspace() as ws, _errors(), ws.db.write() as s:
        report = import_labelstudio_regions(s, args.project, args.file, users=args.users)
    _print_import(report)
    return 0


def _propose(args: argparse.Namespace) -> int:
    from labeling.data.clips import clip_frame
    from labeling.data.regions import propose_regions, regions_project

    with workspace() as ws, _errors():
        with ws.db.read() as s:
            info = regions_project(s, args.project)
            ids = [args.recording] if args.recording else [int(c) for c in clip_frame(s, info.id)["clip_id"]]
        total = 0
        for clip_id in ids:  # one transaction per recording: a long run keeps what it has done
            with ws.db.write() as s:
                total += propose_regions(s, ws.store, info.id, clip_id).after
    print(f"proposed {total:,} speech regions on {len(ids):,} recordings")
    return 0


def _cut(args: argparse.Namespace) -> int:
    from labeling.data.region_clips import cut_final_regions, preview_cut

    with workspace() as ws, _errors():
        if args.dry_run:
            with ws.db.read() as s:
                report = preview_cut(s, args.project, args.to, kind=args.kind)
        else:
            report = cut_final_regions(ws, args.project, args.to, kind=args.kind)
    print(report.summary())
    if note := report.changed_after_final_note():
        print(f"warning: {note}")
    return 0
