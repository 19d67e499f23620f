"""``earmark slices``: the error-analysis slice table of a run, or of a predictions CSV.

``earmark slices --project NAME [--run ID]`` reports a stored run (the latest by default);
``earmark slices --from-csv PRED.csv --tags a,b,c [--hlp-csv HLP.csv]`` needs no database: PRED.csv
has a ``correct`` column (0/1) or ``y_true`` and ``y_pred``, and one 0/1 column per tag; HLP.csv has
``tag,hlp``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import pandas as pd

from labeling.commands import UserError, print_json, user_errors, workspace
from labeling.platform.ids import row_id

#: The keys of every JSON row of ``--from-csv``.
CSV_ROW_KEYS = ("tag", "n", "share", "accuracy", "error_share", "hlp", "gap", "priority")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "slices",
        help="error analysis by slice: accuracy, share of errors, gap to HLP and priority per tag",
        description="Which slice of the data is worth improving first. Each row is a tag or metadata "
        "value with its size, the model's accuracy on it, its share of all errors, human-level "
        "performance (HLP), the gap to HLP and the priority (gap x share: the accuracy the whole "
        "dataset gains if the slice reaches HLP).",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--project", help="project name or id (reports a stored run)")
    src.add_argument("--from-csv", type=Path, help="a predictions CSV instead of a stored run")
    p.add_argument(
        "--run", dest="run_id", type=row_id, help="--project: the run id (default: the latest run)"
    )
    p.add_argument(
        "--split", default="test", help="--project: the split to score (default test; 'all' for every clip)"
    )
    p.add_argument("--tags", help="--from-csv: comma-separated tag columns of the CSV")
    p.add_argument("--hlp-csv", type=Path, help="--from-csv: a CSV with columns tag,hlp")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run)


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise UserError(
            f"{what} {path} does not exist" if not path.exists() else f"{what} {path} is not a file"
        )
    try:
        frame = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{what} {path} cannot be read as CSV: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _zero_one(frame: pd.DataFrame, col: str, path: Path) -> pd.Series:
    values = frame[col]
    if values.dtype == bool:
        return values.astype("int64")
    text = values.astype("string").str.strip().str.lower()
    mapped = text.map({"1": 1, "0": 0, "true": 1, "false": 0, "1.0": 1, "0.0": 0})
    bad = text.notna() & mapped.isna()
    if bad.any():
        first = values[bad].iloc[0]
        raise UserError(
            f"{path.name}: column {col!r} must hold 0 or 1; row {int(bad.idxmax()) + 2} has {first!r}"
        )
    return mapped.astype("Int64")


def csv_slice_table(pred_csv: Path, *, tags: list[str], hlp_csv: Path | None = None) -> pd.DataFrame:
    """The slice table of a predictions CSV (see the module docstring); raises UserError on bad input."""
    from analysis.slices import slice_table

    preds = _read_csv(pred_csv, "predictions")
    if not tags:
        raise UserError("--tags names no tag columns (give them comma-separated, e.g. --tags car,people)")
    if "correct" in preds.columns:
        correct = _zero_one(preds, "correct", pred_csv)
    elif {"y_true", "y_pred"} <= set(preds.columns):
        both = preds["y_true"].notna() & preds["y_pred"].notna()
        same = preds["y_true"].astype("string") == preds["y_pred"].astype("string")
        correct = same.astype("Int64").where(both, pd.NA)
    else:
        raise UserError(
            f"{pred_csv.name} needs a 'correct' column (0/1) or both 'y_true' and 'y_pred'; "
            f"it has {', '.join(preds.columns) or 'no columns'}"
        )
    missing = [t for t in tags if t not in preds.columns]
    if missing:
        raise UserError(f"{pred_csv.name} has no column for tag(s) {', '.join(missing)}")
    frame = pd.DataFrame({"correct": correct.astype("Float64")})
    for t in tags:
        frame[t] = _zero_one(preds, t, pred_csv).fillna(0).astype("int64")
    hlp = None
    if hlp_csv is not None:
        table = _read_csv(hlp_csv, "HLP file")
        if not {"tag", "hlp"} <= set(table.columns):
            raise UserError(
                f"{hlp_csv.name} needs columns 'tag' and 'hlp'; it has {', '.join(table.columns)}"
            )
        values = pd.to_numeric(table["hlp"], errors="coerce")
        if values.isna().any() or not values.between(0, 1).all():
            raise UserError(f"{hlp_csv.name}: every hlp must be a number between 0 and 1 (a fraction)")
        hlp = pd.Series(values.to_numpy(), index=table["tag"].astype(str).str.strip())
    return slice_table(frame, tag_cols=tags, hlp=hlp)


def _rows(table: pd.DataFrame, keys: tuple[str, ...] | list[str]) -> list[dict[str, Any]]:
    out = []
    for rec in table[list(keys)].to_dict("records"):
        out.append({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in rec.items()})
    return out


def _pct(x: Any) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _print_table(table: pd.DataFrame, metric: str) -> None:
    print(
        f"{'slice':<34}{'clips':>7}{'share':>8}{metric:>10}{'errors':>8}{'HLP':>8}{'gap':>8}{'priority':>10}"
    )
    for r in table.to_dict("records"):
        value = _pct(r[metric]) if metric == "accuracy" else f"{r[metric]:.3f}"
        print(
            f"{str(r['tag'])[:33]:<34}{r['n']:>7}{_pct(r['share']):>8}{value:>10}{_pct(r['error_share']):>8}"
            f"{_pct(r['hlp']):>8}{_pct(r['gap']):>8}{_pct(r['priority']):>10}"
        )


def run(args: argparse.Namespace) -> int:
    if args.from_csv is not None:
        if args.run_id is not None:
            raise UserError("--run applies to --project, not --from-csv")
        tags = [t.strip() for t in (args.tags or "").split(",") if t.strip()]
        table = csv_slice_table(args.from_csv, tags=tags, hlp_csv=args.hlp_csv)
        if args.json:
            print_json(_rows(table, CSV_ROW_KEYS))
        else:
            _print_table(table, "accuracy")
        return 0
    if args.tags or args.hlp_csv:
        raise UserError("--tags and --hlp-csv apply to --from-csv; a project's tags and HLP are stored")
    return _run_project(args)


def _run_project(args: argparse.Namespace) -> int:
    from labeling.data.projects import ProjectError, get_project
    from labeling.model.error_analysis import discovered_slices, overall_metrics, slice_report
    from labeling.model.runs import RunError, get_run, list_runs

    with workspace() as ws, user_errors(RunError, ProjectError), ws.db.read() as s:
        info = get_project(s, args.project)
        if args.run_id is None:
            runs = list_runs(s, info.id)
            if runs.empty:
                raise UserError(
                    f"project {info.name!r} has no runs yet; make one with earmark train --project ..."
                )
            run_id = int(runs["run_id"].iloc[0])
        else:
            run_id = args.run_id
        summary = get_run(s, run_id)
        if summary.project_id != info.id:
            raise UserError(f"run {run_id} belongs to another project")
        split = None if args.split == "all" else args.split
        table = slice_report(s, run_id, split=split)
        overall = overall_metrics(s, run_id, split=split)
        found = discovered_slices(s, run_id, split=split, top_k=10)
    metric = "wer" if "wer" in table.columns else "accuracy"
    if args.json:
        print_json(
            {
                "run_id": run_id,
                "name": summary.name,
                "code_fingerprint": summary.code_fingerprint,
                "split": args.split,
                "overall": overall,
                "slices": _rows(table, list(table.columns)),
                "discovered": _rows(found, list(found.columns)),
            }
        )
        return 0
    print(f"run {run_id}: {summary.name} (code {summary.code_fingerprint[:12]})")
    shown = _pct(overall.get(metric)) if metric == "accuracy" else f"{overall.get(metric):.3f}"
    print(f"{args.split} split: {overall['n']} clips, {metric} {shown}, {overall['errors']} errors\n")
    _print_table(table, metric)
    if not found.empty:
        print("\nwhere the errors concentrate (discovered slices):")
        for r in found.to_dict("records"):
            print(f"  {r['slice']:<60}{r['n']:>6} clips  error rate {_pct(r['error_rate'])}")
    return 0
