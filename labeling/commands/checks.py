"""``earmark checks --project NAME [--json] [--fix CHECK [--yes]]``: data checks, and fixes that ask first."""

from __future__ import annotations

import argparse
import sys

from labeling.commands import UserError, print_json, progress_bar, user_errors, workspace


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "checks",
        help="check clips against the conventions' rules, and fix silence or loudness",
        description="Silence at the edges and loudness against the current conventions' rules, clipping, "
        "sample rates, duration outliers, the same audio twice and near duplicates. With --fix, the clips "
        "of one finding get fixed copies that take over their annotations, final labels, flags, gold "
        "examples and queue places; what would change is printed first, and nothing is written until "
        "you answer yes (or pass --yes).",
    )
    p.add_argument("--project", required=True, help="project name or id")
    p.add_argument("--json", action="store_true", help="print the findings (and any fix) as JSON")
    p.add_argument("--no-near-duplicates", action="store_true", help="skip the feature-based duplicate check")
    p.add_argument("--fix", metavar="CHECK", help="fix the clips of this finding (leading_silence, ...)")
    p.add_argument("--yes", action="store_true", help="fix without asking (for scripts)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from labeling.data.checks import FIXES_FOR, CheckError, fix_clips, preview_fix, run_data_checks
    from labeling.data.projects import ProjectError

    update, close = progress_bar("decoding", quiet=args.json)
    with workspace() as ws, user_errors(CheckError, ProjectError):
        try:
            report = run_data_checks(
                ws, args.project, near_duplicates=not args.no_near_duplicates, progress=update
            )
        finally:
            close()
        out = report.to_dict()
        if not args.json:
            print(f"{report.n_clips:,} clips checked against the rules of the {report.rules_source}")
            print(report.summary[["check", "n_clips", "fixable"]].to_string(index=False))
        if args.fix is None:
            if args.json:
                print_json(out)
            return 0
        if args.fix not in FIXES_FOR:
            raise UserError(f"only {', '.join(FIXES_FOR)} can be fixed; got {args.fix!r}")
        ids = report.findings.loc[report.findings["check"] == args.fix, "clip_id"].astype(int).tolist()
        if not ids:
            print(f"no clips with {args.fix}: nothing to fix", file=sys.stderr)
            return 0
        actions = [FIXES_FOR[args.fix]]
        preview = preview_fix(ws, args.project, ids, actions=actions)
        print(preview.summary(), file=sys.stderr)
        if not args.yes:
            if not sys.stdin.isatty():
                raise UserError("not fixing without a yes: run it in a terminal to answer, or pass --yes")
            if input(f"Fix {len(ids):,} clips? [y/N] ").strip().lower() not in ("y", "yes"):
                print("nothing changed", file=sys.stderr)
                return 1
        update, close = progress_bar("fixing", quiet=args.json)
        try:
            fixed = fix_clips(ws, args.project, ids, actions=actions, progress=update)
        finally:
            close()
    if args.json:
        print_json({**out, "preview": preview.to_dict(), "fixed": fixed.fixed, "kept": fixed.kept})
    else:
        print(fixed.summary())
    return 0
