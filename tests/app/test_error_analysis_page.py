"""The Error analysis page through AppTest: it renders a run, tags while listening, acts on a slice,
and refuses annotators."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from db.models import Clip, ClipTag, SliceAction
from labeling.model.runs import import_external_predictions
from labeling.platform.auth import add_user
from labeling.platform.jobs import run_next_job
from tests.app.conftest import ROOT, sign_in


def slice_table(at: AppTest):
    return next(d.value for d in at.dataframe if "priority" in d.value.columns)


def page(user: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages/model/error_analysis.py"), default_timeout=120)
    sign_in(at, user)
    at.session_state["app.project"] = "demo"
    return at


@pytest.fixture
def with_run(app_env, tmp_path):
    """The app's demo project with an external run that says 'yes' to every clip."""
    with app_env.db.read() as s:
        names = s.scalars(select(Clip.original_name).order_by(Clip.id)).all()
    pred = tmp_path / "pred.csv"
    pred.write_text("file_name,label,confidence\n" + "".join(f"{n},yes,0.8\n" for n in names))
    run = import_external_predictions(app_env, "demo", pred, name="always yes")
    with app_env.db.write() as s:
        add_user(s, name="eli", role="engineer")
        add_user(s, name="ana", role="annotator")
    return app_env, run


def test_renders_a_run_with_its_fingerprint_and_slices(with_run) -> None:
    _, run = with_run
    at = page("eli")
    at.session_state["errors.split"] = "all"
    at.run()
    assert not at.exception
    assert at.title[0].value == "Error analysis"
    assert any(run.code_fingerprint in c.value for c in at.caption)
    table = slice_table(at)
    assert set(table["tag"]) >= {"speaker=spk0", "speaker=spk1", "speaker=spk2"}
    assert at.metric[0].value == "50.0%"  # half the clips are 'yes'


def test_tagging_a_clip_while_listening_and_queueing_a_slice(with_run) -> None:
    ws, _ = with_run
    at = page("eli")
    at.session_state["errors.split"] = "all"
    at.session_state["errors.slice"] = "speaker=spk1"
    at.run()
    assert not at.exception
    assert len(at.get("audio")) > 0
    tags = [w for w in at.multiselect if str(w.key).startswith("errors.tags.")]
    clip_id = int(str(tags[0].key).rsplit(".", 1)[-1])
    tags[0].set_value(["mumbled"]).run()
    assert not at.exception
    # The tag is on the clip now; the run's own table keeps the tags it was trained with.
    shown = next(w for w in at.multiselect if w.key == f"errors.tags.{clip_id}")
    assert shown.value == ["mumbled"]
    assert "mumbled" not in set(slice_table(at)["tag"])
    at.button(key="errors.queue").click().run()
    assert not at.exception
    with ws.db.read() as s:
        assert s.scalar(select(ClipTag.source).where(ClipTag.clip_id == clip_id)) == "analysis"
        action = s.execute(select(SliceAction.action, SliceAction.slice)).one()
        priorities = dict(s.execute(select(Clip.original_name, Clip.priority)).all())
    assert tuple(action) == ("queue", "speaker=spk1")
    assert all((p > 0) == ("_spk1_" in n) for n, p in priorities.items())


def test_train_button_makes_a_run_and_shows_it(with_run) -> None:
    ws, external = with_run
    at = page("eli").run()
    assert at.selectbox(key="errors.run").value == external.id
    at.button(key="errors.train").click().run()
    assert not at.exception
    assert "Waiting for a worker" in at.get("progress")[0].proto.text  # queued for a worker
    assert run_next_job(ws, kinds=["train"]).status == "succeeded"  # what `earmark worker` does
    at.run()
    assert not at.exception
    assert at.selectbox(key="errors.run").value == external.id + 1
    assert "accuracy" in at.success[0].value


def test_a_confusion_cell_without_clips_says_so_and_can_be_cleared(with_run) -> None:
    # The run says "yes" to all 12 clips: its 6 errors are the 6 "no" clips; none is "yes" heard as "no".
    at = page("eli")
    at.session_state["errors.split"] = "all"
    at.session_state["errors.pair"] = "yes → no"  # what a click on that cell of the matrix chooses
    at.run()
    assert not at.exception
    said = " ".join(i.value for i in at.info)
    assert "No clip of class yes was predicted as no by this run" in said
    assert "6 errors" in said
    assert not any("No mistakes" in c.value for c in at.caption)
    assert at.selectbox(key="errors.pair").value == "yes → no"
    at.button(key="errors.clear_pair").click().run()
    assert not at.exception
    assert at.selectbox(key="errors.pair").value == ""  # every error
    assert any(c.value.startswith("Errors 1–6 of 6") for c in at.caption)


def test_an_annotator_is_refused(with_run) -> None:
    at = page("ana").run()
    assert not at.exception
    assert "cannot open this page" in at.error[0].value
    assert not at.dataframe
