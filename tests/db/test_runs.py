"""Model runs on real FSDD recordings: stored predictions, metrics sklearn agrees with, fingerprints,
dataset versions and predictions imported from another model.

The project holds three speakers' digits 0-9, takes 0-11, split the official FSDD way (takes 0-4 are
the test set). Expected metrics come from sklearn (and jiwer for WER) over the stored predictions.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import jiwer
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score
from sqlalchemy import func, select, update

from db.models import AuditEvent, Clip, DatasetItem, DatasetVersion, ModelRun, Prediction, Resolution
from labeling.data.features import FEATURES_STAGE, project_features
from labeling.data.importer import import_path
from labeling.model.runs import (
    RunError,
    import_external_predictions,
    list_runs,
    run_predictions,
    train_run,
)

SPEAKERS = ("jackson", "theo", "nicolas")
TAKES = 12
PATTERN = r"(?P<label>\d)_(?P<speaker>[a-z]+)_(?P<take>\d+)\.wav"


def make_fsdd_project(ws, fsdd_dir: Path, folder: Path, *, name: str = "digits", takes: int = TAKES) -> int:
    """Import FSDD clips into a project with the official split; returns the project id."""
    src = folder / "src"
    src.mkdir(parents=True)
    with (folder / "meta.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file_name", "split"])
        for speaker in SPEAKERS:
            for digit in range(10):
                for take in range(takes):
                    wav = f"{digit}_{speaker}_{take}.wav"
                    shutil.copy(fsdd_dir / "recordings" / wav, src / wav)
                    w.writerow([wav, "test" if take < 5 else "train"])
    import_path(ws, src, name, pattern=PATTERN, metadata=folder / "meta.csv")
    with ws.db.read() as s:
        return int(s.scalar(select(Clip.project_id).limit(1)))


@pytest.fixture
def digits(workspace, fsdd_dir, tmp_path):
    return workspace, make_fsdd_project(workspace, fsdd_dir, tmp_path)


@pytest.mark.fsdd
def test_train_run_stores_every_prediction_and_metrics_sklearn_agrees_with(digits) -> None:
    ws, project_id = digits
    stages = []
    summary = train_run(ws, "digits", progress=lambda stage, done, total: stages.append((stage, done, total)))
    n_clips = len(SPEAKERS) * 10 * TAKES
    assert summary.kind == "builtin"
    assert summary.n_predictions == n_clips
    assert summary.classes == [str(d) for d in range(10)]
    # Progress in words: the features of every clip, fitting, each fold, then storing.
    assert (FEATURES_STAGE, n_clips, n_clips) in stages
    assert any(
        stage.startswith("Fitting the model on") and done == total == 1 for stage, done, total in stages
    )
    folds = [(done, total) for stage, done, total in stages if stage.startswith("Cross-validating")]
    assert folds[-1][0] == folds[-1][1] >= 2
    assert stages[-1] == (f"Storing {n_clips:,} predictions", 0, 1)

    with ws.db.read() as s:
        run = s.get(ModelRun, summary.id)
        assert run.code_fingerprint == summary.code_fingerprint
        assert run.params["classifier"] == "svc"
        stored = s.execute(select(Prediction).where(Prediction.run_id == summary.id)).scalars().all()
        assert len(stored) == n_clips
        for p in stored:
            assert len(p.probabilities) == 10
            assert sum(p.probabilities) == pytest.approx(1, abs=1e-4)
            assert p.label == summary.classes[int(np.argmax(p.probabilities))]
            assert p.confidence == pytest.approx(max(p.probabilities), abs=1e-5)
            assert p.out_of_fold == (p.split == "train")
        audit = s.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.entity == "model_run"))
        assert audit == 1
        preds = run_predictions(s, summary.id)
        runs = list_runs(s, project_id)

    assert len(preds) == n_clips
    assert preds["y_true"].notna().all()
    assert preds["speaker"].isin(SPEAKERS).all()
    assert "proba_9" in preds.columns
    for split in ("overall", "train", "test"):
        part = preds if split == "overall" else preds[preds["split"] == split]
        stored_metrics = summary.metrics[split]
        assert stored_metrics["n"] == len(part)
        assert stored_metrics["accuracy"] == pytest.approx(accuracy_score(part["y_true"], part["y_pred"]))
        assert stored_metrics["macro_f1"] == pytest.approx(
            f1_score(part["y_true"], part["y_pred"], average="macro", zero_division=0)
        )
    assert summary.metrics["test"]["accuracy"] > 0.8  # real digits, three speakers: the model works
    speakers = {r["tag"]: r for r in summary.metrics["slices"]["rows"]}
    for speaker in SPEAKERS:
        part = preds[(preds["split"] == "test") & (preds["speaker"] == speaker)]
        assert speakers[f"speaker={speaker}"]["accuracy"] == pytest.approx(
            (part["y_true"] == part["y_pred"]).mean()
        )
    assert runs["run_id"].tolist() == [summary.id]
    assert runs["accuracy"].iloc[0] == pytest.approx(summary.metrics["test"]["accuracy"])


@pytest.mark.fsdd
def test_fingerprint_is_stable_for_the_same_code_and_params_and_moves_with_params(
    sqlite_workspace, fsdd_dir, tmp_path
) -> None:
    ws = sqlite_workspace
    make_fsdd_project(ws, fsdd_dir, tmp_path, takes=10)
    first = train_run(ws, "digits")
    second = train_run(ws, "digits", params={"C": 10.0})  # the default, spelled out
    other = train_run(ws, "digits", params={"C": 3.0})
    assert first.code_fingerprint == second.code_fingerprint
    assert other.code_fingerprint != first.code_fingerprint
    assert other.params["C"] == 3.0
    with pytest.raises(RunError, match="cannot train"):
        train_run(ws, "digits", params={"kernel_size": 3})
    with ws.db.read() as s:
        assert s.scalar(select(func.count(ModelRun.id))) == 3


@pytest.mark.fsdd
def test_train_on_a_dataset_version_uses_its_labels_and_splits(sqlite_workspace, fsdd_dir, tmp_path) -> None:
    ws = sqlite_workspace
    project_id = make_fsdd_project(ws, fsdd_dir, tmp_path, takes=10)
    with ws.db.write() as s:
        rows = s.execute(select(Clip.id, Clip.split, Resolution.label).join(Resolution)).all()
        version = DatasetVersion(project_id=project_id, name="v1", content_hash="0" * 64, n_clips=0)
        s.add(version)
        s.flush()
        # The version leaves out the nicolas recordings entirely.
        kept = [r for r in rows if "nicolas" not in s.get(Clip, r.id).original_name]
        s.add_all(
            DatasetItem(version_id=version.id, clip_id=r.id, label=r.label, split=r.split) for r in kept
        )
    summary = train_run(ws, project_id, version="v1")
    assert summary.dataset_version_id is not None
    assert summary.n_predictions == len(kept) == 2 * 10 * 10
    with pytest.raises(RunError, match="no dataset version 'v9' in this project; its versions are v1"):
        train_run(ws, project_id, version="v9")


@pytest.mark.fsdd
def test_features_are_cached_by_content(sqlite_workspace, fsdd_dir, tmp_path) -> None:
    ws = sqlite_workspace
    project_id = make_fsdd_project(ws, fsdd_dir, tmp_path, takes=2)
    first = project_features(ws, project_id)
    calls = []
    again = project_features(
        ws, project_id, clip_ids=first.index[:5].tolist(), progress=lambda d, t: calls.append(d)
    )
    assert again.equals(first.iloc[:5])
    assert calls == [5]
    assert first.index.name == "clip_id"
    assert first["duration_s"].between(0.1, 3).all()


def test_external_predictions_from_csv_and_jsonl(workspace, tmp_path) -> None:
    from tests.audio import speechlike, write_wav

    src = tmp_path / "src"
    for i in range(8):
        write_wav(src / f"{['yes', 'no'][i % 2]}_spk{i % 2}_{i}.wav", speechlike(i))
    import_path(workspace, src, "ext", pattern=r"(?P<label>[a-z]+)_(?P<speaker>spk\d)_\d+\.wav")
    with workspace.db.read() as s:
        clips = s.execute(select(Clip.id, Clip.original_name, Clip.sha256).order_by(Clip.id)).all()
    truth = {c.original_name: c.original_name.split("_")[0] for c in clips}
    guesses = {name: ("yes" if i < 5 else "no") for i, name in enumerate(sorted(truth))}
    pred_csv = tmp_path / "pred.csv"
    with pred_csv.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file_name", "prediction", "confidence"])
        for name, guess in guesses.items():
            w.writerow([name, guess, "0.75"])
        w.writerow(["nobody.wav", "yes", "0.5"])
    summary = import_external_predictions(workspace, "ext", pred_csv, name="their model")
    assert summary.kind == "external"
    assert summary.n_predictions == 8
    assert any("1 rows name no clip" in p for p in summary.problems)
    names = sorted(truth)
    expected = accuracy_score([truth[n] for n in names], [guesses[n] for n in names])
    assert summary.metrics["overall"]["accuracy"] == pytest.approx(expected)
    with workspace.db.read() as s:
        preds = run_predictions(s, summary.id)
    assert preds["confidence"].eq(0.75).all()
    assert (preds["correct"] == (preds["y_true"] == preds["y_pred"])).all()

    jsonl = tmp_path / "pred.jsonl"
    jsonl.write_text("".join(json.dumps({"sha256": c.sha256, "label": "yes"}) + "\n" for c in clips))
    second = import_external_predictions(workspace, "ext", jsonl, name="always yes")
    assert second.metrics["overall"]["accuracy"] == pytest.approx(0.5)

    bad = tmp_path / "bad.csv"
    bad.write_text("name,label\nx.wav,yes\n")
    with pytest.raises(RunError, match="need a clip column"):
        import_external_predictions(workspace, "ext", bad, name="bad")
    bad.write_text("file_name,score\nx.wav,1\n")
    with pytest.raises(RunError, match="predicted label column"):
        import_external_predictions(workspace, "ext", bad, name="bad")
    bad.write_text(f"file_name,label,confidence\n{names[0]},yes,1.5\n")
    with pytest.raises(RunError, match=r"confidence must lie in \[0, 1\]"):
        import_external_predictions(workspace, "ext", bad, name="bad")
    with workspace.db.read() as s:
        assert s.scalar(select(func.count(ModelRun.id))) == 2  # refusals wrote nothing


def test_external_transcripts_are_scored_by_wer(sqlite_workspace, tmp_path) -> None:
    from labeling.data.labels_import import import_labels
    from tests.audio import speechlike, write_wav

    ws = sqlite_workspace
    src = tmp_path / "src"
    refs = ["turn the light on", "stop", "go left now", "play some music"]
    hyps = ["turn the lights on", "stop", "go now", "Play some music!"]
    for i in range(len(refs)):
        write_wav(src / f"utt{i}.wav", speechlike(i))
    import_path(ws, src, "asr")
    with ws.db.write() as s:
        s.execute(Clip.__table__.update().values(split="test"))
    from labeling.data.projects import get_project, update_project

    with ws.db.write() as s:
        update_project(s, "asr", task_kind="transcription")
    labels = tmp_path / "labels.csv"
    labels.write_text("file_name,transcript\n" + "".join(f"utt{i}.wav,{r}\n" for i, r in enumerate(refs)))
    import_labels(ws, labels, "asr", as_="resolutions")
    hyp_csv = tmp_path / "hyp.csv"
    hyp_csv.write_text("file_name,transcript\n" + "".join(f"utt{i}.wav,{h}\n" for i, h in enumerate(hyps)))
    summary = import_external_predictions(ws, "asr", hyp_csv, name="asr v1")
    with ws.db.read() as s:
        preds = run_predictions(s, summary.id).sort_values("original_name")
        assert get_project(s, "asr").transcribes
    # The project's rules lower-case and drop punctuation, so "Play some music!" is exact.
    expected = [jiwer.wer(r, h.lower().replace("!", "")) for r, h in zip(refs, hyps, strict=True)]
    assert preds["wer"].to_numpy() == pytest.approx(expected)
    assert summary.metrics["overall"]["mean_wer"] == pytest.approx(np.mean(expected))
    assert preds["correct"].tolist() == [False, True, False, True]
    with pytest.raises(RunError, match="the built-in model classifies"):
        train_run(ws, "asr")


@pytest.mark.fsdd
def test_train_and_slices_commands(sqlite_workspace, fsdd_dir, tmp_path, monkeypatch, capsys) -> None:
    from labeling.cli import main

    ws = sqlite_workspace
    make_fsdd_project(ws, fsdd_dir, tmp_path, takes=10)
    monkeypatch.setenv("EARMARK_DATA_DIR", str(ws.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", ws.settings.database_url)
    assert main(["train", "--project", "digits"]) == 0
    out = capsys.readouterr().out
    with ws.db.read() as s:
        run = s.scalars(select(ModelRun)).one()
        fingerprint, test_accuracy = run.code_fingerprint, run.metrics["test"]["accuracy"]
    assert f"code fingerprint {fingerprint}" in out
    assert f"{test_accuracy:.3f}" in out
    assert "speaker=theo" in out
    assert main(["slices", "--project", "digits", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["code_fingerprint"] == fingerprint
    assert report["overall"]["accuracy"] == pytest.approx(test_accuracy)
    assert {r["tag"] for r in report["slices"]} >= {f"speaker={sp}" for sp in SPEAKERS}
    assert main(["train", "--project", "digits", "--params", '{"C": "lots"}']) == 1
    assert "cannot train" in capsys.readouterr().err
    assert main(["slices", "--project", "nope"]) == 1
    assert "no project named 'nope'" in capsys.readouterr().err


def test_identical_runs_compare_as_no_change(sqlite_workspace, tmp_path) -> None:
    from labeling.model.compare import compare_runs
    from tests.audio import speechlike, write_wav

    ws = sqlite_workspace
    src = tmp_path / "src"
    for i in range(8):
        write_wav(src / f"{['yes', 'no'][i % 2]}_spk{i % 2}_{i}.wav", speechlike(i))
    import_path(ws, src, "same", pattern=r"(?P<label>[a-z]+)_(?P<speaker>spk\d)_\d+\.wav")
    with ws.db.write() as s:
        s.execute(update(Clip).values(split="test"))
    names = sorted(p.name for p in src.glob("*.wav"))
    runs = []
    for run, guess in (("first", "yes"), ("again", "yes"), ("other", "no")):
        pred = tmp_path / f"{run}.csv"
        pred.write_text(
            "file_name,label\n" + "".join(f"{n},{guess if j % 3 else 'no'}\n" for j, n in enumerate(names))
        )
        runs.append(import_external_predictions(ws, "same", pred, name=run, fingerprint="their model v1").id)
    with ws.db.read() as s:
        same = compare_runs(s, runs[0], runs[1])
        different = compare_runs(s, runs[0], runs[2])
    assert same.no_change
    assert same.verdict().startswith(
        "No change: both runs are right and wrong on the same 8 shared test clips"
    )
    assert not different.no_change
    assert not different.verdict().startswith("No change")
