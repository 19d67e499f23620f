"""``earmark train --project NAME [--version V]``: train the fixed model and store the run."""

from __future__ import annotations

import argparse
import json
import math

from labeling.commands import UserError, print_json, user_errors, workspace
from labeling.commands._stages import StageReporter


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train the fixed model on a project's train split and store its predictions",
        description="Train the built-in model (the same code every time) on the train split of the "
        "current final labels, or of a dataset version, predict every clip (training clips out of fold) "
        "and store the run. Prints metrics overall, per split and per slice of the test split, the run "
        "id and the code fingerprint.",
    )
    p.add_argument("--project", required=True, help="project name or id")
    p.add_argument(
        "--version", help="train on this dataset version (name or id) instead of the current labels"
    )
    p.add_argument("--name", help="a name for the run")
    p.add_argument(
        "--params",
        help='model parameters as JSON over the defaults, e.g. \'{"C": 3}\' or \'{"classifier": "logreg"}\'',
    )
    p.add_argument("--json", action="store_true", help="print the run as JSON")
    p.set_defaults(run=run)


def _fmt(x: object) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def run(args: argparse.Namespace) -> int:
    from labeling.data.projects import ProjectError
    from labeling.model.runs import RunError, train_run

    params = None
    if args.params:
        try:
            params = json.loads(args.params)
        except json.JSONDecodeError as exc:
            raise UserError(f"--params is not JSON: {exc}") from exc
        if not isinstance(params, dict):
            raise UserError("--params must be a JSON object such as '{\"C\": 3}'")
    report = StageReporter(quiet=args.json)
    with workspace() as ws, user_errors(RunError, ProjectError):
        try:
            summary = train_run(
                ws, args.project, version=args.version, params=params, name=args.name, progress=report
            )
        finally:
            report.close()
    if args.json:
        print_json(summary.to_dict())
        return 0
    m = summary.metrics
    print(f"run {summary.id}: {summary.name}")
    print(f"code fingerprint {summary.code_fingerprint}")
    print(f"{'split':<10}{'clips':>7}{'accuracy':>10}{'macro F1':>10}")
    for split in ("overall", "train", "dev", "test"):
        if split in m:
            row = m[split]
            print(f"{split:<10}{row['n']:>7}{_fmt(row.get('accuracy')):>10}{_fmt(row.get('macro_f1')):>10}")
    slices = m.get("slices", {})
    rows = slices.get("rows", [])
    if rows:
        print(f"\nslices of the {slices.get('split')} split (worst accuracy first):")
        print(f"  {'slice':<32}{'clips':>6}{'accuracy':>9}{'errors':>9}")
        for r in sorted(rows, key=lambda r: (r.get("accuracy") is None, r.get("accuracy") or 0))[:15]:
            print(f"  {r['tag']:<32}{r['n']:>6}{_fmt(r.get('accuracy')):>9}{_fmt(r.get('error_share')):>9}")
    print(f"\nnext: earmark slices --project {args.project!r} --run {summary.id}")
    return 0
