import pytest

from tests.app.conftest import new_app


@pytest.mark.parametrize(
    "page", ["pages/data/overview.py", "pages/data/clips.py", "pages/data/import_audio.py"]
)
def test_page_renders_without_exception(app_env, page):
    at = new_app()
    at.run()
    at.switch_page(page)
    at.run()
    assert not at.exception, at.exception


def test_overview_shows_the_project_counts(app_env):
    at = new_app().run()
    assert at.title[0].value == "demo"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Clips"] == "12"
    assert metrics["With a final label"] == "12"


def test_clips_filters_narrow_the_table(app_env):
    at = new_app().run()
    at.switch_page("pages/data/clips.py").run()
    assert "12 of 12 clips match" in at.caption[0].value
    at.multiselect(key="clips.label").set_value(["yes"]).run()
    assert "6 of 12 clips match" in at.caption[0].value
    at.text_input(key="clips.name").set_value("spk1").run()
    assert "2 of 12 clips match" in at.caption[0].value


def test_an_out_of_date_schema_is_refused_with_the_command(app_env):
    from db.migrate import downgrade

    downgrade(app_env.db, "base")
    at = new_app().run()
    assert any("earmark db upgrade" in e.value for e in at.error)


def test_overview_shows_the_stored_summary_with_its_age_while_a_job_recounts(app_env):
    from sqlalchemy import select, update

    from db.models import Clip, ClipTag, StoredReport
    from labeling.data.projects import get_project
    from labeling.platform.jobs import latest_job
    from labeling.quality.data_summaries import OVERVIEW, overview_summary

    ws = app_env
    with ws.db.read() as s:
        pid = get_project(s, "demo").id
    overview_summary(ws.db, pid)  # stored, as the worker does after the import
    with ws.db.write() as s:
        # As on a large project, where counting takes long enough to show the stored one meanwhile.
        s.execute(update(StoredReport).where(StoredReport.kind == OVERVIEW).values(seconds=30.0))
        s.add(ClipTag(clip_id=s.scalar(select(Clip.id).limit(1)), tag="noise:car", source="test"))
    at = new_app().run()
    assert not at.exception, at.exception
    assert any("Shown as counted at" in i.value for i in at.info)
    assert {m.label: m.value for m in at.metric}["Clips"] == "12"
    with ws.db.read() as s:
        job = latest_job(s, "data_summaries", project_id=pid)
    assert job is not None
    assert job.status == "queued"
