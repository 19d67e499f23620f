"""The Monitoring page through AppTest: it renders the batches, a measure's detail, and previews the
labeling sample before anything is queued."""

from __future__ import annotations

from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from db.models import MonitoringAction, ProductionClip
from tests.app.conftest import ROOT, sign_in
from tests.monitoring import BATCHES, PROJECT, monitored_project


def test_the_monitoring_page_shows_the_alarm_a_measure_and_the_sample_preview(app_env, tmp_path):
    monitored_project(app_env, tmp_path)
    at = AppTest.from_file(str(ROOT / "pages" / "monitoring.py"), default_timeout=180)
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
    assert (sample["reason"] == "random").sum() == 20
    with app_env.db.read() as s:  # a preview queues nothing
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
    with app_env.db.read() as s:
        assert s.scalar(select(func.count()).where(ProductionClip.sample_reason.is_not(None))) == len(sample)

    # Answering the alarm says so, and the note is not carried over to the next answer.
    at.text_input(key="monitoring.note").input("known: school pilot")
    at.button(key="monitoring.ack").click().run()
    assert not at.exception, at.exception
    assert any("acknowledged" in m.value for m in at.success)
    assert at.text_input(key="monitoring.note").value == ""
    with app_env.db.read() as s:
        notes = s.scalars(select(MonitoringAction.note)).all()
    assert notes == ["known: school pilot"]
