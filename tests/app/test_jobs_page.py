"""The Jobs page and job panels: what workers are doing, read from the database on every rerun."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from labeling.auth import add_user
from labeling.jobs import run_next_job, submit_job
from labeling.projects import get_project
from tests.app.conftest import ROOT, sign_in


def page(name: str, user: str = "admin") -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=120)
    sign_in(at, user)
    at.session_state["app.project"] = "demo"
    return at.run()


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
