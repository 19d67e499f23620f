"""The Data versions & checks page and the Runs page through AppTest."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update
from streamlit.testing.v1 import AppTest

import labeling.job_kinds  # noqa: F401  (registers the checks jobs)
from db.models import Clip, DatasetVersion
from labeling.data.projects import get_project
from labeling.model.runs import import_external_predictions
from labeling.platform.auth import add_user
from labeling.platform.jobs import latest_job, run_worker
from tests.app.conftest import ROOT, sign_in


def page(name: str, user: str = "eli") -> AppTest:
    at = AppTest.from_file(str(next(ROOT.glob(f"pages/*/{name}.py"))), default_timeout=120)
    sign_in(at, user)
    at.session_state["app.project"] = "demo"
    return at


@pytest.fixture
def env(app_env, tmp_path):
    ws = app_env
    with ws.db.write() as s:
        add_user(s, name="eli", role="engineer")
        add_user(s, name="ana", role="annotator")
        ids = s.scalars(select(Clip.id).order_by(Clip.id)).all()
        for n, cid in enumerate(ids):
            s.execute(update(Clip).where(Clip.id == cid).values(split="test" if n % 2 else "train"))
        names = s.scalars(select(Clip.original_name).order_by(Clip.id)).all()

    def run(name: str, answer: str, fingerprint: str | None = None):
        pred = tmp_path / f"{name}.csv"
        pred.write_text("file_name,label\n" + "".join(f"{n},{answer}\n" for n in names))
        return import_external_predictions(ws, "demo", pred, name=name, fingerprint=fingerprint)

    return ws, run


def test_data_page_freezes_a_version_and_runs_the_checks(env):
    ws, _ = env
    at = page("data").run()
    assert not at.exception
    assert at.title[0].value == "Data versions & checks"
    at.text_input(key="data.version_name").set_value("first")
    at.button[0].click().run()  # the form's submit button
    assert not at.exception
    with ws.db.read() as s:
        assert s.scalar(select(DatasetVersion.n_clips).where(DatasetVersion.name == "first")) == 12
    # The checks are on the page already: computed once (no worker runs here) and stored.
    assert any("12 clips checked against the rules" in c.value for c in at.caption)


def test_runs_page_says_when_the_code_changed(env):
    _, run = env
    run("always yes", "yes")
    run("always no", "no")
    at = page("runs").run()
    assert not at.exception
    assert at.title[0].value == "Runs"
    assert any("NOT a data-only change" in e.value for e in at.error)


def test_runs_page_credits_the_data_when_the_fingerprint_is_equal(env):
    _, run = env
    run("model v1", "yes", fingerprint="f" * 64)
    run("model v2", "no", fingerprint="f" * 64)
    at = page("runs").run()
    assert not at.exception
    assert not at.error
    assert any("Same model code" in m.value for m in at.success)


@pytest.mark.parametrize("name", ["data", "runs"])
def test_annotators_are_refused(env, name):
    at = page(name, user="ana").run()
    assert any("cannot open" in e.value for e in at.error)
    assert not at.title


def test_fixing_loud_clips_from_the_checks_tab_replaces_them(env):
    ws, _ = env
    at = page("data").run()
    at.selectbox(key="data.check").set_value("loudness").run()
    assert not at.exception
    at.button(key="data.fix").click().run()
    assert not at.exception
    # First what would change, and nothing changed yet; then yes.
    assert any("retires the originals" in m.value for m in at.warning)
    with ws.db.read() as s:
        assert not s.scalars(select(Clip.id).where(Clip.deleted_at.is_not(None))).all()
    at.button(key="data.fix_confirm").click().run()
    assert not at.exception
    assert any("replaced by fixed copies" in m.value for m in at.success)
    with ws.db.read() as s:
        fixed = s.scalars(
            select(Clip.id).where(Clip.parent_clip_id.is_not(None), Clip.deleted_at.is_(None))
        ).all()
        retired = s.scalars(select(Clip.id).where(Clip.deleted_at.is_not(None))).all()
    assert len(fixed) == len(retired) > 0
    # The checks shown are of the clips as they are now: the retired ones are not listed again.
    at.run()
    assert not at.exception
    shown = at.dataframe[-1].value if at.dataframe else None
    assert shown is None or not set(shown["clip_id"]) & set(retired)


def test_duplicates_are_looked_for_by_a_job_the_page_queues(env):
    ws, _ = env
    at = page("data").run()
    assert any("Not looked for yet" in c.value for c in at.caption)
    at.button(key="data.duplicates").click().run()
    assert not at.exception
    with ws.db.read() as s:
        job = latest_job(s, "duplicate_checks", project_id=get_project(s, "demo").id)
    assert job is not None
    assert job.status == "queued"
    assert run_worker(ws, once=True, kinds=["duplicate_checks"]) == 1
    at.run()
    assert not at.exception
    assert any("As found at" in c.value for c in at.caption)
    assert any("12 clips checked" in c.value for c in at.caption)


def test_the_augment_form_shows_one_recipe_and_plays_an_example_first(env):
    from labeling.model.error_analysis import tag_clip

    ws, _ = env
    with ws.db.write() as s:
        for cid in s.scalars(select(Clip.id)):
            tag_clip(s, cid, "noise:clean")
        n_before = len(s.scalars(select(Clip.id)).all())
    at = page("data").run()
    at.selectbox(key="data.augment_kind").set_value("pitch").run()
    assert not at.exception
    assert [s.label for s in at.slider] == ["Semitones"]  # no SNR or speed slider for a pitch shift
    at.button(key="data.augment_listen").click().run()
    assert not at.exception
    assert len(at.get("audio")) == 2  # as recorded, and as the copy would sound
    with ws.db.read() as s:
        assert len(s.scalars(select(Clip.id)).all()) == n_before  # listening stores nothing
    at.button(key="data.augment_go").click().run()
    assert not at.exception
    assert "augmented training clips (augmented:pitch+2)" in at.success[0].value
    with ws.db.read() as s:
        assert len(s.scalars(select(Clip.id)).all()) == n_before + 6  # the six training clips
