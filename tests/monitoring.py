"""A small monitored project for page tests: a live model whose reference is 120 tone-burst clips, and
two production batches of 60 — one like the reference, one 20 dB quieter — each checked for drift;
and a transcription project whose live model's transcripts can be made worse batch by batch."""

from __future__ import annotations

import csv
from pathlib import Path

import jiwer
import numpy as np
from sqlalchemy import select, update

from db.models import Clip, ImportBatch, ProductionClip, Resolution
from labeling.data.importer import import_path
from labeling.data.versions import create_version
from labeling.model.runs import import_external_predictions
from labeling.monitor.drift import run_drift_check
from labeling.monitor.live import mark_live
from labeling.monitor.loop import labeling_sample, send_to_labeling
from labeling.monitor.production import log_predictions
from tests.audio import speechlike, write_wav

PROJECT = "monitored"
BATCHES = ("day 1", "day 2 (quiet)")


def monitored_project(ws, tmp_path: Path, *, project: str = PROJECT) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "reference"
    labels = ["yes", "no"]
    for i in range(120):
        write_wav(src / f"{labels[i % 2]}_spk{i % 6}_{i}.wav", speechlike(i))
    import_path(ws, src, project, pattern=r"(?P<label>[a-z]+)_(?P<speaker>spk\d)_\d+\.wav")
    with ws.db.write() as s:
        s.execute(update(Clip).values(split="test"))
        create_version(s, project, name="v1")
    pred = tmp_path / "pred.csv"
    pred.write_text(
        "file_name,label,confidence\n"
        + "".join(f"{p.name},{p.name.split('_')[0]},0.9\n" for p in sorted(src.glob("*.wav")))
    )
    run = import_external_predictions(ws, project, pred, name="deployed")
    mark_live(ws, project, run.id, reference="v1")
    for b, batch in enumerate(BATCHES):
        log_batch(ws, tmp_path, batch, seed=b, gain=1.0 if b == 0 else 0.1, project=project)
        run_drift_check(ws, project, batch)


def log_batch(  # type: ignore[no-untyped-def]
    ws, tmp_path: Path, batch: str, *, seed: int, gain: float = 1.0, n: int = 60, project: str = PROJECT
) -> None:
    """Log a production batch of ``n`` tone-burst clips (``gain`` 0.1: 20 dB quieter than the
    reference), each answered right by the live model ("yes"/"no" by its name) with confidence 0.9."""
    labels = ["yes", "no"]
    folder = tmp_path / f"batch{seed}"
    records = []
    for i in range(n):
        name = f"{labels[i % 2]}_{seed}_{i}.wav"
        write_wav(folder / name, gain * speechlike(10_000 * (seed + 1) + i))
        records.append(
            {
                "audio": name,
                "timestamp": f"2025-06-{seed + 1:02d}T10:{i // 60:02d}:{i % 60:02d}+00:00",
                "model": "deployed",
                "prediction": labels[i % 2],
                "confidence": 0.9,
                "latency_ms": 30.0 + i % 5,
                "request_id": f"{seed}-{i}",
                "device": "phone" if i % 3 else "tablet",
            }
        )
    log_predictions(ws, project, records, batch=batch, audio_root=folder)


# A transcription project

ASR = "asr"
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _sentence(rng: np.random.Generator) -> str:
    return " ".join(rng.choice(WORDS, size=int(rng.integers(3, 6))))


def _hear(text: str, rng: np.random.Generator, *, slip: float, drop: float = 0.0) -> str:
    """What a model transcribes: each word replaced by another with probability ``slip``, left out
    with probability ``drop``."""
    out = []
    for w in text.split():
        if rng.random() < drop:
            continue
        out.append(str(rng.choice([x for x in WORDS if x != w])) if rng.random() < slip else w)
    return " ".join(out)


def transcribed_project(workspace, tmp_path: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A transcription project (:data:`ASR`): 120 reference clips (test split) with final transcripts,
    and a live model whose transcripts of them get about 5% of the words wrong. Returns the final
    transcripts by file name."""
    rng = np.random.default_rng(11)
    src = tmp_path / "reference"
    finals = {}
    for i in range(120):
        name = f"ref_{i}.wav"
        write_wav(src / name, speechlike(i))
        finals[name] = _sentence(rng)
    meta = tmp_path / "meta.csv"
    with meta.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file_name", "split", "transcript"])
        for name, text in finals.items():
            w.writerow([name, "test", text])
    import_path(workspace, src, ASR, metadata=meta, group_by="none")
    with workspace.db.write() as s:
        s.execute(update(Clip).values(split="test"))
        create_version(s, ASR, name="v1")
    pred = tmp_path / "pred.csv"
    with pred.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file_name", "transcript", "confidence"])
        for name, text in finals.items():
            w.writerow([name, _hear(text, rng, slip=0.05), 0.9])
    run = import_external_predictions(workspace, ASR, pred, name="asr-live")
    mark_live(workspace, ASR, run.id, reference="v1")
    return finals


def log_transcribed_batch(
    ws, tmp_path: Path, batch: str, *, seed: int, slip: float, drop: float = 0.0
) -> float:  # type: ignore[no-untyped-def]
    """Log 60 requests like the reference's audio, transcribed by the live model with ``slip`` and
    ``drop``; send the batch's sample to labeling and give its random clips their true transcripts.
    Returns the WER of the labelled random sample (jiwer, on the same pairs)."""
    rng = np.random.default_rng(seed)
    folder = tmp_path / batch
    truth, records = {}, []
    for i in range(60):
        name = f"{batch}_{i}.wav"
        write_wav(folder / name, speechlike(10_000 * seed + i))
        truth[name] = _sentence(rng)
        records.append(
            {
                "audio": name,
                "timestamp": f"2026-01-{seed:02d}T10:00:{i:02d}+00:00",
                "model": "asr-live",
                "transcript": _hear(truth[name], rng, slip=slip, drop=drop),
                "confidence": 0.9,
                "request_id": f"{batch}-{i}",
            }
        )
    assert log_predictions(ws, ASR, records, batch=batch, audio_root=folder).n_logged == 60
    send_to_labeling(ws, ASR, batch, labeling_sample(ws, ASR, batch))
    refs, hyps = [], []
    with ws.db.write() as s:
        rows = s.execute(
            select(
                ProductionClip.clip_id,
                ProductionClip.original_name,
                ProductionClip.transcript,
                Clip.project_id,
            )
            .join(Clip, Clip.id == ProductionClip.clip_id)
            .join(ImportBatch, ImportBatch.id == ProductionClip.batch_id)
            .where(ImportBatch.name == batch, ProductionClip.sample_reason == "random")
        ).all()
        assert len(rows) >= 30
        for clip_id, original, heard, project_id in rows:
            final = truth[Path(original).name]
            s.add(Resolution(clip_id=clip_id, project_id=project_id, transcript=final, method="imported"))
            refs.append(final)
            hyps.append(heard or "")
    return float(jiwer.wer(refs, hyps))
