"""The Jobs page and job panels: what workers are doing, read from the database on every rerun."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update
from streamlit.testing.v1 import AppTest

from db.models import Job
from labeling.data.projects import get_project
from labeling.platform import jobs
from labeling.platform.auth import add_user
from labeling.platform.jobs import claim_job, run_claimed, run_next_job, submit_job
from tests.app.conftest import ROOT, sign_in


def page(name: str, user: str = "admin") -> AppTest:
    at = AppTest.from_file(str(next(ROOT.glob(f"pages/*/{name}.py"))), default_timeout=120)
    sign_in(at, user)
    at.session_state["app.project"] = "demo"
    return at.run()


def job_progress_texts(at: AppTest) -> list[str]:
    """The text beside each progress bar on the page."""
    return [p.text for p in at.get("progress")]


def test_the_jobs_page_lists_jobs_and_starts_and_cancels_one(app_env) -> None:
    at = page("jobs")
    assert not at.exception, at.exception
    assert "No jobs yet" in at.info[0].value
    at.selectbox(key="jobs.start_kind").set_value("features")
    at.button(key="jobs.start").click().run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert table[["kind", "status", "owner", "project"]].to_dict("records") == [
        {"kind": "Feature extraction", "status": "queued", "owner": "admin", "project": "demo"}
    ]
    # A second click says one is already waiting instead of queueing another.
    at.button(key="jobs.start").click().run()
    assert "already queued by admin" in at.warning[0].value
    at.selectbox(key="jobs.pick").set_value(int(table["job_id"][0])).run()
    at.button(key="jobs.detail.cancel").click().run()
    assert not at.exception, at.exception
    assert "was cancelled" in at.info[-1].value
    assert at.dataframe[0].value["status"].tolist() == ["cancelled"]
    assert run_next_job(app_env) is None  # a cancelled job never runs


def test_a_label_issue_job_outcome_shows_in_a_new_session(app_env) -> None:
    at = page("runs")
    at.button(key="runs.find_issues").click().run()
    assert not at.exception, at.exception
    # Twelve clips are too few for out-of-fold predictions: the job fails and says why.
    assert run_next_job(app_env).status == "failed"
    # A new session (a reload, or another app server) shows the finished job's outcome.
    fresh = page("runs")
    assert not fresh.exception, fresh.exception
    assert "Label-issue detection failed: cannot estimate out-of-fold probabilities" in fresh.error[0].value


def test_only_engineers_and_admins_open_jobs(app_env) -> None:
    with app_env.db.write() as s:
        add_user(s, name="ana", role="annotator")
        add_user(s, name="rosa", role="reviewer")
        eli = add_user(s, name="eli", role="engineer")
        pid = get_project(s, "demo").id
        submit_job(s, "train", project_id=pid, owner_id=eli.id)
    assert "cannot open this page" in page("jobs", "ana").error[0].value
    assert "cannot open this page" in page("jobs", "rosa").error[0].value  # like Runs and Error analysis
    at = page("jobs", "eli")
    assert not at.exception, at.exception
    assert at.dataframe[0].value["kind"].tolist() == ["Training"]


def test_a_cancelled_running_job_says_so_in_its_details(app_env) -> None:
    with app_env.db.write() as s:
        pid = get_project(s, "demo").id
        job = submit_job(s, "features", project_id=pid, owner_id=None)
    claim = claim_job(app_env, worker="test-worker")
    assert claim is not None
    at = page("jobs")
    at.selectbox(key="jobs.pick").set_value(job.id).run()
    assert "· running" in at.caption[-1].value
    at.button(key="jobs.detail.cancel").click().run()
    assert not at.exception, at.exception
    # The worker has not reached its next step yet: the job is not running on as if nothing happened.
    details = " ".join(c.value for c in at.caption)
    assert "cancel requested" in details
    assert "· running" not in details
    assert "jobs.detail.cancel" not in [b.key for b in at.button]
    # At its next step the worker stops, and the page says the job was cancelled.
    assert run_claimed(app_env, claim) == "cancelled"
    at.run()
    assert "was cancelled" in at.info[-1].value


def test_a_queued_job_asks_about_workers_only_once_nobody_claimed_it_for_a_while(
    app_env, monkeypatch
) -> None:
    # However slow the machine, a job queued just now is well inside this.
    monkeypatch.setattr(jobs, "UNCLAIMED_AFTER_S", 3600.0)
    with app_env.db.write() as s:
        pid = get_project(s, "demo").id
        job = submit_job(s, "features", project_id=pid, owner_id=None)
    at = page("jobs")
    at.selectbox(key="jobs.pick").set_value(job.id).run()
    assert not at.exception, at.exception
    assert "Waiting for a worker" in job_progress_texts(at)[0]
    assert "is a worker running?" not in job_progress_texts(at)[0]
    # Queued long ago and still unclaimed: now the question is worth asking.
    with app_env.db.write() as s:
        s.execute(update(Job).where(Job.id == job.id).values(updated_at=datetime(2020, 1, 1, tzinfo=UTC)))
    at.run()
    assert "is a worker running?" in job_progress_texts(at)[0]


def test_report_refreshes_are_hidden_until_asked_for(app_env) -> None:
    with app_env.db.write() as s:
        pid = get_project(s, "demo").id
        submit_job(s, "agreement", project_id=pid, owner_id=None)
        submit_job(s, "features", project_id=pid, owner_id=None)
    at = page("jobs")
    assert not at.exception, at.exception
    assert at.dataframe[0].value["kind"].tolist() == ["Feature extraction"]
    at.toggle(key="jobs.show_routine").set_value(True).run()
    assert sorted(at.dataframe[0].value["kind"]) == ["Agreement report", "Feature extraction"]
