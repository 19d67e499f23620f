"""Job kinds for testing the job machinery itself, registered like any other kind.

``waiter`` reports progress, then waits until the file named by its ``release`` parameter exists;
every attempt appends a line to the ``trace`` file, so a test can count starts and completions.
Run a worker that knows them with ``python -m tests.jobkinds [worker options]``, or in a child
process with :func:`worker_process`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from labeling.platform.jobs import JobContext, job_kind, job_kinds, run_worker
from labeling.platform.workspace import Workspace


def run_report_refreshes(ws: Workspace) -> int:
    """Run the report refreshes that imports and labels queued, so a test of other jobs starts from
    a quiet queue (as it is once a worker has caught up); how many ran."""
    return run_worker(ws, once=True, kinds=[k.name for k in job_kinds().values() if k.refreshes_report])


def _trace(ctx: JobContext, event: str) -> None:
    with Path(ctx.params["trace"]).open("a") as fh:
        fh.write(f"{event} {ctx.job.id} {ctx.job.attempts}\n")


@job_kind("waiter", title="Waiting test job")
def waiter(ctx: JobContext) -> dict[str, Any]:
    _trace(ctx, "start")
    release = Path(ctx.params["release"])
    step = 0
    while not release.exists():
        step += 1
        ctx.progress(step, None, f"waiting, step {step}")
        time.sleep(0.05)
    ctx.progress(1, 1, "released")
    _trace(ctx, "done")
    return {"steps": step, "summary": "released"}


@job_kind("broken", title="Failing test job")
def broken(ctx: JobContext) -> dict[str, Any]:
    raise ValueError("the input is not usable")


def worker_process(environ: dict[str, str], argv: list[str]) -> None:
    """The body of a child process that is ``earmark worker`` with these kinds known: what
    ``python -m tests.jobkinds`` runs, started from a fork server instead of a fresh interpreter."""
    os.environ.update(environ)
    from labeling.cli import main

    raise SystemExit(main(["worker", *argv]))


if __name__ == "__main__":
    from labeling.cli import main

    raise SystemExit(main(["worker", *sys.argv[1:]]))
