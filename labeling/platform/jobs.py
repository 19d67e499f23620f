"""Background jobs: :func:`submit_job` records one; ``earmark worker`` (:func:`run_worker`) runs it.

Long work — training, label-issue detection, feature extraction, drift checks, large imports and
exports — is recorded in the ``jobs`` table with its owner, progress, log and result, so it survives a
closed tab and shows on every app server. Any number of workers, on any machine sharing the database,
claim jobs: on PostgreSQL the oldest claimable row is taken ``FOR UPDATE SKIP LOCKED``; on SQLite the
claim runs in a ``BEGIN IMMEDIATE`` transaction, which serialises claimers.

A claim is a lease. The worker's heartbeat renews it while the job runs; a worker that dies stops
renewing, and once the lease runs out the next worker claims the job again (up to ``max_attempts``
attempts). Every progress report, log line and the final result are written only while the worker
still holds the lease (its token), so a job is never finished twice. A job stops at its next progress
report once cancelled. One job of a kind per project (or per import target) is active at a time.

Kinds are a small registry (:func:`job_kind`); the built-in ones live in :mod:`labeling.job_kinds`, the
composition root above every service, which registers them when imported::

    @job_kind("drift", title="Drift check")
    def _drift(ctx: JobContext) -> dict:
        report = run_drift_check(ctx.ws, ctx.project_id, **ctx.params, progress=ctx.stage("Comparing"))
        return report.to_dict()
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import socket
import threading
import time
import traceback
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import and_, exists, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from db.models import ACTIVE_JOB_STATES, Job, Project, User, utcnow
from labeling.platform.progress import StageProgress, progress_text
from labeling.platform.workspace import Workspace

DEFAULT_LEASE_S = 60.0
#: Progress is written at most this often (the last step of a stage always is).
PROGRESS_EVERY_S = 0.5
#: The log keeps its last this many characters.
LOG_LIMIT = 20_000
#: A queued job nobody has claimed for this long suggests that no worker is running. Workers poll
#: every second, so a normal wait is far shorter.
UNCLAIMED_AFTER_S = 10.0
#: A job that keeps a stored report current waits this long after it was queued before a worker takes
#: it, so that a burst of changes (labels submitted one after another) is covered by one computation.
REFRESH_QUIET_S = 5.0


class JobError(ValueError):
    """A job that cannot be submitted, found or cancelled; the message says why."""


class JobBusy(JobError):
    """A job of this kind is already queued or running for the same project."""

    def __init__(self, job: JobInfo) -> None:
        who = f" by {job.owner}" if job.owner else ""
        super().__init__(f"{job.title} is already {job.status}{who} (job {job.id}); wait for it or cancel it")
        self.job = job


class JobCancelled(Exception):
    """Raised inside a job at its next progress report after someone cancelled it."""


class LeaseLost(Exception):
    """This worker no longer holds the job (its lease ran out and another worker took it)."""


# --- the registry ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobKind:
    name: str
    title: str
    run: Callable[[JobContext], Mapping[str, Any] | None]
    permission: str = "manage_data"
    needs_project: bool = True
    needs_params: bool = False  # started from its own page or command, not by a bare "start" button
    #: Keeps a stored report current: queued by :func:`queue_report_refreshes` after each change.
    refreshes_report: bool = False
    #: For such a kind: whether a project needs it at all (None: every project does).
    wanted: Callable[[str, Mapping[str, Any] | None], bool] | None = None


JOB_KINDS: dict[str, JobKind] = {}


def job_kind(
    name: str,
    *,
    title: str,
    permission: str = "manage_data",
    needs_project: bool = True,
    needs_params: bool = False,
    refreshes_report: bool = False,
    wanted: Callable[[str, Mapping[str, Any] | None], bool] | None = None,
) -> Callable[[Callable[[JobContext], Mapping[str, Any] | None]], Callable[..., Any]]:
    """Register ``fn(ctx) -> result`` as the job kind ``name`` (the result must be JSON).

    ``permission`` is what a user's role must hold to start it
    (see :data:`labeling.platform.auth.PERMISSIONS`); a kind that ``refreshes_report`` is queued,
    without parameters, after every change to a project's data (:func:`queue_report_refreshes`), in
    projects for which ``wanted(task_kind, settings)`` of the project holds, if given.
    """

    def register(fn: Callable[[JobContext], Mapping[str, Any] | None]) -> Callable[..., Any]:
        JOB_KINDS[name] = JobKind(
            name, title, fn, permission, needs_project, needs_params, refreshes_report, wanted
        )
        return fn

    return register


def job_kinds() -> dict[str, JobKind]:
    """Every registered kind. The built-in ones are registered by importing :mod:`labeling.job_kinds`,
    which the app, the command line and :mod:`labeling.api` do; the runner itself knows none of them."""
    return JOB_KINDS


def _kind(name: str) -> JobKind:
    kinds = job_kinds()
    if name not in kinds:
        raise JobError(f"unknown job kind {name!r}; kinds are {', '.join(sorted(kinds))}")
    return kinds[name]


# --- what a job is -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobInfo:
    id: int
    kind: str
    title: str
    project_id: int | None
    scope: str
    params: dict[str, Any]
    status: str
    owner_id: int | None
    owner: str | None
    progress_done: int
    progress_total: int | None
    message: str
    log: str
    result: dict[str, Any] | None
    error: str | None
    cancel_requested: bool
    attempts: int
    max_attempts: int
    worker: str | None
    created_at: datetime
    started_at: datetime | None
    updated_at: datetime
    finished_at: datetime | None
    #: How long a queued job has waited for a worker, by the database's clock (None unless queued).
    queued_s: float | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_JOB_STATES

    @property
    def state(self) -> str:
        """The status as a person needs it: a running job asked to stop is "cancel requested"."""
        return "cancel requested" if self.active and self.cancel_requested else self.status

    @property
    def unclaimed(self) -> bool:
        """Queued for :data:`UNCLAIMED_AFTER_S` or longer without a worker taking it."""
        if self.status != "queued" or self.queued_s is None:
            return False
        kind = JOB_KINDS.get(self.kind)
        quiet = REFRESH_QUIET_S if kind is not None and kind.refreshes_report else 0.0
        return self.queued_s >= UNCLAIMED_AFTER_S + quiet

    @property
    def fraction(self) -> float:
        """How far it is, 0–1 (0 while the total is unknown)."""
        if not self.progress_total:
            return 1.0 if self.status == "succeeded" else 0.0
        return min(max(self.progress_done / self.progress_total, 0.0), 1.0)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("created_at", "started_at", "updated_at", "finished_at"):
            d[k] = d[k].isoformat() if d[k] else None
        return d


def _info(job: Job, owner: str | None, queued_s: float | None = None) -> JobInfo:
    kind = JOB_KINDS.get(job.kind)
    return JobInfo(
        id=job.id,
        kind=job.kind,
        title=kind.title if kind else job.kind,
        project_id=job.project_id,
        scope=job.scope,
        params=dict(job.params or {}),
        status=job.status,
        owner_id=job.owner_id,
        owner=owner,
        progress_done=job.progress_done,
        progress_total=job.progress_total,
        message=job.message,
        log=job.log,
        result=job.result,
        error=job.error,
        cancel_requested=job.cancel_requested,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        worker=job.worker,
        created_at=job.created_at,
        started_at=job.started_at,
        updated_at=job.updated_at,
        finished_at=job.finished_at,
        queued_s=queued_s,
    )


def _with_owner(s: Session, job: Job) -> JobInfo:
    owner = s.scalar(select(User.name).where(User.id == job.owner_id)) if job.owner_id else None
    # A queued job's updated_at is when it was queued, written by the database's clock (see
    # submit_job and _finish), so app servers and workers whose clocks differ agree on the wait.
    queued_s = (database_now(s) - job.updated_at).total_seconds() if job.status == "queued" else None
    return _info(job, owner, queued_s)


def database_now(s: Session) -> datetime:
    """The database server's current time (UTC): one clock for every app server and worker."""
    if s.get_bind().dialect.name == "sqlite":
        # SQLite runs in this process; its clock is this machine's, read the way the database reads it.
        raw = s.scalar(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')"))
        return datetime.fromisoformat(str(raw)).replace(tzinfo=UTC)
    now = s.scalar(select(func.clock_timestamp()))
    assert isinstance(now, datetime)
    return now.astimezone(UTC)


def _append(log: str, line: str) -> str:
    stamp = utcnow().strftime("%H:%M:%S")
    text = f"{log}{stamp} {line.rstrip()}\n"
    return text[-LOG_LIMIT:]


# --- submitting, reading, cancelling -------------------------------------------------------------------


def project_scope(project_id: int) -> str:
    return f"project:{project_id}"


def submit_job(
    s: Session,
    kind: str,
    *,
    project_id: int | None,
    owner_id: int | None,
    params: Mapping[str, Any] | None = None,
    scope: str | None = None,
    max_attempts: int = 3,
) -> JobInfo:
    """Queue a job; raises :class:`JobBusy` naming the active one when its kind already runs there.

    ``scope`` defaults to the project; an import that creates its project passes ``import:<name>``.
    """
    info = _kind(kind)
    if info.needs_project and project_id is None:
        raise JobError(f"a {info.title.lower()} job needs a project")
    params = dict(params or {})
    try:
        json.dumps(params)
    except (TypeError, ValueError) as exc:
        raise JobError(f"job parameters must be plain JSON values: {exc}") from None
    scope = scope or (project_scope(project_id) if project_id is not None else kind)
    active = _active(s, kind, scope)
    if active is not None:
        raise JobBusy(active)
    now = database_now(s)
    job = Job(
        kind=kind,
        project_id=project_id,
        scope=scope,
        params=params,
        status="queued",
        owner_id=owner_id,
        progress_done=0,
        message="Waiting for a worker",
        log=_append("", "queued"),
        cancel_requested=False,
        attempts=0,
        max_attempts=max_attempts,
        created_at=now,
        updated_at=now,
    )
    try:
        with s.begin_nested():
            s.add(job)
            s.flush()
    except IntegrityError:
        # Another server queued the same kind at the same moment: the unique index decided.
        active = _active(s, kind, scope)
        if active is None:
            raise
        raise JobBusy(active) from None
    return _with_owner(s, job)


def report_refresh_kinds() -> list[str]:
    """The job kinds that keep a stored report current (queued after every change to a project's data)."""
    return [k.name for k in JOB_KINDS.values() if k.refreshes_report]


def _active_refresh(kind: str, scope: Any) -> Any:
    # The literal condition lets both engines answer from the partial index uq_jobs_active.
    return select(Job.kind).where(
        Job.kind == kind, Job.scope == scope, text("status IN ('queued', 'running')")
    )


def report_refreshes_queued(scope: Any) -> list[tuple[str, Any]]:
    """Per report-refreshing kind, an EXISTS saying whether it is queued or running in ``scope`` (a
    :func:`project_scope` value or a bound parameter), to read with other facts in one statement and
    hand to :func:`queue_report_refreshes` as ``active``."""
    return [(name, exists(_active_refresh(name, scope))) for name in report_refresh_kinds()]


def queue_report_refreshes(
    s: Session,
    project_id: int,
    *,
    active: Iterable[str] | None = None,
    project: tuple[str, Any] | None = None,
) -> list[str]:
    """After a change to a project's data, queue each kind that keeps a stored report current, in the
    caller's transaction; the kinds queued.

    A kind already queued or running for the project is left alone, so a burst of changes queues one
    job per kind: while they wait (at least :data:`REFRESH_QUIET_S`) this costs one indexed read. A
    running job computes again if the data moved under it (see :mod:`labeling.job_kinds`). A caller
    that already read which kinds are ``active`` (:func:`report_refreshes_queued`) and the ``project``'s
    (task kind, settings) passes them, and nothing is read again unless a kind is due.
    """
    names = report_refresh_kinds()
    if not names:
        return []
    scope = project_scope(project_id)
    if active is None:
        active = s.scalars(
            select(Job.kind).where(
                Job.kind.in_(names), Job.scope == scope, text("status IN ('queued', 'running')")
            )
        )
    running = set(active)
    due = [name for name in names if name not in running]
    # The project's kind and settings, read once for every kind that asks (not once per kind).
    if project is None and any(JOB_KINDS[name].wanted is not None for name in due):
        row = s.execute(
            select(Project.task_kind, Project.settings).where(Project.id == project_id)
        ).one_or_none()
        project = None if row is None else (row.task_kind, row.settings)
    queued = []
    for name in due:
        wanted = JOB_KINDS[name].wanted
        if wanted is not None and (project is None or not wanted(*project)):
            continue
        if queue_once(s, name, project_id):
            queued.append(name)
    return queued


def queue_once(s: Session, kind: str, project_id: int, params: Mapping[str, Any] | None = None) -> bool:
    """Queue ``kind`` for a project unless one is already queued or running there; whether it was."""
    if _active(s, kind, project_scope(project_id)) is not None:
        return False
    try:
        submit_job(s, kind, project_id=project_id, owner_id=None, params=params)
    except JobBusy:
        return False  # another server queued it at the same moment
    return True


def _active(s: Session, kind: str, scope: str) -> JobInfo | None:
    job = s.scalar(select(Job).where(Job.kind == kind, Job.scope == scope, Job.status.in_(ACTIVE_JOB_STATES)))
    return _with_owner(s, job) if job is not None else None


def worker_seen(s: Session, *, within_s: float = 600.0) -> bool:
    """Whether a worker has taken or finished a job in the last ``within_s`` seconds: a sign that one
    runs and will take a job queued now (an idle worker writes nothing, so this is a guess)."""
    latest = s.scalar(select(func.max(Job.updated_at)).where(Job.worker.is_not(None)))
    if latest is None:
        return False
    if latest.tzinfo is None:
        latest = latest.replace(tzinfo=UTC)
    return (database_now(s) - latest).total_seconds() <= within_s


def get_job(s: Session, job_id: int) -> JobInfo:
    job = s.get(Job, job_id)
    if job is None:
        raise JobError(f"there is no job {job_id}")
    return _with_owner(s, job)


def latest_job(
    s: Session,
    kind: str,
    *,
    project_id: int | None = None,
    scope: str | None = None,
    owner_id: int | None = None,
) -> JobInfo | None:
    """The newest job of ``kind`` in a project (or scope, or of an owner), whatever its state."""
    q = select(Job).where(Job.kind == kind)
    if owner_id is not None:
        q = q.where(Job.owner_id == owner_id)
    if scope is not None:
        q = q.where(Job.scope == scope)
    elif project_id is not None:
        q = q.where(Job.project_id == project_id)
    job = s.scalar(q.order_by(Job.id.desc()).limit(1))
    return _with_owner(s, job) if job is not None else None


JOB_COLUMNS = (
    "job_id",
    "kind",
    "status",
    "progress",
    "message",
    "owner",
    "project_id",
    "attempts",
    "worker",
    "created_at",
    "finished_at",
)


def routine_kinds() -> frozenset[str]:
    """Kinds queued by the system itself after each change (report refreshes), which a person
    reading the job list rarely needs to see unless one failed."""
    return frozenset(name for name, kind in JOB_KINDS.items() if kind.refreshes_report)


def list_jobs(
    s: Session, *, project_id: int | None = None, limit: int = 200, hide_routine: bool = False
) -> pd.DataFrame:
    """The newest jobs first, one row each, columns :data:`JOB_COLUMNS`.

    ``hide_routine`` leaves out the report refreshes of :func:`routine_kinds` that did not fail:
    they are queued after every change and would bury the jobs people started."""
    q = select(Job, User.name).outerjoin(User, User.id == Job.owner_id).order_by(Job.id.desc()).limit(limit)
    if project_id is not None:
        q = q.where(Job.project_id == project_id)
    routine = routine_kinds() if hide_routine else frozenset()
    if routine:
        q = q.where(or_(Job.kind.not_in(routine), Job.status == "failed"))
    rows = [_info(job, owner) for job, owner in s.execute(q).all()]
    return pd.DataFrame(
        [
            {
                "job_id": j.id,
                "kind": j.title,
                "status": j.state,
                "progress": j.fraction,
                "message": j.message,
                "owner": j.owner,
                "project_id": j.project_id,
                "attempts": j.attempts,
                "worker": j.worker,
                "created_at": j.created_at,
                "finished_at": j.finished_at,
            }
            for j in rows
        ],
        columns=list(JOB_COLUMNS),
    )


def cancel_job(s: Session, job_id: int, *, actor_id: int | None = None) -> JobInfo:
    """Cancel a queued job at once, or ask a running one to stop at its next progress report."""
    job = s.get(Job, job_id, with_for_update=True)
    if job is None:
        raise JobError(f"there is no job {job_id}")
    if job.status not in ACTIVE_JOB_STATES:
        raise JobError(f"job {job_id} has already {job.status}")
    who = s.scalar(select(User.name).where(User.id == actor_id)) if actor_id else None
    now = utcnow()
    if job.status == "queued":
        job.status, job.finished_at = "cancelled", now
        job.message = "Cancelled before it started"
    else:
        job.cancel_requested = True
        job.message = "Cancelling…"
    job.updated_at = now
    job.log = _append(job.log, f"cancelled by {who or 'someone'}")
    return _with_owner(s, job)


# --- workers -------------------------------------------------------------------------------------------


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Claim:
    job: JobInfo
    token: str


def claim_job(
    ws: Workspace,
    *,
    worker: str,
    lease_s: float = DEFAULT_LEASE_S,
    kinds: Collection[str] | None = None,
    quiet: bool = True,
) -> Claim | None:
    """Take the oldest queued job (or one whose worker stopped renewing its lease); None when idle.

    Only kinds this process can run are claimed: ``kinds`` narrows the registered ones. A report
    refresh is taken once it has been queued for :data:`REFRESH_QUIET_S`, or at once without ``quiet``.
    """
    known = job_kinds()
    names = [k for k in kinds if k in known] if kinds is not None else list(known)
    refreshes = [k for k in names if known[k].refreshes_report] if quiet else []
    pg = not ws.db.is_sqlite
    with ws.db.write() as s:
        while True:
            now = utcnow()
            waiting = Job.status == "queued"
            if refreshes:
                settled = Job.created_at <= now - timedelta(seconds=REFRESH_QUIET_S)
                waiting = and_(waiting, or_(Job.kind.not_in(refreshes), settled))
            q = (
                select(Job)
                .where(
                    Job.kind.in_(names),
                    or_(
                        waiting,
                        and_(Job.status == "running", Job.lease_expires_at < now),
                    ),
                )
                .order_by(Job.id)
                .limit(1)
            )
            job = s.scalar(q.with_for_update(skip_locked=True) if pg else q)
            if job is None:
                return None
            if job.status == "running":
                job.log = _append(job.log, f"worker {job.worker} stopped renewing its lease")
                if job.cancel_requested or job.attempts >= job.max_attempts:
                    job.status = "cancelled" if job.cancel_requested else "failed"
                    job.error = None if job.cancel_requested else f"its worker stopped {job.attempts} times"
                    job.message = job.error or "Cancelled"
                    job.finished_at = job.updated_at = now
                    job.lease_token = None
                    continue
            token = secrets.token_hex(16)
            job.status = "running"
            job.attempts += 1
            job.worker = worker
            job.lease_token = token
            job.lease_expires_at = now + timedelta(seconds=lease_s)
            job.started_at = job.started_at or now
            job.updated_at = now
            job.message = "Starting"
            job.log = _append(job.log, f"attempt {job.attempts} on {worker}")
            return Claim(_with_owner(s, job), token)


class JobContext:
    """What a running job sees: its parameters, and ways to report progress and log lines."""

    def __init__(self, ws: Workspace, claim: Claim) -> None:
        self.ws = ws
        self.job = claim.job
        self.token = claim.token
        self.params = claim.job.params
        self.project_id = claim.job.project_id
        self.owner_id = claim.job.owner_id
        self.cancelled = threading.Event()
        self.lost = threading.Event()
        self._last = 0.0

    def check(self) -> None:
        """Stop the job here if it was cancelled or another worker took it over."""
        if self.lost.is_set():
            raise LeaseLost(f"job {self.job.id}")
        if self.cancelled.is_set():
            raise JobCancelled(f"job {self.job.id}")

    def progress(self, done: int, total: int | None = None, message: str | None = None) -> None:
        """Report progress (written at most twice a second, and always at the end of a stage)."""
        self.check()
        now = time.monotonic()
        if now - self._last < PROGRESS_EVERY_S and done != total:
            return
        self._last = now
        values: dict[str, Any] = {"progress_done": int(done), "progress_total": total, "updated_at": utcnow()}
        if message is not None:
            values["message"] = message
        self._write(values)

    def stage(self, name: str) -> Callable[[int, int], None]:
        """A ``progress(done, total)`` callback for one stage, reported as "<name>: 12 of 40"."""
        return lambda done, total: self.progress(done, total, progress_text(name, done, total))

    def stages(self) -> StageProgress:
        """A ``progress(stage, done, total)`` callback for services that say which stage they are in."""
        return lambda stage, done, total: self.progress(done, total, progress_text(stage, done, total))

    def log(self, line: str) -> None:
        self.check()
        with self.ws.db.write() as s:
            job = s.get(Job, self.job.id)
            if job is None or job.lease_token != self.token:
                self.lost.set()
                raise LeaseLost(f"job {self.job.id}")
            job.log = _append(job.log, line)

    def _write(self, values: dict[str, Any]) -> None:
        try:
            held = _touch(self.ws, self.job.id, self.token, values)
        except OperationalError:
            return  # the database is busy: progress is a courtesy, the next report will get through
        if held is None:
            self.lost.set()
        elif held:
            self.cancelled.set()
        self.check()


def _touch(ws: Workspace, job_id: int, token: str, values: dict[str, Any]) -> bool | None:
    """Update a job this worker holds; whether it was asked to cancel, or None if it is no longer ours."""
    with ws.db.write() as s:
        held = s.execute(
            update(Job)
            .where(Job.id == job_id, Job.lease_token == token, Job.status == "running")
            .values(**values)
            .returning(Job.cancel_requested)
        ).first()
    return None if held is None else bool(held[0])


class _Heartbeat(threading.Thread):
    """Renews the lease every third of its length; notices cancellation and a lost lease."""

    def __init__(self, ctx: JobContext, lease_s: float) -> None:
        super().__init__(name=f"job-{ctx.job.id}-heartbeat", daemon=True)
        self.ctx = ctx
        self.lease_s = lease_s
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.lease_s / 3):
            renewed = {"lease_expires_at": utcnow() + timedelta(seconds=self.lease_s)}
            try:
                held = _touch(self.ctx.ws, self.ctx.job.id, self.ctx.token, renewed)
            except OperationalError:
                continue
            if held is None:
                self.ctx.lost.set()
                return
            if held:
                self.ctx.cancelled.set()


