"""Production traffic from the Import page: a prediction log zipped with its audio is logged as a
production batch by a worker, and a project without a live model is told how to get one."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import soundfile as sf
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from db.models import Clip, ProductionClip
from labeling.data.projects import get_project
from labeling.model.runs import import_external_predictions
from labeling.monitor.live import mark_live
from labeling.monitor.production import production_batches
from labeling.platform.jobs import run_next_job
from tests.app.conftest import new_app


def import_page() -> AppTest:
    at = new_app()
    at.default_timeout = 120
    at.run()
    return at.switch_page("pages/data/import_audio.py").run()


def mark_a_live_model(ws, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with ws.db.read() as s:
        names = s.scalars(select(Clip.original_name)).all()
    pred = tmp_path / "deployed.csv"
    pred.write_text("file_name,label,confidence\n" + "".join(f"{n},{n.split('_')[0]},0.9\n" for n in names))
    run = import_external_predictions(ws, "demo", pred, name="deployed")
    mark_live(ws, "demo", run.id)


def log_zip(n_good: int) -> bytes:
    """A serving stack's day: a JSON Lines log beside its audio folder, and one line naming a class
    the project does not have."""
    rng = np.random.default_rng(7)
    buf = io.BytesIO()
    lines = []
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(n_good + 1):
            audio = io.BytesIO()
            y = 0.2 * np.sin(2 * np.pi * rng.uniform(150, 400) * np.arange(8000) / 16000)
            sf.write(audio, y.astype(np.float32), 16000, format="WAV", subtype="PCM_16")
            zf.writestr(f"day1/audio/req-{i}.wav", audio.getvalue())
            lines.append(
                {
                    "audio": f"audio/req-{i}.wav",
                    "timestamp": f"2025-06-01T10:00:{i:02d}+00:00",
                    "model": "deployed",
                    "prediction": ["yes", "no"][i % 2] if i < n_good else "maybe",
                    "confidence": 0.8,
                    "latency_ms": 30.0,
                    "request_id": f"req-{i}",
                }
            )
        zf.writestr("day1/log.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    return buf.getvalue()


def test_a_prediction_log_zipped_with_its_audio_becomes_a_production_batch(app_env, tmp_path) -> None:
    mark_a_live_model(app_env, tmp_path)
    at = import_page()
    at.text_input(key="import.production.batch").set_value("2025-06-01")
    at.file_uploader(key="import.production.files").set_value(
        [("day1.zip", log_zip(n_good=5), "application/zip")]
    )
    at.button(key="import.production.go").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    # Queued for a worker, with its progress on the page.
    assert "Waiting for a worker" in at.get("progress")[0].text

    done = run_next_job(app_env, kinds=["production_import"])
    assert done is not None
    assert (done.kind, done.status) == ("production_import", "succeeded"), done.error
    at.run()
    assert not at.exception, at.exception
    assert any("5 production requests logged in batch '2025-06-01'" in s.value for s in at.success)
    (left_out,) = [d.value for d in at.dataframe if "what" in d.value.columns]
    assert left_out.to_dict("records") == [{"what": "line 6", "reason": left_out["reason"][0]}]
    assert "unknown class 'maybe'" in left_out["reason"][0]
    with app_env.db.read() as s:
        pid = get_project(s, "demo").id
        batches = production_batches(s, pid)
        logged = s.scalars(select(ProductionClip.request_id).order_by(ProductionClip.request_id)).all()
        clips = len(s.scalars(select(Clip.id)).all())
    assert batches[["name", "n"]].to_dict("records") == [{"name": "2025-06-01", "n": 5}]
    assert logged == [f"req-{i}" for i in range(5)]
    assert clips == 12  # production traffic stays out of the project's clips
    # The upload was kept only for the worker.
    assert not list((app_env.settings.data_dir / "uploads").glob("*"))


def test_without_a_live_model_the_page_says_how_to_mark_one(app_env) -> None:
    at = import_page()
    assert not at.exception, at.exception
    (refusal,) = [w.value for w in at.warning if "live model" in w.value]
    assert "'demo' has no live model" in refusal
    assert "Monitoring page" in refusal
    assert "earmark live --project 'demo' --run ID" in refusal
    assert "import.production.go" not in [b.key for b in at.button]
    assert "import.production.files" not in [f.key for f in at.file_uploader]
