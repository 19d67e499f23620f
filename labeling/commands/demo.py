"""``earmark demo``: synthesise and import the demo project."""

from __future__ import annotations

import argparse
import sys

from labeling.commands import UserError, user_errors, workspace


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="create the demo project (synthesised speech commands)")
    p.add_argument("--if-empty", action="store_true", help="do nothing if the database has any project")
    p.add_argument("--project", default=None, help="project name (default: 'Voice commands (demo)')")
    p.add_argument("--size", default="standard", help="tiny, small, standard, or a number of clips")
    p.add_argument("--seed", type=int, default=0, help="random seed (the same seed gives the same audio)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from labeling.demo import DEMO_PROJECT, create_demo
    from labeling.projects import ProjectError

    try:
        from labeling.synth import EspeakUnavailableError
    except ImportError as exc:  # pragma: no cover - synth imports only numpy/soundfile
        raise UserError(str(exc)) from exc

    size: str | int = int(args.size) if str(args.size).isdigit() else args.size
    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            for other in bars.values():
                other.close()
            bar = bars[stage] = tqdm(
                total=total, desc=stage, file=sys.stderr, leave=False, mininterval=0.3, disable=None
            )
        bar.n = done
        bar.refresh()

    with workspace() as ws, user_errors(ProjectError, EspeakUnavailableError, ValueError):
        try:
            report = create_demo(
                ws,
                project=args.project or DEMO_PROJECT,
                if_empty=args.if_empty,
                size=size,
                random_state=args.seed,
                progress=progress,
            )
        finally:
            for bar in bars.values():
                bar.close()
    for line in report.lines:
        print(line)
    if report.created:
        print(f"demo project {report.project!r} ready in {report.seconds:.0f} s")
    return 0
