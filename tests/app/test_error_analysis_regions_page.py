"""The Error analysis page of a regions project through AppTest: a model's regions against the final
ones, on a small project and on the demo's long recordings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labeling.annotate.region_labels import submit_regions
from labeling.data.clips import clip_frame
from labeling.data.importer import import_path
from labeling.data.projects import create_project, get_project
from labeling.data.regions import (
    clean_region_rows,
    list_regions,
    propose_regions,
    recording,
    replace_region_set,
)
from labeling.demo.context import DemoContext
from labeling.demo.recordings import DEMO_REGIONS_PROJECT, step_regions_project
from labeling.platform.auth import add_user, get_user
from tests.app.test_label_pages import page, shown_text
from tests.audio import speechlike, write_wav

PAGE = "pages/model/error_analysis.py"


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_the_page_scores_the_vad_against_the_final_regions(app_env, tmp_path):
    ws = app_env
    # Two bursts of speech-like sound in near silence: the VAD finds them, roughly.
    y = np.zeros(16000 * 8)
    y[16000:25600] = speechlike(1, seconds=0.6)
    y[16000 * 4 : 16000 * 4 + 9600] = speechlike(2, seconds=0.6)
    write_wav(tmp_path / "rec" / "hearing.wav", y + 1e-4 * np.random.default_rng(0).standard_normal(len(y)))
    with ws.db.write() as s:
        info = create_project(
            s, name="hearings", task_kind="regions", classes=["speech", "noise"], annotations_per_clip=2
        )
        add_user(s, name="ana", role="annotator", password="correct horse")
    import_path(ws, tmp_path / "rec", "hearings", create=False)
    with ws.db.write() as s:
        clip_id = int(clip_frame(s, info.id)["clip_id"].iloc[0])
        rec = recording(s, info, clip_id)
        final = pd.DataFrame({"start": [1.0, 4.0], "end": [1.6, 4.6], "label": ["speech", "speech"]})
        rows = clean_region_rows(final, info, rec, vocabulary=True)
        replace_region_set(s, info, rec, rows, annotator_id=None, source="final", actor_id=None)
        submit_regions(
            s, info.id, get_user(s, "ana").id, clip_id, [{"start": 1.0, "end": 1.6, "label": "speech"}]
        )

    at = page(PAGE, "admin", project="hearings").run()
    assert not at.exception
    assert "No model regions yet" in shown_text(at)

    with ws.db.write() as s:
        propose_regions(s, ws.store, info.id, clip_id)
    at = page(PAGE, "admin", project="hearings").run()
    assert not at.exception
    shown = _metrics(at)
    assert {"DER", "Missed", "False alarm", "Confusion", "WER"} <= set(shown)
    assert shown["WER"] == "none"
    summary = next(d.value for d in at.dataframe if "system" in d.value.columns)
    assert summary["system"].tolist() == ["Energy VAD (built in)", "ana"]
    # ana left out the second region: half the final time missed.
    assert summary.set_index("system").loc["ana", "der"] == pytest.approx(0.5)
    slices = next(d.value for d in at.dataframe if "priority" in d.value.columns)
    assert "class=speech" in slices["slice"].tolist()
    assert len(at.get("plotly_chart")) == 4


def test_the_demo_long_recordings_have_two_annotators_and_the_page_renders(app_env):
    ws = app_env
    line = step_regions_project(ws, DemoContext(project="demo", size="tiny", random_state=0, progress=None))
    assert DEMO_REGIONS_PROJECT in line
    with ws.db.read() as s:
        regions = list_regions(s, DEMO_REGIONS_PROJECT)
        recordings = clip_frame(s, get_project(s, DEMO_REGIONS_PROJECT).id)
    people = regions[regions["annotator_id"].notna()]
    assert sorted(people["annotator"].unique()) == ["ana", "ben"]
    # Each annotator drew on both recordings; the final regions and the VAD's cover both too.
    assert people.groupby("annotator")["recording_id"].nunique().to_dict() == {"ana": 2, "ben": 2}
    assert regions.loc[regions["source"] == "final", "recording_id"].nunique() == 2
    assert regions.loc[regions["source"] == "proposal", "recording_id"].nunique() == 2
    assert (recordings["sample_rate"] == 16000).all()

    at = page(PAGE, "admin", project=DEMO_REGIONS_PROJECT).run()
    assert not at.exception
    shown = _metrics(at)
    assert shown["WER"] == "none"  # the VAD finds speech but says no words
    summary = next(d.value for d in at.dataframe if "system" in d.value.columns).set_index("system")
    # The annotators typed what they heard, so their region transcripts have a WER.
    assert summary.loc[["ana", "ben"], "wer"].notna().all()
    slices = next(d.value for d in at.dataframe if "priority" in d.value.columns)
    assert {"setting=car", "setting=office", "class=speech", "noise:car"} <= set(slices["slice"])
