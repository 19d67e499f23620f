"""Background jobs on both engines: submitted once per kind and project, claimed by exactly one worker,
cancelled, failed with a reason, and taken over when their worker dies."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, update
from sqlalchemy.exc import IntegrityError

from db.models import Job
from labeling.cli import main
from labeling.data.importer import import_path
from labeling.data.projects import get_project
from labeling.platform.auth import add_user
from labeling.platform.jobs import (
    UNCLAIMED_AFTER_S,
    JobBusy,
    JobError,
    cancel_job,
    claim_job,
    get_job,
    list_jobs,
    run_next_job,
    run_worker,
    submit_job,
)
from tests.audio import speechlike, write_wav
from tests.conftest import child_processes
from tests.jobkinds import worker_process  # also registers the test kinds

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(workspace, tmp_path):
    src = tmp_path / "src"
    for i in range(12):
        write_wav(src / f"{['yes', 'no'][i % 2]}_spk{i % 3}_{i}.wav", speechlike(i, seconds=0.3), sr=8000)
    import_path(workspace, src, "demo", pattern=r"(?P<label>[a-z]+)_(?P<speaker>spk\d)_\d+\.wav")
    with workspace.db.write() as s:
        user = add_user(s, name="eli", role="engineer")
        pid = get_project(s, "demo").id
    with workspace.db.write() as s:
        # The import queued report refreshes; these tests start from an empty queue.
        s.execute(delete(Job))
    return workspace, pid, user.id


def wait_for(condition, what: str, timeout_s: float = 180.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def job_state(ws, job_id):  # type: ignore[no-untyped-def]
    with ws.db.read() as s:
        return get_job(s, job_id)


def test_a_job_runs_once_and_keeps_owner_progress_log_and_result(project):
    ws, pid, uid = project
    with ws.db.write() as s:
        job = submit_job(s, "features", project_id=pid, owner_id=uid)
    assert (job.status, job.owner, job.title) == ("queued", "eli", "Feature extraction")
    done = run_next_job(ws, worker="test-worker")
    assert done is not None
    assert done.id == job.id
    assert done.status == "succeeded", done.error
    assert done.result["clips"] == 12
    assert (done.progress_done, done.progress_total) == (12, 12)
    assert done.attempts == 1
    assert "attempt 1 on test-worker" in done.log
    assert done.finished_at is not None
    assert run_next_job(ws) is None  # nothing left: it ran once
    with ws.db.read() as s:
        listed = list_jobs(s, project_id=pid)
    assert listed[["job_id", "status", "owner"]].to_dict("records") == [
        {"job_id": job.id, "status": "succeeded", "owner": "eli"}
    ]


def test_one_job_of_a_kind_per_project_at_a_time(project):
    ws, pid, uid = project
    with ws.db.write() as s:
        first = submit_job(s, "features", project_id=pid, owner_id=uid)
    with pytest.raises(JobBusy, match=f"already queued by eli \\(job {first.id}\\)"), ws.db.write() as s:
        submit_job(s, "features", project_id=pid, owner_id=None)
    with ws.db.write() as s:
        other = submit_job(s, "train", project_id=pid, owner_id=uid)  # another kind may run beside it
    assert other.id != first.id
    # The database itself refuses a second active row, whatever the code above it does.
    with pytest.raises(IntegrityError), ws.db.write() as s:
        s.execute(insert(Job).values(kind="features", scope=first.scope, project_id=pid, status="queued"))
    # Cancelled before it started: it never runs, and the kind is free again.
    with ws.db.write() as s:
        cancelled = cancel_job(s, first.id, actor_id=uid)
    assert cancelled.status == "cancelled"
    assert "cancelled by eli" in cancelled.log
    with ws.db.write() as s:
        again = submit_job(s, "features", project_id=pid, owner_id=uid)
    assert again.status == "queued"
    with pytest.raises(JobError, match="has already cancelled"), ws.db.write() as s:
        cancel_job(s, first.id)


def test_a_failing_job_says_why_and_is_not_retried(project):
    ws, pid, uid = project
    with ws.db.write() as s:
        job = submit_job(s, "broken", project_id=pid, owner_id=uid)
    done = run_next_job(ws)
    assert done.status == "failed"
    assert done.error == "the input is not usable"
    assert "ValueError: the input is not usable" in done.log
    assert run_next_job(ws) is None
    assert job_state(ws, job.id).attempts == 1


def test_a_job_counts_as_unclaimed_by_the_database_clock(project):
    ws, pid, uid = project
    with ws.db.write() as s:
        job = submit_job(s, "features", project_id=pid, owner_id=uid)
    # Queued now by the database's clock (on PostgreSQL, another machine's): no worker is overdue.
    assert job_state(ws, job.id).queued_s < UNCLAIMED_AFTER_S
    with ws.db.write() as s:
        s.execute(update(Job).where(Job.id == job.id).values(updated_at=datetime(2020, 1, 1, tzinfo=UTC)))
    waiting = job_state(ws, job.id)
    assert waiting.unclaimed
    assert waiting.state == "queued"
    claim = claim_job(ws, worker="test-worker")
    with ws.db.write() as s:
        asked = cancel_job(s, claim.job.id, actor_id=uid)
    assert (asked.unclaimed, asked.queued_s, asked.state) == (False, None, "cancel requested")
    with ws.db.read() as s:
        assert list_jobs(s)["status"].tolist() == ["cancel requested"]


def test_unknown_kinds_and_missing_projects_are_refused(project):
    ws, pid, _ = project
    with pytest.raises(JobError, match="unknown job kind 'nap'"), ws.db.write() as s:
        submit_job(s, "nap", project_id=pid, owner_id=None)
    with pytest.raises(JobError, match="needs a project"), ws.db.write() as s:
        submit_job(s, "train", project_id=None, owner_id=None)


def test_a_running_job_stops_at_its_next_step_when_cancelled(project, tmp_path):
    ws, pid, uid = project
    params = {"trace": str(tmp_path / "trace"), "release": str(tmp_path / "never")}
    with ws.db.write() as s:
        job = submit_job(s, "waiter", project_id=pid, owner_id=uid, params=params)
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.update(job=run_next_job(ws, lease_s=30)))
    worker.start()
    wait_for(lambda: job_state(ws, job.id).progress_done > 0, "the job to report progress")
    with ws.db.write() as s:
        asked = cancel_job(s, job.id, actor_id=uid)
    assert (asked.status, asked.cancel_requested) == ("running", True)
    worker.join(timeout=120)
    assert not worker.is_alive()
    assert outcome["job"].status == "cancelled"
    assert (tmp_path / "trace").read_text().split("\n")[:-1] == [f"start {job.id} 1"]


def test_concurrent_workers_claim_each_job_exactly_once(project):
    ws, pid, uid = project
    ids = []
    with ws.db.write() as s:
        for i in range(12):
            ids.append(submit_job(s, "waiter", project_id=pid, owner_id=uid, params={}, scope=f"s{i}").id)
    claimed: list[int] = []
    lock = threading.Lock()

    def claimer(n: int) -> None:
        while (claim := claim_job(ws, worker=f"w{n}", lease_s=600)) is not None:
            with lock:
                claimed.append(claim.job.id)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert sorted(claimed) == sorted(ids)


def _worker(ws, lease_s: float):  # type: ignore[no-untyped-def]
    """``python -m tests.jobkinds`` running the waiter kind, forked from a fork server that imported
    the app once (a fresh interpreter for each worker would import it again)."""
    environ = {
        "EARMARK_DATABASE_URL": ws.settings.database_url,
        "EARMARK_DATA_DIR": str(ws.settings.data_dir),
    }
    argv = ["--lease", str(lease_s), "--poll", "0.2", "--kind", "waiter"]
    worker = child_processes("tests.jobkinds").Process(target=worker_process, args=(environ, argv))
    worker.start()
    return worker


# Short enough that waiting one out costs little, long enough that a worker busy on a loaded machine
# still renews it (every third of it) in time.
LEASE_S = 4.0


@pytest.mark.slow
def test_a_worker_that_dies_mid_job_leaves_it_to_be_retried_once(project, tmp_path):
    ws, pid, uid = project
    trace, release = tmp_path / "trace", tmp_path / "release"
    with ws.db.write() as s:
        job = submit_job(
            s, "waiter", project_id=pid, owner_id=uid, params={"trace": str(trace), "release": str(release)}
        )
    starts = lambda: trace.read_text().count("start") if trace.exists() else 0  # noqa: E731
    first = _worker(ws, lease_s=LEASE_S)
    try:
        wait_for(
            lambda: starts() == 1 and job_state(ws, job.id).progress_done > 0, "the first worker to start"
        )
        # While its worker is alive and renewing the lease, nobody else can take the job, even after
        # the lease it was first given has run out.
        started = job_state(ws, job.id).started_at
        assert started is not None
        lapsed = started.replace(tzinfo=started.tzinfo or UTC) + timedelta(seconds=LEASE_S + 0.5)
        time.sleep(max(0.0, (lapsed - datetime.now(UTC)).total_seconds()))
        assert claim_job(ws, worker="intruder", lease_s=LEASE_S, kinds=["waiter"]) is None
        assert first.is_alive()
    finally:
        first.kill()  # dies mid-job: no clean-up runs
        first.join()
    assert job_state(ws, job.id).status == "running"  # not lost: still recorded, its lease running out
    second = _worker(ws, lease_s=LEASE_S)
    try:
        wait_for(lambda: starts() == 2, "a second worker to take the job over")
        release.touch()
        wait_for(lambda: job_state(ws, job.id).status == "succeeded", "the job to finish")
    finally:
        second.terminate()
        second.join(timeout=60)
    done = job_state(ws, job.id)
    assert done.attempts == 2
    assert done.result["summary"] == "released"
    assert "stopped renewing its lease" in done.log
    assert trace.read_text().split("\n")[:-1] == [
        f"start {job.id} 1",
        f"start {job.id} 2",
        f"done {job.id} 2",
    ]
    assert done.finished_at >= done.started_at


def _earmark(ws, *args: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        "EARMARK_DATABASE_URL": ws.settings.database_url,
        "EARMARK_DATA_DIR": str(ws.settings.data_dir),
    }
    return subprocess.run(
        [sys.executable, "-m", "labeling.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_a_worker_dedicated_to_one_kind_runs_that_kind(project, monkeypatch, capsys):
    ws, pid, uid = project
    with ws.db.write() as s:
        job = submit_job(s, "features", project_id=pid, owner_id=uid)
        other = submit_job(s, "label_issues", project_id=pid, owner_id=uid)
    monkeypatch.setenv("EARMARK_DATABASE_URL", ws.settings.database_url)
    monkeypatch.setenv("EARMARK_DATA_DIR", str(ws.settings.data_dir))
    assert main(["worker", "--once", "--kind", "features"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    ran = job_state(ws, job.id)
    assert (ran.status, ran.attempts) == ("succeeded", 1), ran.log
    assert ran.result["clips"] == 12
    # The other kind waits, untouched, for a worker that runs it.
    waiting = job_state(ws, other.id)
    assert (waiting.status, waiting.attempts) == ("queued", 0)


def test_a_worker_refuses_unknown_kinds_and_leases_that_are_not_positive(project, monkeypatch, capsys):
    ws, pid, uid = project
    with ws.db.write() as s:
        job = submit_job(s, "features", project_id=pid, owner_id=uid)
    # One refusal from the installed command as a user runs it; the rest through the same entry point
    # in this process (each command start would import the app again).
    done = _earmark(ws, "worker", "--once", "--kind", "nap")
    assert done.returncode != 0
    assert "unknown job kind 'nap'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    monkeypatch.setenv("EARMARK_DATABASE_URL", ws.settings.database_url)
    monkeypatch.setenv("EARMARK_DATA_DIR", str(ws.settings.data_dir))
    for args, said in [
        (["--kind", "nap"], "unknown job kind 'nap'"),
        (["--lease", "0"], "not a positive number of seconds"),
        (["--lease", "-5"], "not a positive number of seconds"),
        (["--poll", "nan"], "not a positive number of seconds"),
        (["--poll", "-1"], "not a positive number of seconds"),
    ]:
        try:
            code = main(["worker", "--once", *args])
        except SystemExit as stopped:  # argparse refuses a malformed option this way
            code = stopped.code
        assert code not in (0, None), args
        assert said in capsys.readouterr().err, args
    with pytest.raises(JobError, match="lease must be a positive number"):
        run_worker(ws, lease_s=0, once=True)
    untouched = job_state(ws, job.id)
    assert (untouched.status, untouched.attempts) == ("queued", 0)
