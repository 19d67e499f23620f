"""Export speed at 100,000 clips: csv, jsonl and NeMo manifests referring to the stored audio.

Target: each export, from the database to the finished folder with its MANIFEST.json, in ≤ 5 s.
Baseline measured in the same run: ``pandas.DataFrame.to_csv`` (and ``to_json(lines=True)``) of the
same export frame, already in memory — no database read, no formula escaping, no per-file hashing,
no manifest, no atomic folder.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
from sqlalchemy import insert

from bench._report import machine, median_seconds, write_section
from bench.bench_import import N_CLIPS, SCRATCH, fresh_workspace
from db.models import Clip, ClipTag, Resolution
from labeling.data.export import ExportFilters, export_frame, export_project
from labeling.data.projects import create_project
from labeling.platform.workspace import Workspace

FORMATS = ("csv", "jsonl", "nemo")
RUNS = 3
TARGET_S = 5.0


def synthetic_project(ws: Workspace, n: int = N_CLIPS) -> int:
    """``n`` clip rows with metadata, a tag on every third and a final label and transcript on each,
    inserted directly (the audio files are not needed when the export refers to them)."""
    with ws.db.write() as s:
        project = create_project(s, name="big", task_kind="both", classes=[str(i) for i in range(10)])
        rows = [
            {
                "project_id": project.id,
                "sha256": f"{i:064x}",
                "storage_key": f"00/{i:064x}.wav",
                "original_name": f"spk{i % 500}/clip_{i}.wav",
                "duration_s": 1.0,
                "sample_rate": 16000,
                "channels": 1,
                "frames": 16000,
                "audio_format": "WAV",
                "split": ("train", "dev", "test")[i % 3],
                "meta": {"speaker": f"spk{i % 500}", "accent": ("us", "uk", "in")[i % 3]},
            }
            for i in range(1, n + 1)
        ]
        for start in range(0, n, 10_000):
            s.execute(insert(Clip), rows[start : start + 10_000])
        s.execute(
            insert(ClipTag),
            [{"clip_id": i, "tag": f"noise:{('car', 'babble')[i % 2]}"} for i in range(1, n + 1, 3)],
        )
        s.execute(
            insert(Resolution),
            [
                {
                    "clip_id": i,
                    "project_id": project.id,
                    "label": str(i % 10),
                    "transcript": f"say {i % 10}",
                    "method": "imported",
                }
                for i in range(1, n + 1)
            ],
        )
        return project.id


def time_export(ws: Workspace, fmt: str, work: Path) -> float:
    times = []
    for run in range(RUNS + 1):  # the first run warms the caches and is not counted
        out = work / f"{fmt}-{run}"
        start = time.perf_counter()
        report = export_project(ws, "big", fmt=fmt, out=out, copy_audio=False)
        elapsed = time.perf_counter() - start
        assert report.n_clips == N_CLIPS
        shutil.rmtree(out)
        if run:
            times.append(elapsed)
    return statistics.median(times)


def main() -> None:
    SCRATCH.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp:
        work = Path(tmp)
        ws = fresh_workspace(work)
        project_id = synthetic_project(ws)

        def build() -> pd.DataFrame:
            with ws.db.read() as s:
                return export_frame(s, ws.store, project_id, filters=ExportFilters())

        frame = build()
        frame_s = median_seconds(build, repeat=RUNS)
        ours = {fmt: time_export(ws, fmt, work) for fmt in FORMATS}
        to_csv = median_seconds(lambda: frame.to_csv(work / "pandas.csv", index=False), repeat=RUNS)
        to_json = median_seconds(
            lambda: frame.to_json(work / "pandas.jsonl", orient="records", lines=True, force_ascii=False),
            repeat=RUNS,
        )
        ws.close()
    baseline = {"csv": to_csv, "jsonl": to_json, "nemo": to_json}
    rows = "\n".join(
        f"| {fmt} | **{ours[fmt]:.2f} s** {'✓' if ours[fmt] <= TARGET_S else '✗'} (target ≤ {TARGET_S:.0f} s) "
        f"| {'`to_csv`' if fmt == 'csv' else '`to_json(lines=True)`'}: {baseline[fmt]:.2f} s "
        f"| {ours[fmt] / baseline[fmt]:.1f}× |"
        for fmt in FORMATS
    )
    md = f"""## Export ({machine()})

{N_CLIPS:,} clips with final labels, transcripts, tags and metadata, audio referenced where it is
stored (median of {RUNS} runs each, after one warm-up).

| format | Earmark: database → folder with MANIFEST.json | pandas on the frame in memory | ratio |
|---|---|---|---|
{rows}

Of each export, building the export frame from the database (clips, resolutions, tags, metadata)
takes {frame_s:.2f} s. The pandas baseline starts from that frame and writes one file without
formula escaping, the manifest's per-file SHA-256 or the build-then-rename that keeps a failed export
from leaving a partial folder.
"""
    print(md)
    write_section("export", md)


if __name__ == "__main__":
    main()
