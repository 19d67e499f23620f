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
