"""Production batches as background jobs (the Import page's path): uploads are kept where any worker
reads them, logged with the command line's rules, and removed afterwards; refusals keep nothing."""

from __future__ import annotations

import csv
import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import select

from db.models import ProductionClip
from labeling.data.importer import import_path
from labeling.data.projects import get_project
from labeling.data.versions import create_version
from labeling.model.runs import import_external_predictions, train_run
from labeling.monitor.live import mark_live
from labeling.monitor.production import ProductionError, production_batches
from labeling.monitor.production_upload import production_job_params
from labeling.platform.jobs import run_next_job, submit_job
from labeling.platform.storage import s3_filesystem
from tests.audio import speechlike, write_wav
from tests.conftest import make_workspace

PATTERN = r"(?P<label>\d)_(?P<speaker>[a-z]+)_(?P<index>\d+)\.wav"


def wav(seed: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, speechlike(seed), 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def log_zip(n: int, *, logs: int = 1) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k in range(logs):
            lines = []
            for i in range(n):
                zf.writestr(f"audio/{k}-{i}.wav", wav(100 * k + i))
                lines.append(
                    {
                        "audio": f"audio/{k}-{i}.wav",
                        "timestamp": f"2025-06-01T10:00:{i:02d}+00:00",
                        "model": "deployed",
                        "prediction": ["yes", "no"][i % 2],
                        "request_id": f"{k}-{i}",
                    }
                )
            zf.writestr(f"log{k}.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    return buf.getvalue()


def small_project(ws, tmp_path: Path) -> int:  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    for i in range(6):
        write_wav(src / f"{['yes', 'no'][i % 2]}_{i}.wav", speechlike(i))
    import_path(ws, src, "demo", pattern=r"(?P<label>[a-z]+)_\d+\.wav")
    pred = tmp_path / "pred.csv"
    rows = [f"{p.name},{p.name.split('_')[0]},0.9\n" for p in src.iterdir()]
    pred.write_text("file_name,label,confidence\n" + "".join(rows))
    run = import_external_predictions(ws, "demo", pred, name="deployed")
    mark_live(ws, "demo", run.id)
    with ws.db.read() as s:
        return get_project(s, "demo").id


def queue(ws, project_id: int, params: dict) -> None:  # type: ignore[no-untyped-def]
    with ws.db.write() as s:
        submit_job(s, "production_import", project_id=project_id, owner_id=None, params=params)


def test_an_upload_kept_in_the_object_store_reaches_the_worker_and_is_removed(tmp_path, s3_audio_url):
    ws = make_workspace(tmp_path / "data", f"sqlite:///{tmp_path / 'e.db'}", audio_url=s3_audio_url)
    try:
        pid = small_project(ws, tmp_path)
        params = production_job_params(ws, pid, batch="day 1", files=[("day1.zip", log_zip(4))])
        assert params["upload"].startswith(s3_audio_url + "/uploads/")
        assert s3_filesystem().exists(params["upload"].removeprefix("s3://"))
        queue(ws, pid, params)
        done = run_next_job(ws, kinds=["production_import"])
        assert done.status == "succeeded", done.error
        assert done.result["n_logged"] == 4
        with ws.db.read() as s:
            batches = production_batches(s, pid)
        assert batches[["name", "n"]].to_dict("records") == [{"name": "day 1", "n": 4}]
        assert not s3_filesystem().exists(params["upload"].removeprefix("s3://"))
    finally:
        ws.close()


def test_uploads_that_make_no_batch_are_refused_and_nothing_is_kept(sqlite_workspace, tmp_path):
    ws = sqlite_workspace
    pid = small_project(ws, tmp_path)
    uploads = ws.settings.data_dir / "uploads"
    refused = {
        "log.jsonl names its audio by paths relative to itself": dict(files=[("log.jsonl", b"{}\n")]),
        "upload one zip on its own": dict(files=[("a.zip", log_zip(1)), ("b.wav", wav(1))]),
        "not audio: notes.txt": dict(files=[("a.wav", wav(1)), ("notes.txt", b"hello")]),
        "x.zip is not a zip file": dict(files=[("x.zip", b"PK but not really")]),
        "one of the two": dict(files=[("a.wav", wav(1))], path=str(tmp_path)),
        "upload a zip or audio files": dict(),
    }
    for message, given in refused.items():
        with pytest.raises(ProductionError, match=message):
            production_job_params(ws, pid, batch="day 1", **given)
    with pytest.raises(ProductionError, match="name the production batch"):
        production_job_params(ws, pid, batch="  ", files=[("a.wav", wav(1))])
    assert not uploads.exists() or not list(uploads.iterdir())

    # A zip on the server holding two logs: the worker says which, and logs nothing.
    archive = tmp_path / "two.zip"
    archive.write_bytes(log_zip(2, logs=2))
    queue(ws, pid, production_job_params(ws, pid, batch="day 1", path=str(archive)))
    done = run_next_job(ws, kinds=["production_import"])
    assert done.status == "failed"
    assert "holds 2 prediction logs (log0.jsonl, log1.jsonl)" in done.error
    with ws.db.read() as s:
        assert s.scalars(select(ProductionClip.id)).all() == []


@pytest.mark.fsdd
def test_uploaded_audio_without_a_log_is_scored_by_the_live_model(workspace, fsdd_dir, tmp_path):
    speakers = ("jackson", "nicolas", "theo")
    names = [f"{d}_{s}_{t}.wav" for s in speakers for d in range(10) for t in range(4)]
    src = tmp_path / "project"
    src.mkdir()
    with (tmp_path / "meta.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file_name", "split"])
        for i, name in enumerate(names):
            shutil.copy(fsdd_dir / "recordings" / name, src / name)
            w.writerow([name, "test" if i % 3 == 0 else "train"])
    import_path(workspace, src, "digits", pattern=PATTERN, metadata=tmp_path / "meta.csv", group_by="none")
    with workspace.db.write() as s:
        create_version(s, "digits", name="v1")
        pid = get_project(s, "digits").id
    run = train_run(workspace, "digits", version="v1", name="live", params={"classifier": "logreg"})
    mark_live(workspace, "digits", run.id)
    heard = [f"{d}_{s}_10.wav" for s in speakers for d in range(10)]
    files = [(name, (fsdd_dir / "recordings" / name).read_bytes()) for name in heard]

    queue(workspace, pid, production_job_params(workspace, pid, batch="day 2", files=files))
    done = run_next_job(workspace, kinds=["production_import"])
    assert done.status == "succeeded", done.error
    assert (done.result["n_logged"], done.result["scored_by"]) == (30, "live")
    with workspace.db.read() as s:
        logged = s.execute(select(ProductionClip.original_name, ProductionClip.prediction)).all()
    assert sorted(name for name, _ in logged) == sorted(heard)
    # The model heard these speakers in training: most of their digits come back right.
    right = np.mean([pred == name[0] for name, pred in logged])
    assert right >= 0.7
