"""``earmark worker`` runs background jobs; ``earmark jobs list|submit|show|cancel`` manages them."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any

from labeling.commands import UserError, print_json, user_errors, workspace
from labeling.platform.ids import positive_seconds, row_id


def register(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser(
        "worker",
        help="run background jobs (training, label issues, features, imports, exports)",
        description="Claim and run queued jobs until stopped. Run any number of workers, on any machine "
        "that reaches the database and the audio store; each job runs once. A job whose worker dies is "
        "claimed again once its lease runs out.",
    )
    w.add_argument("--once", action="store_true", help="stop when no job is waiting")
    w.add_argument(
        "--poll", type=positive_seconds, default=1.0, help="seconds between looks for new jobs (default 1)"
    )
    w.add_argument(
        "--lease",
        type=positive_seconds,
        default=60.0,
        help="seconds a claim lasts without a heartbeat before another worker may take the job (default 60)",
    )
    w.add_argument("--kind", action="append", help="run only jobs of this kind (repeatable)")
    w.set_defaults(run=run_worker_command)

    j = sub.add_parser("jobs", help="list, submit, show or cancel background jobs")
    jsub = j.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    ls = jsub.add_parser("list", help="the newest jobs first")
    ls.add_argument("--project", help="only this project's jobs (name or id)")
    ls.add_argument("--json", action="store_true")
    ls.add_argument(
        "--all",
        action="store_true",
        help="also the report refreshes queued after each change (hidden unless one failed)",
    )
    ls.set_defaults(run=run_list)
    sm = jsub.add_parser("submit", help="queue a job for the workers")
    sm.add_argument("kind", help="train, label_issues, features, import, export, …")
    sm.add_argument("--project", help="project name or id (an import names the project it fills)")
    sm.add_argument("--params", default="{}", help='the job\'s parameters as JSON, e.g. \'{"fmt": "csv"}\'')
    sm.add_argument("--as", dest="owner", help="the user the job is recorded for")
    sm.set_defaults(run=run_submit)
    sh = jsub.add_parser("show", help="one job with its log and result")
    sh.add_argument("job_id", type=row_id)
    sh.set_defaults(run=run_show)
    cn = jsub.add_parser("cancel", help="cancel a queued job, or stop a running one at its next step")
    cn.add_argument("job_id", type=row_id)
    cn.set_defaults(run=run_cancel)


def run_worker_command(args: argparse.Namespace) -> int:
    from labeling.platform.jobs import JobError, run_worker

    def stop(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)  # a stopped worker hands its job back instead of losing it
    with workspace() as ws, user_errors(JobError):
        where = ws.db.engine.url.render_as_string(hide_password=True)
        print(f"earmark worker: waiting for jobs (database {where}, audio {ws.store.url})", file=sys.stderr)
        n = run_worker(
            ws,
            poll_s=args.poll,
            lease_s=args.lease,
            once=args.once,
            kinds=args.kind,
            say=lambda line: print(f"earmark worker: {line}", file=sys.stderr, flush=True),
        )
    print(f"earmark worker: ran {n} job(s)", file=sys.stderr)
    return 0


def run_list(args: argparse.Namespace) -> int:
    from labeling.data.projects import ProjectError, get_project
    from labeling.platform.jobs import list_jobs

    with workspace() as ws, ws.db.read() as s, user_errors(ProjectError):
        project_id = get_project(s, args.project).id if args.project else None
        frame = list_jobs(s, project_id=project_id, hide_routine=not args.all)
    if args.json:
        print_json(json.loads(frame.to_json(orient="records", date_format="iso")))
    elif frame.empty:
        print("no jobs")
    else:
        print(frame.drop(columns=["project_id"]).to_string(index=False))
    return 0


def run_submit(args: argparse.Namespace) -> int:
    from labeling.data.projects import ProjectError, get_project
    from labeling.platform.auth import get_user
    from labeling.platform.jobs import JobError, submit_job

    try:
        params = json.loads(args.params)
    except json.JSONDecodeError as exc:
        raise UserError(f"--params is not JSON: {exc}") from exc
    if not isinstance(params, dict):
        raise UserError("--params must be a JSON object")
    with workspace() as ws, user_errors(JobError, ProjectError, LookupError), ws.db.write() as s:
        owner_id = get_user(s, args.owner).id if args.owner else None
        scope = None
        project_id = None
        if args.kind == "import":
            if not args.project:
                raise UserError("an import job needs --project, the project it imports into")
            params.setdefault("project", args.project)
            scope = f"import:{args.project}"
        elif args.project:
            project_id = get_project(s, args.project).id
        job = submit_job(s, args.kind, project_id=project_id, owner_id=owner_id, params=params, scope=scope)
    print(f"job {job.id}: {job.title} queued")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from labeling.platform.jobs import JobError, get_job

    with workspace() as ws, ws.db.read() as s, user_errors(JobError):
        job = get_job(s, args.job_id)
    print_json(job.to_dict())
    return 0


def run_cancel(args: argparse.Namespace) -> int:
    from labeling.platform.jobs import JobError, cancel_job

    with workspace() as ws, user_errors(JobError), ws.db.write() as s:
        job = cancel_job(s, args.job_id)
    print(f"job {job.id}: {'cancelled' if job.status == 'cancelled' else 'asked to stop at its next step'}")
    return 0
