import pandas as pd
import pytest

from labeling.clips import clip_frame
from labeling.demo import DEMO_PROJECT, create_demo
from labeling.projects import ProjectError, get_project


def test_demo_creates_a_tagged_labelled_project_once(sqlite_workspace):
    ws = sqlite_workspace
    report = create_demo(ws, size="tiny")
    assert report.created
    with ws.db.read() as s:
        project = get_project(s, DEMO_PROJECT)
        frame = clip_frame(s, project.id)
    assert project.annotations_per_clip == 3
    assert set(project.tag_groups) >= {"noise", "channel", "accent"}
    assert len(frame) > 0
    assert frame["label"].isin(project.classes).all()
    # Every clip carries its conditions as tags and metadata, and they agree.
    noise_tag = frame["tags"].map(lambda tags: next(t for t in tags if t.startswith("noise:")))
    assert (noise_tag == "noise:" + frame["noise"]).all()
    # Audio is stored and decodes at the corpus rate.
    assert (frame["sample_rate"] == 16000).all()
    assert pd.notna(frame["rms_dbfs"]).all()

    again = create_demo(ws, size="tiny", if_empty=True)
    assert not again.created
    with pytest.raises(ProjectError, match="already exists"):
        create_demo(ws, size="tiny")
