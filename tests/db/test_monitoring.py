"""Monitoring on real FSDD audio, on SQLite and PostgreSQL: production logs in (bad lines listed,
re-ingest adds nothing, production clips kept apart), drift checks that stay quiet on a random split
of one dataset and raise an alarm on speakers the model never heard, the command line's exit codes,
and the loop back into labeling and the next dataset version."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy import stats
from sqlalchemy import func, select, update

from analysis.drift import clip_measures
from db.models import (
    Clip,
    ClipTag,
    DatasetItem,
    DatasetVersion,
    DriftCheck,
    ImportBatch,
    Prediction,
    ProductionClip,
    Resolution,
)
from labeling.cli import main
from labeling.data.importer import import_path
from labeling.data.projects import create_project, update_project
from labeling.data.versions import create_version, current_items
from labeling.model.runs import train_run
from labeling.monitor.alarms import acknowledge, monitor_summary
from labeling.monitor.drift import run_drift_check
from labeling.monitor.live import mark_live
from labeling.monitor.loop import admit_labelled, labeling_sample, sample_sent, send_to_labeling
from labeling.monitor.production import import_production, log_predictions
from labeling.monitor.settings import MonitoringError
from labeling.monitor.shadow import mcnemar_exact, shadow_comparison
from labeling.monitor.view import monitoring_fingerprint, monitoring_view, tag_breakdown
from labeling.platform.jobs import run_next_job, submit_job
from tests.monitoring import BATCHES, PROJECT, monitored_project

PATTERN = r"(?P<label>\d)_(?P<speaker>[a-z]+)_(?P<take>\d+)\.wav"
KNOWN = ("jackson", "nicolas", "theo")
NOW = "2025-06-01T09:00:00+00:00"


def _copy(fsdd_dir: Path, names: list[str], dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in names:
        shutil.copy(fsdd_dir / "recordings" / name, dest / name)
    return dest


@pytest.fixture
def deployed(workspace, fsdd_dir, tmp_path):
    """Three speakers' digits, takes 0-11, split at random into a project (train/test) and a
    production batch of the same speakers; a model trained on a version of the project and marked live."""
    pool = [f"{d}_{s}_{t}.wav" for s in KNOWN for d in range(10) for t in range(12)]
    rng = np.random.default_rng(7)
    order = rng.permutation(len(pool))
    project_files = [pool[i] for i in order[:240]]
    batch_files = [pool[i] for i in order[240:]]
    src = _copy(fsdd_dir, project_files, tmp_path / "project")
    with (tmp_path / "meta.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file_name", "split"])
        for i, name in enumerate(project_files):
            w.writerow([name, "test" if i < 120 else "train"])
    import_path(workspace, src, "digits", pattern=PATTERN, metadata=tmp_path / "meta.csv", group_by="none")
    with workspace.db.write() as s:
        create_version(s, "digits", name="v1")
    run = train_run(workspace, "digits", version="v1", name="live", params={"classifier": "logreg"})
    mark_live(workspace, "digits", run.id)
    return workspace, run, _copy(fsdd_dir, batch_files, tmp_path / "batch-same")


def _teen_log(fsdd_dir: Path, tmp_path: Path, n: int = 150) -> Path:
    """A prediction log of a speaker the model never heard (yweweler), all answered "7" with low
    confidence by a live model that no longer copes."""
    names = [f"{d}_yweweler_{t}.wav" for d in range(10) for t in range(n // 10)]
    folder = _copy(fsdd_dir, names, tmp_path / "teen")
    with (folder / "log.jsonl").open("w") as fh:
        for i, name in enumerate(names):
            rec = {
                "audio": name,
                "timestamp": f"2026-11-29T10:{i // 60:02d}:{i % 60:02d}+00:00",
                "model": "live",
                "prediction": "7",
                "confidence": 0.3,
                "latency_ms": 40 + i % 7,
                "request_id": f"teen-{i}",
                "device": "tablet",
            }
            fh.write(json.dumps(rec) + "\n")
    return folder / "log.jsonl"


def fingerprint(ws, project_id: int) -> tuple:  # type: ignore[no-untyped-def]
    with ws.db.read() as s:
        return monitoring_fingerprint(s, project_id)


def test_a_random_split_stays_quiet_and_new_speakers_raise_an_alarm(
    deployed, fsdd_dir, tmp_path, monkeypatch, capsys
):
    ws, run, same = deployed
    clean = import_production(ws, same, "digits", batch="clean")
    assert clean.n_logged == 120
    assert clean.scored_by == "live"
    # The page's "Check for drift" is a background job a worker runs.
    with ws.db.write() as s:
        project_id = s.scalar(select(Clip.project_id).limit(1))
        submit_job(s, "drift", project_id=project_id, owner_id=None, params={"batch": "clean"})
    job = run_next_job(ws, kinds=["drift"])
    assert job.status == "succeeded", job.error
    assert job.result["level"] == "none"
    quiet = run_drift_check(ws, "digits", "clean")
    assert quiet.level == "none", quiet.reasons
    assert not quiet.drift
    seen = [fingerprint(ws, project_id)]  # what the Monitoring page's cache is keyed on

    teen = import_production(ws, _teen_log(fsdd_dir, tmp_path, n=100), "digits", batch="teen")
    assert teen.n_logged == 100
    assert not teen.rejected
    seen.append(fingerprint(ws, project_id))
    loud = run_drift_check(ws, "digits", "teen")
    seen.append(fingerprint(ws, project_id))
    assert loud.drift
    assert loud.level == "alarm"
    drifted = {m["name"] for m in loud.to_dict()["measures"] if m["drift"]}
    assert {"predicted", "confidence"} <= drifted
    assert drifted & {"pitch_hz", "centroid_hz", "snr_db", "rms_dbfs", "speaking_rate"}
    assert loud.reasons

    # Every check is stored; the production clips never became project clips.
    with ws.db.read() as s:
        assert s.scalar(select(func.count()).select_from(DriftCheck)) == 3
        assert s.scalar(select(func.count()).select_from(Clip)) == 240
        assert s.scalar(select(func.count()).select_from(ProductionClip)) == 220

    # The command line: the JSON a script reads, and monitor's exit code while the alarm stands.
    monkeypatch.setenv("EARMARK_DATA_DIR", str(ws.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", ws.settings.database_url)
    capsys.readouterr()
    assert main(["drift", "--project", "digits", "--batch", "clean", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["drift"] is False
    assert out["level"] == "none"
    pitch = next(m for m in out["measures"] if m["name"] == "pitch_hz")
    assert {"test", "statistic", "p_value", "effect", "reference", "batch"} <= set(pitch)
    assert main(["monitor", "--project", "digits"]) == 1
    assert "ALARM" in capsys.readouterr().out
    acknowledge(ws, "digits", "teen", note="known: school pilot")
    seen.append(fingerprint(ws, project_id))
    assert len(set(seen)) == 4  # new traffic, a new check and an answer to the alarm each show at once
    assert main(["monitor", "--project", "digits", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [b["name"] for b in summary["batches"]] == ["clean", "teen"]
    assert summary["alarm"] is False
    assert main(["live", "--project", "digits", "--run", "9999"]) == 1
    assert main(["live", "--project", "digits", "--run", str(run.id)]) == 0
    assert "drift reference: v1" in capsys.readouterr().out


def test_labelled_production_clips_show_an_accuracy_drop_and_join_the_next_version(
    deployed, fsdd_dir, tmp_path
):
    ws, run, _ = deployed
    import_production(ws, _teen_log(fsdd_dir, tmp_path, n=300), "digits", batch="teen")
    sample = labeling_sample(ws, "digits", "teen")
    # 5% of 300 is 15: at least the 30 the accuracy test needs are drawn at random, then the atypical
    # and unsure ones on top.
    assert (sample["reason"] == "random").sum() == 30
    assert len(sample) > 30
    assert sample["priority"].is_monotonic_decreasing
    # A tighter estimate: ask for 40 per batch.
    with ws.db.write() as s:
        update_project(s, "digits", settings={"monitoring": {"sample_minimum": 40}})
    sample = labeling_sample(ws, "digits", "teen")
    assert (sample["reason"] == "random").sum() == 40
    assert send_to_labeling(ws, "digits", "teen", sample) == len(sample)
    sampled_random = sample.loc[sample["reason"] == "random", "original_name"].tolist()
    assert (
        labeling_sample(ws, "digits", "teen")["production_clip_id"].isin(sample["production_clip_id"]).sum()
        == 0
    )
    with ws.db.write() as s:
        q = select(Clip.id, Clip.project_id, ProductionClip.original_name).join(
            ProductionClip, ProductionClip.clip_id == Clip.id
        )
        prod = s.execute(q).all()
        for clip_id, project_id, name in prod:
            s.add(Resolution(clip_id=clip_id, project_id=project_id, label=name[0], method="imported"))
    ids = [c for c, _, _ in prod]
    with ws.db.read() as s:
        # Labelled, but held out of versions until an engineer adds them.
        assert not current_items(s, prod[0][1])["clip_id"].isin(ids).any()
    result = run_drift_check(ws, "digits", "teen")
    assert result.concept is not None
    assert result.concept["drift"]
    assert result.level == "alarm"
    assert admit_labelled(ws, "digits") == len(prod)
    with ws.db.read() as s:
        assert current_items(s, prod[0][1])["clip_id"].isin(ids).sum() == len(prod)

    shadow = shadow_comparison(ws, "digits", "teen", run.id)
    assert shadow.n == 300
    # Accuracy is compared on the random sample only; the logged answers were all "7".
    assert shadow.n_labelled == 40
    assert shadow.live_accuracy == pytest.approx(np.mean([n[0] == "7" for n in sampled_random]))
    assert shadow.candidate_accuracy > shadow.live_accuracy
    assert 0 <= shadow.disagreement <= 1
    assert shadow.recommendation


def _good(name: str, i: int) -> dict:
    return {
        "audio": name,
        "timestamp": NOW,
        "model": "v3",
        "prediction": name[0],
        "confidence": 0.9,
        "latency_ms": 35.0,
        "request_id": f"r{i}",
        "user_action": "retry" if i == 0 else None,
        "app_version": "3.2",
    }


def test_bad_lines_are_listed_and_the_rest_lands_once(workspace, fsdd_dir, tmp_path):
    with workspace.db.write() as s:
        create_project(s, name="digits", classes=[str(d) for d in range(10)])
    names = ["0_theo_0.wav", "1_theo_0.wav", "2_theo_0.wav"]
    folder = _copy(fsdd_dir, names, tmp_path / "log")
    (tmp_path / "outside.wav").write_bytes((folder / names[0]).read_bytes())
    lines = [json.dumps(_good(n, i)) for i, n in enumerate(names)]
    bad = [
        "{not json",
        json.dumps({**_good("9_theo_0.wav", 10)}),
        json.dumps({**_good(names[0], 11), "prediction": "eleven"}),
        json.dumps({**_good(names[0], 12), "latency_ms": -3}),
        json.dumps({**_good(names[0], 13), "timestamp": "2025-06-01T09:00:00"}),
        json.dumps({**_good(names[0], 14), "timestamp": "2999-01-01T00:00:00+00:00"}),
        json.dumps({**_good("../outside.wav", 15)}),
    ]
    log = folder / "log.jsonl"
    log.write_text("\n".join(lines[:1] + bad + lines[1:]) + "\n")
    report = import_production(workspace, log, "digits", batch="day1")
    reasons = {p.ref: p.reason for p in report.rejected}
    assert report.n_logged == 3
    assert set(reasons) == {f"line {n}" for n in range(2, 9)}
    assert "not valid JSON" in reasons["line 2"]
    assert "not found" in reasons["line 3"]
    assert "unknown class 'eleven'" in reasons["line 4"]
    assert "negative latency" in reasons["line 5"]
    assert "no time zone" in reasons["line 6"]
    assert "in the future" in reasons["line 7"]
    assert "outside" in reasons["line 8"]

    again = import_production(workspace, log, "digits", batch="day1")
    assert again.n_logged == 0
    assert again.n_duplicates == 3
    with workspace.db.read() as s:
        rows = s.execute(
            select(ProductionClip.user_action, ProductionClip.meta).order_by(ProductionClip.id)
        ).all()
        assert s.scalar(select(func.count()).select_from(Clip)) == 0
    assert len(rows) == 3
    assert rows[0][0] == "retry"
    assert rows[0][1] == {"app_version": "3.2"}

    # The Python API: the same checks, the same idempotency (no request id: audio hash + timestamp).
    records = [{k: v for k, v in _good(n, i).items() if k != "request_id"} for i, n in enumerate(names)]
    first = log_predictions(workspace, "digits", records, batch="api", audio_root=folder)
    second = log_predictions(
        workspace, "digits", [*records, {"audio": "x.wav"}], batch="api", audio_root=folder
    )
    assert first.n_logged == 3
    assert second.n_logged == 0
    assert second.n_duplicates == 3
    assert second.rejected[0].ref == "record 4"


def test_a_folder_without_a_live_model_is_refused_with_what_to_do(workspace, fsdd_dir, tmp_path):
    from labeling.monitor.production import ProductionError

    with workspace.db.write() as s:
        create_project(s, name="digits", classes=[str(d) for d in range(10)])
    folder = _copy(fsdd_dir, ["0_theo_0.wav"], tmp_path / "f")
    with pytest.raises(ProductionError, match="no live model"):
        import_production(workspace, folder, "digits", batch="b")


@pytest.mark.parametrize(("b", "c"), [(0, 0), (3, 9), (12, 4), (20, 21), (0, 7)])
def test_mcnemar_exact_agrees_with_scipy_binomial(b, c):
    expected = 1.0 if b + c == 0 else stats.binomtest(min(b, c), b + c, 0.5).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(expected)


def test_monitor_with_no_batches_says_so(workspace):
    with workspace.db.write() as s:
        create_project(s, name="empty", classes=["a"])
    summary = monitor_summary(workspace, "empty")
    assert summary.batches.empty
    assert not summary.alarm


def test_a_transcription_log_counts_empty_transcripts_as_empty_outputs(workspace, fsdd_dir, tmp_path):
    from labeling.monitor.measures import batch_frame

    with workspace.db.write() as s:
        create_project(s, name="asr", task_kind="transcription")
    names = ["0_theo_0.wav", "1_theo_0.wav", "2_theo_0.wav"]
    folder = _copy(fsdd_dir, names, tmp_path / "asr")
    records = [
        {"audio": n, "timestamp": NOW, "model": "asr-1", "transcript": t, "request_id": n}
        for n, t in zip(names, ["zero", "", "two"], strict=True)
    ]
    report = log_predictions(workspace, "asr", records, batch="day1", audio_root=folder)
    assert report.n_logged == 3
    with workspace.db.read() as s:
        frame = batch_frame(s, "asr", "day1")
    assert frame["empty"].tolist() == [0.0, 1.0, 0.0]
    assert "predicted" not in frame


def _hand_label(ws, batch: str) -> dict[str, list]:  # type: ignore[no-untyped-def]
    """Final labels by hand for every clip of the batch sent to labeling: of the 20 random-sample
    clips the first 9 get the live model's own answer (right), the other 11 another class (wrong);
    the clips sent for being unsure or atypical all get the model's answer (right), so counting them
    would lift the accuracy. Five random-sample clips (2 right, 3 wrong) and three others are tagged."""
    with ws.db.write() as s:
        rows = s.execute(
            select(
                ProductionClip.clip_id,
                ProductionClip.prediction,
                ProductionClip.sample_reason,
                Clip.project_id,
            )
            .join(Clip, Clip.id == ProductionClip.clip_id)
            .join(ImportBatch, ImportBatch.id == ProductionClip.batch_id)
            .where(ImportBatch.name == batch)
            .order_by(ProductionClip.id)
        ).all()
        random_rows = [r for r in rows if r.sample_reason == "random"]
        others = [r for r in rows if r.sample_reason != "random"]
        assert len(random_rows) == 20
        assert len(others) >= 10
        for i, r in enumerate(random_rows):
            label = r.prediction if i < 9 else str((int(r.prediction) + 1) % 10)
            s.add(Resolution(clip_id=r.clip_id, project_id=r.project_id, label=label, method="imported"))
        for r in others:
            s.add(
                Resolution(clip_id=r.clip_id, project_id=r.project_id, label=r.prediction, method="imported")
            )
        for r in [*random_rows[7:12], *others[:3]]:
            s.add(ClipTag(clip_id=r.clip_id, tag="noise:car", source="review"))
    return {"random": random_rows, "others": others}


def _reference_accuracy(ws, run_id: int) -> float:  # type: ignore[no-untyped-def]
    """The live model's accuracy on its reference (v1's test clips), read straight from its stored
    predictions and the version's labels."""
    with ws.db.read() as s:
        pairs = s.execute(
            select(Prediction.label, DatasetItem.label)
            .join(DatasetItem, DatasetItem.clip_id == Prediction.clip_id)
            .join(DatasetVersion, DatasetVersion.id == DatasetItem.version_id)
            .where(Prediction.run_id == run_id, DatasetVersion.name == "v1", DatasetItem.split == "test")
        ).all()
    assert len(pairs) == 120
    return float(np.mean([p == y for p, y in pairs]))


