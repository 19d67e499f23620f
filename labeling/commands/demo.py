"""``earmark demo``: synthesise and import the demo project."""

from __future__ import annotations

import argparse

from labeling.commands import UserError, user_errors, workspace
from labeling.commands._stages import StageReporter


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="create the demo project (synthesised speech commands)")
    p.add_argument("--if-empty", action="store_true", help="do nothing if the database has any project")
    p.add_argument("--project", default=None, help="project name (default: 'Voice commands (demo)')")
    p.add_argument("--size", default="standard", help="tiny, small, standard, or a number of clips")
    p.add_argument("--seed", type=int, default=0, help="random seed (the same seed gives the same audio)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from labeling.data.projects import ProjectError
    from labeling.demo.build import DEMO_PROJECT, create_demo

    try:
        from labeling.demo.synth import EspeakUnavailableError
    except ImportError as exc:  # pragma: no cover - synth imports only numpy/soundfile
        raise UserError(str(exc)) from exc

    size: str | int = int(args.size) if str(args.size).isdigit() else args.size
    report = StageReporter()

    def on_step(number: int, n_steps: int, title: str, result: str | None) -> None:
        if result is None:
            report.say(f"Step {number} of {n_steps}: {title}")
        else:
            report.close()
            print(f"  {result}", flush=True)

    with workspace() as ws, user_errors(ProjectError, EspeakUnavailableError, ValueError):
        try:
            made = create_demo(
                ws,
                project=args.project or DEMO_PROJECT,
                if_empty=args.if_empty,
                size=size,
                random_state=args.seed,
                progress=report,
                on_step=on_step,
            )
        finally:
            report.close()
    if not made.created:
        for line in made.lines:
            print(line)
    else:
        print(f"demo project {made.project!r} ready in {made.seconds:.0f} s", flush=True)
    return 0
