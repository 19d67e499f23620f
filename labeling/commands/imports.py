"""``earmark import PATH --project NAME [--format F]``: audio from a folder, zip, Label Studio export,
Common Voice release, audiofolder, NeMo manifest, Kaldi data directory or LibriSpeech tree — or labels
(``--format csv``) for clips already imported."""

from __future__ import annotations

import argparse
from pathlib import Path

from labeling.commands import UserError, print_json, progress_bar, user_errors, workspace

#: ``--format`` choices: the audio sources labeling.data.importer.SOURCE_FORMATS reads, and labels files.
FORMATS = (
    "auto",
    "folder",
    "labelstudio",
    "commonvoice",
    "audiofolder",
    "nemo",
    "kaldi",
    "librispeech",
    "csv",
)
#: Files that may be labels for existing clips rather than audio to import.
LABEL_SUFFIXES = (".csv", ".tsv", ".jsonl")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="import audio (folder, zip, Label Studio, Common Voice, audiofolder, NeMo, Kaldi, "
        "LibriSpeech) or labels",
        description="Import audio into a project. Bad files are skipped and listed; the rest lands "
        "in one transaction. Re-running the same import adds nothing. With --format csv, apply labels "
        "made elsewhere to clips the project already holds.",
    )
    p.add_argument(
        "path", type=Path, help="a folder (searched recursively), a .zip, an export file or a labels file"
    )
    p.add_argument("--project", required=True, help="project name (created if it does not exist)")
    p.add_argument(
        "--format",
        dest="fmt",
        default="auto",
        choices=FORMATS,
        help="what PATH is (default: auto, told by its name and first bytes); csv: labels for "
        "existing clips, named by clip_id, sha256 or file_name",
    )
    p.add_argument(
        "--audio-root",
        type=Path,
        help="the folder the source's audio references point into (Label Studio's upload folder or "
        "local files, Common Voice's clips, …); nothing outside it is read",
    )
    p.add_argument(
        "--config",
        type=Path,
        help="Label Studio: the project's labeling config (label_config.xml), which says which column "
        "of a JSON_MIN/CSV export is the label, the tags or the transcript, and lists every class",
    )
    p.add_argument(
        "--users",
        type=Path,
        help="Label Studio: its user list (the JSON /api/users answers, or a CSV of id,email), to name "
        "the annotators a UI export (or an ASR_MANIFEST export) knows only by id",
    )
    p.add_argument("--label-column", help="Label Studio: the control (column) that holds the label")
    p.add_argument(
        "--path-map",
        action="append",
        default=[],
        metavar="OLD=NEW",
        help="NeMo, Kaldi: read audio paths starting with OLD (a manifest made elsewhere: /content/…) "
        "from the local folder NEW; repeat for several",
    )
    p.add_argument("--annotator", help="--format csv: whose annotations rows without an annotator column are")
    p.add_argument(
        "--add-classes",
        action="store_true",
        help="--format csv: add labels the project does not have to its classes (otherwise refused)",
    )
    p.add_argument(
        "--as",
        dest="as_",
        choices=("annotations", "resolutions"),
        default="annotations",
        help="--format csv: apply rows as annotations (default) or as final labels",
    )
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
    p.add_argument(
        "--production",
        action="store_true",
        help="PATH is production traffic: a prediction log (JSON Lines) or a folder of audio that the "
        "live model scores; kept apart from train/dev/test (needs --batch)",
    )
    p.add_argument("--batch", help="--production: the production batch's name (e.g. the day: 2026-11-30)")
    p.add_argument("--no-create", action="store_true", help="fail if the project does not exist")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from labeling.data.formats.base import FormatError, Problem
    from labeling.data.importer import ImportRefused, import_source, not_audio_reason
    from labeling.data.projects import ProjectError

    if args.production:
        return _run_production(args)
    if args.batch:
        raise UserError("--batch names a production batch; add --production")
    if args.fmt == "csv":
        return _run_labels(args)
    if args.annotator or args.as_ != "annotations" or args.add_classes:
        raise UserError("--annotator, --as and --add-classes apply to labels files (--format csv)")
    options: dict = {}
    if args.config is not None:
        options["config"] = args.config
    if args.users is not None:
        options["users"] = args.users
    if args.label_column:
        options["label_from"] = args.label_column
    if args.path_map:
        options["path_map"] = args.path_map
    update, close = progress_bar("importing", quiet=args.json)
    with workspace() as ws, user_errors(FormatError, ImportRefused, ProjectError):
        try:
            report = import_source(
                ws,
                args.path,
                args.project,
                fmt=args.fmt,
                audio_root=args.audio_root,
                pattern=args.pattern,
                metadata=args.metadata,
                join=args.join,
                group_by=args.group_by,
                create=not args.no_create,
                progress=update,
                reader_options=options,
            )
        except (FormatError, ImportRefused) as exc:
            labelstudio = "Label Studio" in str(exc)
            if args.fmt == "auto" and args.path.suffix.lower() in LABEL_SUFFIXES and not labelstudio:
                raise UserError(
                    f"{exc}\n(if the file holds labels for clips the project already has, "
                    "import it with --format csv)"
                ) from exc
            raise
        finally:
            close()
    if args.json:
        print_json(report.to_dict())
        return 0
    if report.created_project:
        print(f"created project {report.project!r}")
    print(f"read as {report.source_format}: {report.summary()}")
    if report.n_annotations or report.n_resolutions:
        print(f"  {report.n_annotations:,} annotations and {report.n_resolutions:,} final labels imported")
    _print_problems(report.rejected, "not imported")
    _print_problems([Problem(name, not_audio_reason(name)) for name in report.ignored], "not imported")
    for problem in report.warnings[:10]:
        print(f"  note {problem.ref}: {problem.reason}")
    return 0