def test_every_view_counts_the_same_labelled_random_sample(deployed, monkeypatch, capsys):
    ws, run, same = deployed
    import_production(ws, same, "digits", batch="pilot")  # scored by the live model
    with ws.db.write() as s:
        update_project(s, "digits", settings={"monitoring": {"min_labels": 20}})
    run_drift_check(ws, "digits", "pilot")  # checked before anything was labelled
    send_to_labeling(ws, "digits", "pilot", labeling_sample(ws, "digits", "pilot"))
    _hand_label(ws, "pilot")
    # The hand count: 9 right of 20 labelled random-sample clips; on the tag, 2 of 5.
    ref = _reference_accuracy(ws, run.id)
    points = 100 * (9 / 20 - ref)
    p = stats.fisher_exact([[round(ref * 120), 120 - round(ref * 120)], [9, 11]])[1]
    assert p < 0.001  # a verdict the alarm must give
    monkeypatch.setenv("EARMARK_DATA_DIR", str(ws.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", ws.settings.database_url)

    def every_view_agrees(when: str) -> None:
        tags = tag_breakdown(ws, "digits", "pilot").set_index("slice")
        assert tags.loc["all", "n_labelled"] == 20, when
        assert tags.loc["all", "accuracy"] == pytest.approx(0.45), when
        assert tags.loc["noise:car", "n_labelled"] == 5, when
        assert tags.loc["noise:car", "accuracy"] == pytest.approx(0.4), when

        tile = monitoring_view(ws, "digits").measures.query("measure == 'accuracy' and batch == 'pilot'")
        assert tile["value"].tolist() == [pytest.approx(45.0)], when
        assert tile["n"].tolist() == [20], when
        assert tile["drift"].tolist() == [True], when

        summary = monitor_summary(ws, "digits")
        assert summary.alarm, when
        alarm = "; ".join(summary.reasons)
        assert "9 of 20 labelled random-sample clips" in alarm, when
        assert f"accuracy −{abs(points):.1f} points" in alarm, when

        capsys.readouterr()
        assert main(["monitor", "--project", "digits", "--json"]) == 1
        pilot = json.loads(capsys.readouterr().out)["batches"][-1]
        assert (pilot["labelled"], pilot["correct"]) == (20, 9), when
        assert any("9 of 20" in r for r in pilot["reasons"].split("; ")), when

        shadow = shadow_comparison(ws, "digits", "pilot", run.id)
        assert shadow.n_labelled == 20, when
        assert shadow.live_accuracy == pytest.approx(0.45), when
        car = shadow.per_tag.set_index("tag").loc["noise:car"]
        assert car["n_labelled"] == 5, when
        assert car["live_accuracy"] == pytest.approx(0.4), when

    every_view_agrees("labelled after the last check")
    capsys.readouterr()
    assert main(["drift", "--project", "digits", "--batch", "pilot", "--json"]) == 0
    check = json.loads(capsys.readouterr().out)
    assert check["level"] == "alarm"
    assert (check["concept"]["batch"]["n"], check["concept"]["batch"]["correct"]) == (20, 9)
    assert check["concept"]["p_value"] == pytest.approx(p)
    assert any("9 of 20 labelled random-sample clips" in r for r in check["reasons"])
    every_view_agrees("after a new check")


def test_a_sampled_batch_is_not_sampled_again_unless_more_is_asked_for(workspace, tmp_path):
    monitored_project(workspace, tmp_path)
    # 60 requests: 5% is 3, so the 30 the accuracy test needs at random, then 10 unsure and 10 atypical
    batch = BATCHES[-1]
    before = sample_sent(workspace, PROJECT, batch)
    assert before.n == 0
    first = labeling_sample(workspace, PROJECT, batch)
    assert (first["reason"] == "random").sum() == 30
    assert send_to_labeling(workspace, PROJECT, batch, first, previewed=before) == len(first)

    sent = sample_sent(workspace, PROJECT, batch)
    assert sent.by_reason == first["reason"].value_counts().to_dict()
    assert (sent.random, sent.random_target) == (30, 30)
    assert [e["n"] for e in sent.sends] == [len(first)]
    said = sent.describe()
    assert f"{len(first)} clips of this batch already sent to labeling" in said
    assert "30 random" in said
    assert f"{sent.sends[0]['at']:%Y-%m-%d %H:%M} UTC" in said
    # The sample is complete: a new preview offers nothing, rather than 30 more random clips.
    assert labeling_sample(workspace, PROJECT, batch).empty

    # More is an explicit choice; a preview made before someone else's send is refused, unchanged.
    more = labeling_sample(workspace, PROJECT, batch, more_random=10)
    assert more["reason"].tolist() == ["random"] * 10
    with pytest.raises(MonitoringError, match="since this preview"):
        send_to_labeling(workspace, PROJECT, batch, more, previewed=before)
    assert sample_sent(workspace, PROJECT, batch).by_reason == sent.by_reason
    with workspace.db.read() as s:
        clips_before = dict(
            s.execute(
                select(ProductionClip.id, ProductionClip.clip_id).where(ProductionClip.clip_id.is_not(None))
            ).all()
        )
    assert send_to_labeling(workspace, PROJECT, batch, more, previewed=sent) == 10
    after = sample_sent(workspace, PROJECT, batch)
    assert after.random == 40
    # Clips sent before for being unsure or atypical may be drawn: they join the random sample
    # (so it stays uniform over the batch) and keep their clip; nothing is queued twice.
    moved = int(more["sent_before"].notna().sum())
    assert after.n == sent.n + 10 - moved
    assert len(after.sends) == 2
    with workspace.db.read() as s:
        clips_after = dict(
            s.execute(
                select(ProductionClip.id, ProductionClip.clip_id).where(ProductionClip.clip_id.is_not(None))
            ).all()
        )
    assert {k: clips_after[k] for k in clips_before} == clips_before
    assert len(set(clips_after.values())) == len(clips_after)


def test_a_batch_measured_before_the_measures_changed_is_measured_again_before_its_check(workspace, tmp_path):
    monitored_project(workspace, tmp_path)
    with workspace.db.write() as s:
        rows = s.execute(select(ProductionClip.id, ProductionClip.measures, ProductionClip.storage_key)).all()
        fresh = {pid: dict(m) for pid, m, _ in rows}
        keys = {pid: key for pid, _, key in rows}
        for pid, m in fresh.items():
            # As an older Earmark stored them: no share of digital silence, and its SNR pinned at the top.
            old = {k: v for k, v in m.items() if k != "digital_silence"} | {"wada_snr_db": 100.0}
            s.execute(update(ProductionClip).where(ProductionClip.id == pid).values(measures=old))
    result = run_drift_check(workspace, PROJECT, BATCHES[0])
    with workspace.db.read() as s:
        now = dict(s.execute(select(ProductionClip.id, ProductionClip.measures)).all())
    day1 = [pid for pid in now if "digital_silence" in now[pid]]
    assert len(day1) == 60  # the checked batch, and only it, was measured again
    for pid in day1:
        y, sr = sf.read(str(workspace.store.path(keys[pid])), dtype="float32", always_2d=True)
        assert now[pid]["wada_snr_db"] == pytest.approx(clip_measures(y.mean(axis=1), sr)["wada_snr_db"])
    assert not any("SNR" in r for r in result.reasons)  # like the reference, so nothing moved
