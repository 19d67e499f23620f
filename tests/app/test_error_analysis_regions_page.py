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
    assert len(at.get("plotly_chart")) == 5  # with the one around the error to hear


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


def test_picking_a_slice_and_an_error_plays_exactly_that_stretch(app_env, tmp_path, monkeypatch):
    import io

    import soundfile as sf
    import streamlit

    ws = app_env
    sr = 16000
    y = 0.2 * np.random.default_rng(3).standard_normal(sr * 8)
    path = write_wav(tmp_path / "rec" / "call.wav", y, sr=sr)
    with ws.db.write() as s:
        info = create_project(s, name="calls", task_kind="regions", classes=["speech", "noise"])
    import_path(ws, tmp_path / "rec", "calls", create=False)
    # Final: speech 1–3 s, noise 5–6 s. Imported model: speech from 1.5 s (1–1.5 s missed), speech at
    # 3.5–4 s over nothing (a false alarm), speech where the final set has noise (confused).
    final = pd.DataFrame({"start": [1.0, 5.0], "end": [3.0, 6.0], "label": ["speech", "noise"]})
    model = pd.DataFrame({"start": [1.5, 3.5, 5.0], "end": [3.0, 4.0, 6.0], "label": ["speech"] * 3})
    with ws.db.write() as s:
        rec = recording(s, info, int(clip_frame(s, info.id)["clip_id"].iloc[0]))
        for frame, source in ((final, "final"), (model, "import")):
            rows = clean_region_rows(frame, info, rec, vocabulary=True)
            replace_region_set(s, info, rec, rows, annotator_id=None, source=source, actor_id=None)

    played = []
    real_audio = streamlit.audio

    def audio(data, *args, **kwargs):
        played.append(data)
        return real_audio(data, *args, **kwargs)

    monkeypatch.setattr(streamlit, "audio", audio)
    stored, stored_sr = sf.read(str(path), dtype="int16")  # the file as imported, read here

    def heard() -> np.ndarray:
        samples, rate = sf.read(io.BytesIO(played[-1]), dtype="int16")
        assert rate == stored_sr
        return samples

    at = page(PAGE, "admin", project="calls").run()
    assert not at.exception
    at.selectbox(key="errors.regions.play_slice").set_value("class=noise").run()
    assert not at.exception
    assert at.selectbox(key="errors.regions.play_error").options == ["confusion 5.00–6.00 s of call.wav"]
    np.testing.assert_array_equal(heard(), stored[5 * sr : 6 * sr])
    assert "the final regions have noise there, the model speech" in shown_text(at)

    at.selectbox(key="errors.regions.play_slice").set_value("class=speech").run()
    assert at.selectbox(key="errors.regions.play_error").options == [
        "missed 1.00–1.50 s of call.wav",
        "false alarm 3.50–4.00 s of call.wav",
    ]
    np.testing.assert_array_equal(heard(), stored[sr : sr + sr // 2])
    at.selectbox(key="errors.regions.play_error").set_value(1).run()
    assert not at.exception
    np.testing.assert_array_equal(heard(), stored[round(3.5 * sr) : 4 * sr])
    charts = [c.key for c in at.get("plotly_chart")]
    assert "errors.regions.error_window" in charts  # the model's and the final regions around it