def _finish(ws: Workspace, claim: Claim, **values: Any) -> bool:
    """Record the outcome if this worker still holds the job; False if it was taken over."""
    with ws.db.write() as s:
        job = s.get(Job, claim.job.id)
        if job is None or job.lease_token != claim.token or job.status != "running":
            return False
        now = database_now(s)  # a job handed back waits for a worker from now, by the database's clock
        for k, v in values.items():
            setattr(job, k, v)
        job.lease_token = None
        job.lease_expires_at = None
        job.updated_at = now
        if job.status != "queued":
            job.finished_at = now
        job.log = _append(job.log, job.status if not job.error else f"{job.status}: {job.error}")
    return True


def run_claimed(ws: Workspace, claim: Claim, *, lease_s: float = DEFAULT_LEASE_S) -> str:
    """Run a claimed job to its end; returns the state it ended in (``lost`` if taken over)."""
    kind = job_kinds().get(claim.job.kind)
    if kind is None:
        # Not the job's fault: hand it back uncounted for a worker that knows the kind.
        _finish(
            ws,
            claim,
            status="queued",
            attempts=max(claim.job.attempts - 1, 0),
            message="Waiting for a worker",
        )
        raise JobError(f"this worker cannot run {claim.job.kind!r} jobs; it handed job {claim.job.id} back")
    ctx = JobContext(ws, claim)
    beat = _Heartbeat(ctx, lease_s)
    beat.start()
    try:
        result = dict(kind.run(ctx) or {})
        json.dumps(result)
    except JobCancelled:
        outcome: dict[str, Any] = {"status": "cancelled", "message": "Cancelled"}
    except LeaseLost:
        return "lost"
    except KeyboardInterrupt:
        # The worker is being stopped: hand the job back rather than counting it as an attempt.
        beat.done.set()
        _finish(
            ws,
            claim,
            status="queued",
            attempts=max(claim.job.attempts - 1, 0),
            message="Waiting for a worker",
        )
        raise
    except Exception as exc:
        tail = "".join(traceback.format_exception(exc)[-3:])
        outcome = {"status": "failed", "error": str(exc) or type(exc).__name__, "message": "Failed"}
        ctx.cancelled.clear()
        with contextlib.suppress(LeaseLost, OperationalError):
            ctx.log(tail)
    else:
        outcome = {"status": "succeeded", "result": result, "message": str(result.get("summary") or "Done")}
    finally:
        beat.done.set()
    return outcome["status"] if _finish(ws, claim, **outcome) else "lost"


