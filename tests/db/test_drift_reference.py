"""The drift reference kept between checks, and concept drift by word error rate for transcription
projects, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from db.models import ImportBatch, ProductionClip, StoredReport
from labeling.cli import main
from labeling.data.projects import update_project
from labeling.monitor.alarms import monitor_summary
from labeling.monitor.drift import run_drift_check
from labeling.monitor.measures import drift_measure_names
from labeling.monitor.production import log_predictions
from labeling.monitor.reference import KIND, cached_reference_summary
from tests.audio import speechlike, write_wav
from tests.monitoring import (
    ASR,
    BATCHES,
    PROJECT,
    log_transcribed_batch,
    monitored_project,
    transcribed_project,
)


def test_a_second_check_reads_the_stored_reference_and_a_new_setting_summarises_it_again(workspace, tmp_path):
    monitored_project(workspace, tmp_path)  # checks both batches: the summary is stored
    first = cached_reference_summary(workspace, PROJECT)
    assert first.cached
    with workspace.db.read() as s:
        assert s.scalar(select(StoredReport.id).where(StoredReport.kind == KIND)) is not None
    # The stored summary gives the very report the reference's clips give.
    with workspace.db.write() as s:
        s.execute(StoredReport.__table__.delete().where(StoredReport.kind == KIND))
    fresh = run_drift_check(workspace, PROJECT, BATCHES[1])
    again = run_drift_check(workspace, PROJECT, BATCHES[1])
    assert again.report == fresh.report
    assert again.level == "alarm"  # the quiet batch, as before
    assert any("Loudness" in r for r in again.reasons)

    with workspace.db.write() as s:
        update_project(s, PROJECT, settings={"monitoring": {"low_confidence": 0.95}})
    changed = cached_reference_summary(workspace, PROJECT)
    assert not changed.cached  # another threshold is another reference
    # Every reference clip was answered with confidence 0.9: all under the new threshold.
    assert changed.summary.shares["low_confidence"] == (120, 120)
    assert first.summary.shares["low_confidence"] == (0, 120)


@pytest.fixture
def transcribed(workspace, tmp_path):
    return workspace, transcribed_project(workspace, tmp_path)


def test_transcripts_that_get_much_worse_show_concept_drift_by_wer_and_a_null_batch_does_not(
    transcribed, tmp_path, capsys, monkeypatch
):
    ws, _ = transcribed
    monkeypatch.setenv("EARMARK_DATA_DIR", str(ws.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", ws.settings.database_url)
    null_wer = log_transcribed_batch(ws, tmp_path, "same", seed=1, slip=0.05)
    quiet = run_drift_check(ws, ASR, "same")
    # The audio is a fresh draw of the reference's generator, so its measures may wobble by chance;
    # the model's outputs and its errors are what this batch holds equal.
    assert quiet.level != "alarm", quiet.reasons
    assert not any(m["drift"] for m in quiet.report["measures"] if m["family"] == "output")
    assert not any("WER" in r for r in quiet.reasons)
    wer = quiet.report["wer"]
    assert not wer["drift"]
    assert wer["batch"]["wer"] == pytest.approx(null_wer)
    assert "no change" in wer["reason"]

    bad_wer = log_transcribed_batch(ws, tmp_path, "worse", seed=2, slip=0.3, drop=0.5)
    assert main(["drift", "--project", ASR, "--batch", "worse", "--json"]) == 0
    check = json.loads(capsys.readouterr().out)
    wer = check["wer"]
    assert wer["drift"]
    assert wer["batch"]["wer"] == pytest.approx(bad_wer)
    low, high = wer["change"]["ci_low"], wer["change"]["ci_high"]
    assert 0 < low <= wer["change"]["difference"] <= high
    assert check["level"] == "alarm"
    assert any(r.startswith("WER +") for r in check["reasons"])
    # Dropped words: the transcripts got shorter, an output drift like the classes' mix.
    length = next(m for m in check["measures"] if m["name"] == "transcript_words")
    assert length["drift"], length
    assert length["effect"] < 0

    summary = monitor_summary(ws, ASR)
    assert summary.alarm
    rows = summary.batches.set_index("name")
    assert rows.loc["worse", "level"] == "alarm"
    assert rows.loc["worse", "wer"]["drift"]
    assert rows.loc["same", "level"] != "alarm"
    assert "no change" in rows.loc["same", "wer_note"]


def test_measures_taken_in_worker_processes_equal_those_taken_on_threads(workspace, tmp_path, monkeypatch):
    from labeling.monitor import production

    monitored_project(workspace, tmp_path)
    folder = tmp_path / "twice"
    names = [f"clip_{i}.wav" for i in range(12)]
    for i, name in enumerate(names):
        write_wav(folder / name, speechlike(500 + i))
    stored = {}
    for batch, threshold in (("threads", 10**9), ("processes", 1)):
        monkeypatch.setattr(production, "PROCESS_MIN_FILES", threshold)
        records = [
            {"audio": n, "timestamp": "2026-02-01T10:00:00+00:00", "model": "deployed", "prediction": "yes",
             "request_id": f"{batch}-{n}"}
            for n in names
        ]  # fmt: skip
        assert log_predictions(workspace, PROJECT, records, batch=batch, audio_root=folder).n_logged == 12
        with workspace.db.read() as s:
            rows = s.execute(
                select(ProductionClip.original_name, ProductionClip.measures)
                .join(ImportBatch, ImportBatch.id == ProductionClip.batch_id)
                .where(ImportBatch.name == batch)
            ).all()
        stored[batch] = {Path(name).name: m for name, m in rows}
    assert stored["processes"] == stored["threads"]
    # Every clip carries the drift measures, and they differ from clip to clip (each was measured).
    assert all(drift_measure_names() <= set(m) for m in stored["processes"].values())
    assert len({m["centroid_hz"] for m in stored["processes"].values()}) > 1
