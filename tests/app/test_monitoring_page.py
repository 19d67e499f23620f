"""The Monitoring page through AppTest: it renders the batches, a measure's detail, previews the
labeling sample before anything is queued, and shows every alarm that stands."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from db.models import MonitoringAction, ProductionClip, Project
from labeling.monitor.drift import run_drift_check
from labeling.platform.jobs import run_next_job, submit_job
from tests.app.conftest import ROOT, demo_project, exposed, sign_in
from tests.monitoring import (
    ASR,
    BATCHES,
    PROJECT,
    log_batch,
    log_transcribed_batch,
    monitored_project,
    transcribed_project,
)


@pytest.fixture
def monitored(templates, tmp_path, monkeypatch):
    """The demo workspace with the monitored project of tests/monitoring.py beside it (its quiet
    batch raises an alarm), exposed to the app as ``app_env`` is."""

    def build(ws, folder):  # type: ignore[no-untyped-def]
        demo_project(ws, folder)
        monitored_project(ws, folder)

    yield from exposed(templates.open("demo+monitored", build, tmp_path), monkeypatch)


def test_the_monitoring_page_shows_the_alarm_a_measure_and_the_sample_preview(monitored):
    at = AppTest.from_file(str(ROOT / "pages/monitor/monitoring.py"), default_timeout=180)
    sign_in(at, "admin")
    at.session_state["app.project"] = PROJECT
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Monitoring"
    assert at.selectbox(key="monitoring.batch").value == BATCHES[-1]
    assert at.metric[0].value in {"warning", "alarm"}
    assert any("Loudness" in c.value for c in at.caption)

    # What a click on the loudness tile does: its distributions and its quietest clips.
    at.session_state["monitoring.measure"] = "rms_dbfs"
    at.run()
    assert not at.exception, at.exception
    assert any(h.value.startswith("Loudness") for h in at.subheader)

    at.button(key="monitoring.sample_preview").click().run()
    assert not at.exception, at.exception
    sample = next(d.value for d in at.dataframe if "reason" in d.value.columns)
    assert (sample["reason"] == "random").sum() == 30
    with monitored.db.read() as s:  # a preview queues nothing
        assert s.scalar(select(func.count()).where(ProductionClip.sample_reason.is_not(None))) == 0
    # Another batch chosen: neither the preview nor the picked measure are offered as its own.
    at.selectbox(key="monitoring.batch").set_value(BATCHES[0]).run()
    assert not at.exception, at.exception
    assert not any(b.key == "monitoring.send" for b in at.button)
    assert not any(h.value.startswith("Loudness") for h in at.subheader)
    at.selectbox(key="monitoring.batch").set_value(BATCHES[-1]).run()
    at.button(key="monitoring.sample_preview").click().run()
    at.button(key="monitoring.send").click().run()
    assert not at.exception, at.exception
    with monitored.db.read() as s:
        assert s.scalar(select(func.count()).where(ProductionClip.sample_reason.is_not(None))) == len(sample)
    # Sent once: the tab says so, a new preview adds nothing, and more is asked for explicitly.
    at.run()
    assert any(f"{len(sample)} clips of this batch already sent" in i.value for i in at.info)
    at.button(key="monitoring.sample_preview").click().run()
    assert not any(b.key == "monitoring.send" for b in at.button)
    assert any("Nothing to add" in m.value for m in at.success)
    at.number_input(key="monitoring.more_random").set_value(5).run()
    at.button(key="monitoring.sample_preview").click().run()
    send = next(b for b in at.button if b.key == "monitoring.send")
    assert send.label.startswith(
        "Add 5 clips to this batch's sample (5 random): its random sample grows from 30 to 35"
    )

    # Answering the alarm says so, and the note is not carried over to the next answer.
    at.text_input(key="monitoring.note").input("known: school pilot")
    at.button(key="monitoring.ack").click().run()
    assert not at.exception, at.exception
    assert any("acknowledged" in m.value for m in at.success)
    assert at.text_input(key="monitoring.note").value == ""
    with monitored.db.read() as s:
        notes = s.scalars(select(MonitoringAction.note)).all()
    assert notes == ["known: school pilot"]


def test_a_drift_check_that_finds_an_alarm_is_not_shown_as_a_success(monitored):
    with monitored.db.write() as s:
        project_id = s.scalar(select(Project.id).where(Project.name == PROJECT))
        submit_job(s, "drift", project_id=project_id, owner_id=None, params={"batch": BATCHES[-1]})
    job = run_next_job(monitored, kinds=["drift"])
    assert job.status == "succeeded", job.error
    level = job.result["level"]
    assert level in {"warning", "alarm"}  # the quiet batch
    at = AppTest.from_file(str(ROOT / "pages/monitor/monitoring.py"), default_timeout=180)
    sign_in(at, "admin")
    at.session_state["app.project"] = PROJECT
    at.run()
    assert not at.exception, at.exception
    boxes = at.error if level == "alarm" else at.warning
    assert any(f"Batch {BATCHES[-1]}: {level}" in b.value for b in boxes)
    assert not any(BATCHES[-1] in m.value for m in at.success)


def test_the_page_shows_an_alarm_that_stands_under_newer_batches_and_the_labels_still_missing(
    monitored, tmp_path
):
    log_batch(monitored, tmp_path, "day 3", seed=2)
    run_drift_check(monitored, PROJECT, "day 3")
    log_batch(monitored, tmp_path, "day 4 (small)", seed=3, n=30)
    run_drift_check(monitored, PROJECT, "day 4 (small)")
    at = AppTest.from_file(str(ROOT / "pages/monitor/monitoring.py"), default_timeout=180)
    sign_in(at, "admin")
    at.session_state["app.project"] = PROJECT
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="monitoring.batch").value == "day 4 (small)"
    assert at.metric[0].value == "too small"
    alarm = next(e.value for e in at.error if e.value.startswith("Alarm"))
    assert f"batch {BATCHES[-1]!r}" in alarm
    assert "day 3" not in alarm
    assert "day 4" not in alarm
    assert any(
        c.value.startswith("30 more labelled random-sample clips needed for an accuracy verdict")
        for c in at.caption
    )


def test_a_transcription_batch_shows_its_word_error_rate(app_env, tmp_path):
    transcribed_project(app_env, tmp_path)
    log_transcribed_batch(app_env, tmp_path, "worse", seed=2, slip=0.3, drop=0.5)
    run_drift_check(app_env, ASR, "worse")
    at = AppTest.from_file(str(ROOT / "pages/monitor/monitoring.py"), default_timeout=180)
    sign_in(at, "admin")
    at.session_state["app.project"] = ASR
    at.run()
    assert not at.exception, at.exception
    wer = next(m for m in at.metric if m.label == "WER on the labelled random sample")
    assert wer.value.endswith("%")
    assert wer.delta.startswith("+")
    assert any("WER +" in c.value for c in at.caption)
