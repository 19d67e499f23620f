"""Ingestion speed of production traffic: a prediction log of FSDD's 2,000 real 8 kHz WAVs.

Target: ≥ 500 clips/s, like the folder import. Baseline measured in the same run: the folder import of
the same files (decode, hash, quality measures, storage, one transaction). Production ingestion does
that plus parsing and checking each log line and the drift measures of every clip (median pitch by
YIN, spectral centroid, speaking rate, WADA-SNR).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from bench._report import machine, write_section
from bench.bench_import import FSDD, PATTERN, SCRATCH, fresh_workspace
from labeling.data.importer import import_path
from labeling.data.projects import create_project
from labeling.monitor.production import import_production


def write_log(folder: Path, files: list[Path]) -> Path:
    log = folder / "predictions.jsonl"
    with log.open("w") as fh:
        for i, f in enumerate(files):
            rec = {
                "audio": f.name,
                "timestamp": f"2025-06-01T10:{(i // 60) % 60:02d}:{i % 60:02d}+00:00",
                "model": "digits-v3",
                "prediction": f.name[0],
                "confidence": 0.9,
                "latency_ms": 35.0,
                "request_id": f"req-{i}",
            }
            fh.write(json.dumps(rec) + "\n")
    return log


def time_ingest(runs: int = 3) -> tuple[float, float, int]:
    files = sorted((FSDD / "recordings").glob("*.wav"))
    ours, folder = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp:
            ws = fresh_workspace(Path(tmp))
            with ws.db.write() as s:
                create_project(s, name="fsdd", classes=[str(d) for d in range(10)])
            log = write_log(Path(tmp), files)
            start = time.perf_counter()
            report = import_production(ws, log, "fsdd", batch="day 1", audio_root=FSDD / "recordings")
            ours.append(time.perf_counter() - start)
            assert report.n_logged == len(files), report.rejected[:3]
            ws.close()
        with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp:
            ws = fresh_workspace(Path(tmp))
            start = time.perf_counter()
            import_path(ws, FSDD / "recordings", "fsdd", pattern=PATTERN)
            folder.append(time.perf_counter() - start)
            ws.close()
    return statistics.median(ours), statistics.median(folder), len(files)


def main() -> None:
    SCRATCH.mkdir(parents=True, exist_ok=True)
    if not (FSDD / "recordings").is_dir():
        raise SystemExit("the shared FSDD recordings are not beside this clone")
    ours, folder, n = time_ingest()
    md = f"""## Production ingestion ({machine()})

| measure | Earmark | baseline | ratio |
|---|---|---|---|
| prediction log of FSDD, {n:,} requests (median of 3) | {ours:.2f} s = **{n / ours:,.0f} clips/s** (target ≥ 500) | folder import of the same files: {folder:.2f} s = {n / folder:,.0f} files/s | {ours / folder:.1f}× the folder import |

Production ingestion does what the folder import does, plus checking each log line and computing the
drift measures of every clip (YIN pitch, spectral centroid, speaking rate, WADA-SNR) from the samples
already decoded.
"""
    print(md)
    write_section("ingest_production", md)


if __name__ == "__main__":
    main()
