"""``earmark label-issues --project NAME [--json] [--flag]``: clips whose final label looks wrong."""

from __future__ import annotations

import argparse

from labeling.commands import print_json, user_errors, workspace
from labeling.commands._stages import StageReporter


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "label-issues",
        help="find clips whose final label looks wrong (confident learning on the fixed model)",
        description="Every labelled clip, in every split, is predicted by the fixed model trained on "
        "folds without it; confident learning lists the clips whose given label is probably wrong, "
        "lowest self-confidence first.",
    )
    p.add_argument("--project", required=True, help="project name or id")
    p.add_argument("--flag", action="store_true", help="also flag them and raise their review priority")
    p.add_argument("--limit", type=int, default=50, help="rows to print (not with --json; default 50)")
    p.add_argument("--json", action="store_true", help="print every candidate as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from labeling.data.projects import ProjectError, get_project
    from labeling.model.runs import RunError
    from labeling.quality.label_issues import LabelIssueError, find_label_issue_candidates, flag_label_issues

    report = StageReporter(quiet=args.json)
    with workspace() as ws, user_errors(LabelIssueError, ProjectError, RunError):
        try:
            found = find_label_issue_candidates(ws, args.project, progress=report)
        finally:
            report.close()
        flagged = 0
        if args.flag:
            with ws.db.write() as s:
                flagged = flag_label_issues(s, get_project(s, args.project).id, found)
    if args.json:
        print_json(
            {
                "project": args.project,
                "n_candidates": len(found),
                "n_flagged": flagged,
                "candidates": [
                    {
                        "clip_id": int(r.clip_id),
                        "file_name": r.original_name,
                        "split": r.split,
                        "given_label": r.given_label,
                        "suggested_label": r.suggested_label,
                        "self_confidence": round(float(r.self_confidence), 4),
                    }
                    for r in found.itertuples(index=False)
                ],
            }
        )
        return 0
    print(
        f"{len(found):,} label-issue candidates"
        + (f"; {flagged:,} newly flagged for review" if args.flag else "")
    )
    if not found.empty:
        cols = ["clip_id", "original_name", "split", "given_label", "suggested_label", "self_confidence"]
        print(found[cols].head(args.limit).round(3).to_string(index=False))
    return 0
