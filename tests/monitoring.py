"""A small monitored project for page tests: a live model whose reference is 120 tone-burst clips, and
two production batches of 60 — one like the reference, one 20 dB quieter — each checked for drift."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update

from db.models import Clip
from labeling.data.importer import import_path
from labeling.data.versions import create_version
from labeling.model.runs import import_external_predictions
from labeling.monitor.drift import run_drift_check
from labeling.monitor.live import mark_live
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
