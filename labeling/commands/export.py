"""``earmark export --project NAME --format FMT --out PATH``: the labelled dataset in a format others read."""

from __future__ import annotations

import argparse
from pathlib import Path

from labeling.commands import print_json, progress_bar, user_errors, workspace

#: The writers' names (labeling.data.export.EXPORT_FORMATS), spelt out so ``earmark --help`` stays quick.
FORMATS = (
    "csv",
    "jsonl",
    "audiofolder",
    "nemo",
    "kaldi",
    "labelstudio",
    "lhotse",
    "webdataset",
    "commonvoice",
    "librispeech",
    "annotations",
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a project's clips and final labels (csv, jsonl, audiofolder, nemo, kaldi, labelstudio, "
        "lhotse, webdataset, commonvoice, librispeech; annotations: one row per annotation)",
        description="Export a project's clips with their final labels, tags, split and metadata into a "
        "new folder, with a MANIFEST.json of every file's SHA-256. The folder appears whole or not at all.",
    )
    p.add_argument("--project", required=True, help="project name or id")
    p.add_argument("--format", dest="fmt", required=True, choices=FORMATS, help="what to write")
    p.add_argument(
        "--out",
        type=_out,
        required=True,
        help="a new (or empty) folder to write, or a new s3://bucket/prefix in the object store",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a folder that already holds files: those an earlier export wrote there are "
        "replaced, any other file is kept (without it such a folder is refused, its files named)",
    )
    p.add_argument("--version", help="a dataset version (name or id): export its frozen labels")
    p.add_argument(
        "--no-copy-audio",
        dest="copy_audio",
        action="store_false",
        help="refer to the stored audio files instead of copying them (not for audiofolder, webdataset, "
        "commonvoice, librispeech)",
    )
    p.add_argument(
        "--metadata-format",
        choices=("jsonl", "csv"),
        help="audiofolder: write metadata.jsonl (the default) or metadata.csv (for datasets' loader: "
        "cells exactly as the data, nothing escaped for spreadsheets)",
    )
    p.add_argument(
        "--shard-size",
        type=float,
        metavar="MB",
        help="webdataset: the size each .tar shard stays under, in megabytes (default 100)",
    )
    p.add_argument("--resolved-only", action="store_true", help="only clips with a final label")
    p.add_argument(
        "--min-agreement",
        type=float,
        metavar="SHARE",
        help="only clips whose annotators agreed with the final label at least this much (0-1)",
    )
    p.add_argument("--exclude-flagged", action="store_true", help="leave out clips with an open flag")
    p.add_argument("--exclude-derived", action="store_true", help="leave out clips made from another clip")
    p.add_argument("--exclude-augmented", action="store_true", help="leave out augmented clips")
    p.add_argument(
        "--split",
        action="append",
        choices=("train", "dev", "test"),
        help="only this split (repeat for several)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from labeling.data.export import ExportError, ExportFilters, export_project
    from labeling.data.formats.base import FormatError
    from labeling.data.projects import ProjectError

    update, close = progress_bar("exporting", quiet=args.json)
    with workspace() as ws, user_errors(ExportError, FormatError, ProjectError):
        filters = ExportFilters(
            resolved_only=args.resolved_only,
            min_agreement=args.min_agreement,
            exclude_flagged=args.exclude_flagged,
            exclude_derived=args.exclude_derived,
            exclude_augmented=args.exclude_augmented,
            splits=tuple(dict.fromkeys(args.split or ())),
        )
        try:
            report = export_project(
                ws,
                args.project,
                fmt=args.fmt,
                out=args.out,
                filters=filters,
                version=args.version,
                copy_audio=args.copy_audio,
                progress=update,
                metadata_format=args.metadata_format,
                shard_size=round(args.shard_size * 1_000_000) if args.shard_size is not None else None,
                overwrite=args.overwrite,
            )
        finally:
            close()
    if args.json:
        print_json(report.to_dict())
        return 0
    print(report.summary())
    for what, files in report.overwritten.items():
        if files:
            shown = ", ".join(files[:8]) + (f", … {len(files) - 8} more" if len(files) > 8 else "")
            print(f"  {what}: {shown}")
    if report.dataset_version:
        print(f"  dataset version {report.version_name!r}: {report.dataset_version}")
    for name, fingerprint in report.model_fingerprints.items():
        print(f"  model {name}: code {fingerprint[:16]}…")
    return 0


def _out(value: str) -> Path | str:
    """A local folder, or an ``s3://`` prefix kept as the URL it is."""
    from labeling.platform.storage import is_remote_url

    return value if is_remote_url(value) else Path(value)
