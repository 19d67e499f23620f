"""The Label page of a regions project, through AppTest: a recording comes on screen in the region
editor, and the page says so when nothing is left."""

from __future__ import annotations

import numpy as np

from labeling.annotate.region_labels import submit_regions
from labeling.data.clips import clip_frame
from labeling.data.importer import import_path
from labeling.data.projects import create_project
from labeling.platform.auth import add_user, get_user
from tests.app.test_label_pages import page, shown_text
from tests.audio import write_wav


def test_a_recording_is_handed_out_in_the_region_editor(app_env, tmp_path):
    ws = app_env
    write_wav(tmp_path / "rec" / "hearing.wav", (0.1 * np.random.default_rng(0).standard_normal(16000 * 8)))
    with ws.db.write() as s:
        info = create_project(s, name="hearings", task_kind="regions", classes=["speech", "noise"])
        add_user(s, name="ana", role="annotator", password="correct horse")
    import_path(ws, tmp_path / "rec", "hearings", create=False)
    with ws.db.read() as s:
        clip_id = int(clip_frame(s, info.id)["clip_id"].iloc[0])

    at = page("pages/labeling/label.py", "ana", project="hearings").run()
    assert not at.exception
    assert [h.value for h in at.subheader] == ["hearing.wav"]
    assert f"Recording {clip_id} · 8.0 s" in shown_text(at)

    with ws.db.write() as s:
        submit_regions(
            s, info.id, get_user(s, "ana").id, clip_id, [{"start": 1.0, "end": 2.0, "label": "speech"}]
        )
    at = page("pages/labeling/label.py", "ana", project="hearings").run()
    assert not at.exception
    assert "Nothing left for you to label" in shown_text(at)
    assert at.sidebar.selectbox(key="regions.reopen").options == [f"hearing.wav (recording {clip_id})"]


def test_classes_named_like_editor_keys_are_chosen_with_digits():
    from labeling.annotate.annotations import class_shortcuts
    from pages.labeling.region_editor import editor_class_keys

    # "s" splits and "m" merges in the editor, so a project with classes s(peech) and m(usic)
    # chooses them with 1 and 2; letters that clash with nothing stay their own keys.
    assert editor_class_keys(class_shortcuts(["s", "m", "x"])) == ["1", "2", "3"]
    assert editor_class_keys(class_shortcuts(["a", "b"])) == ["a", "b"]
    assert editor_class_keys(class_shortcuts(["speech", "noise"])) == ["1", "2"]


def test_my_labels_lists_submitted_recordings_and_opens_one_in_the_editor(app_env, tmp_path):
    from tests.app.conftest import new_app

    ws = app_env
    rng = np.random.default_rng(1)
    for name in ("first.wav", "second.wav"):
        write_wav(tmp_path / "rec" / name, 0.1 * rng.standard_normal(16000 * 6))
    with ws.db.write() as s:
        info = create_project(s, name="hearings", task_kind="regions", classes=["speech", "noise"])
        add_user(s, name="ana", role="annotator", password="correct horse")
    import_path(ws, tmp_path / "rec", "hearings", create=False)
    with ws.db.write() as s:
        ids = clip_frame(s, info.id).set_index("original_name")["clip_id"].to_dict()
        ana = get_user(s, "ana").id
        regions = [
            {"start": 0.5, "end": 2.0, "label": "speech"},
            {"start": 2.0, "end": 2.5, "label": "noise"},
            {"start": 3.0, "end": 4.0, "label": "speech"},
        ]
        submit_regions(s, info.id, ana, ids["first.wav"], regions)

    at = page("pages/labeling/my_labels.py", "ana", project="hearings").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["recording"]) == ["first.wav"]
    assert table["n_regions"].iloc[0] == 3
    assert table["classes"].iloc[0] == "speech ×2, noise ×1"
    assert table["seconds"].iloc[0] == 3.0

    # Through the whole app, so the button can take the annotator to the Label page.
    app = new_app("ana")
    app.session_state["app.project"] = "hearings"
    app.run()
    app.switch_page("pages/labeling/my_labels.py").run()
    assert not app.exception
    app.button(key="my_labels.open").click().run()
    assert not app.exception
    assert [h.value for h in app.subheader] == ["first.wav"]  # submitted, so not what the queue gives