def run_next_job(
    ws: Workspace,
    *,
    worker: str | None = None,
    lease_s: float = DEFAULT_LEASE_S,
    kinds: Collection[str] | None = None,
    quiet: bool = True,
) -> JobInfo | None:
    """Claim and run one job; the job as it ended, or None when nothing was waiting (``quiet`` as in
    :func:`claim_job`)."""
    claim = claim_job(ws, worker=worker or worker_name(), lease_s=lease_s, kinds=kinds, quiet=quiet)
    if claim is None:
        return None
    run_claimed(ws, claim, lease_s=lease_s)
    with ws.db.read() as s:
        return get_job(s, claim.job.id)


def run_worker(
    ws: Workspace,
    *,
    poll_s: float = 1.0,
    lease_s: float = DEFAULT_LEASE_S,
    once: bool = False,
    max_jobs: int | None = None,
    stop: threading.Event | None = None,
    kinds: Collection[str] | None = None,
    say: Callable[[str], None] | None = None,
) -> int:
    """Run jobs until stopped (or, with ``once``, until none is waiting); the number of jobs run.

    With ``once`` a report refresh still in its quiet period (:data:`REFRESH_QUIET_S`) runs too.

    Raises :class:`JobError` for an unknown kind in ``kinds``, or a lease or poll that is not a
    positive number of seconds.
    """
    if kinds is not None:
        for kind in kinds:
            _kind(kind)
    for what, seconds in (("lease", lease_s), ("poll", poll_s)):
        if not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds > 0):
            raise JobError(f"the {what} must be a positive number of seconds, not {seconds!r}")
    name = worker_name()
    stop = stop or threading.Event()
    ran = 0
    while not stop.is_set() and (max_jobs is None or ran < max_jobs):
        claim = claim_job(ws, worker=name, lease_s=lease_s, kinds=kinds, quiet=not once)
        if claim is None:
            if once:
                break
            stop.wait(poll_s)
            continue
        if say:
            say(f"job {claim.job.id}: {claim.job.title} (attempt {claim.job.attempts})")
        status = run_claimed(ws, claim, lease_s=lease_s)
        ran += 1
        if say:
            say(f"job {claim.job.id}: {status}")
    return ran
