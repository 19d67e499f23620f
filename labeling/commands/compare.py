"""``earmark compare RUN_A RUN_B [--json]``: two runs side by side, and whether only the data changed."""

from __future__ import annotations

import argparse

from labeling.commands import print_json, user_errors, workspace
from labeling.platform.ids import row_id


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="compare two model runs: metrics and slices with deltas, McNemar's test, data diff",
        description="Compare run B with the baseline run A on the test clips both predicted: accuracy "
        "overall and per slice with deltas, McNemar's exact test, the change of the confusion matrix and "
        "the diff of their dataset versions. When the code fingerprints differ, the change is reported "
        "as NOT data-only.",
    )
    p.add_argument("run_a", type=row_id, help="the baseline run id")
    p.add_argument("run_b", type=row_id, help="the run to compare with it")
    p.add_argument("--split", default="test", choices=("train", "dev", "test"), help="clips to compare on")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from labeling.model.compare import CompareError, compare_runs

    with workspace() as ws, user_errors(CompareError), ws.db.read() as s:
        cmp = compare_runs(s, args.run_a, args.run_b, split=args.split)
    if args.json:
        print_json(cmp.to_dict())
        return 0
    for side, summary, version in (("A", cmp.run_a, cmp.version_a), ("B", cmp.run_b, cmp.version_b)):
        fp = summary.data_fingerprint
        data = f"data {fp[:12]}" if fp else "data not fingerprinted"
        print(f"{side}: run {summary.id} {summary.name!r} on {version or 'live labels'} ({data})")
    for warning in cmp.warnings:
        print(f"WARNING: {warning}")
    print(("CODE CHANGED — " if cmp.code_changed else "") + cmp.verdict())
    print("\n" + cmp.overall.round(4).to_string(index=False))
    if not cmp.slices.empty:
        print("\nper slice (accuracy):\n" + cmp.slices.round(3).to_string(index=False))
    if cmp.data_diff is not None:
        d = cmp.data_diff.summary()
        print(
            f"\ndata: +{d['added']} -{d['removed']} clips, {d['relabelled']} relabelled, "
            f"{d['retagged']} re-tagged, {d['resplit']} re-split"
        )
    return 0