def _print_problems(problems: list, what: str, limit: int = 50) -> None:
    for problem in problems[:limit]:
        print(f"  {what}: {problem.ref}: {problem.reason}")
    if len(problems) > limit:
        print(f"  … and {len(problems) - limit} more (use --json for the full list)")


def _run_labels(args: argparse.Namespace) -> int:
    from labeling.data.formats.base import FormatError
    from labeling.data.labels_import import LabelImportError, import_labels
    from labeling.data.projects import ProjectError

    if args.pattern or args.metadata or args.join or args.audio_root:
        raise UserError("--pattern, --metadata, --join and --audio-root apply to audio, not labels files")
    if args.config or args.users or args.label_column or args.path_map:
        raise UserError("--config, --users, --label-column and --path-map apply to audio sources")
    with workspace() as ws, user_errors(FormatError, LabelImportError, ProjectError):
        report = import_labels(
            ws, args.path, args.project, as_=args.as_, annotator=args.annotator, add_classes=args.add_classes
        )
    if args.json:
        print_json(report.to_dict())
        return 0
    print(report.summary())
    if report.users_created:
        print(f"  new annotator accounts (no password yet): {', '.join(report.users_created)}")
    _print_problems(report.problems, "not applied")
    return 0


def _run_production(args: argparse.Namespace) -> int:
    from labeling.data.projects import ProjectError
    from labeling.monitor.production import ProductionError, import_production

    if not args.batch:
        raise UserError("--production needs --batch NAME (the production batch these requests belong to)")
    if args.fmt != "auto" or args.pattern or args.metadata or args.join or args.config or args.users:
        raise UserError("--production reads a prediction log or a folder of audio; drop the format options")
    from labeling.monitor.settings import MonitoringError

    update, close = progress_bar("logging", quiet=args.json)
    with workspace() as ws, user_errors(ProductionError, ProjectError, MonitoringError):
        try:
            report = import_production(
                ws, args.path, args.project, batch=args.batch, audio_root=args.audio_root, progress=update
            )
        finally:
            close()
    if args.json:
        print_json(report.to_dict())
        return 0
    print(report.summary())
    _print_problems(report.rejected, "not taken")
    return 0
