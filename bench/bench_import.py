"""Import speed on FSDD (2,000 real 8 kHz WAVs) and clip-table load time at 100,000 clips.

Targets: import ≥ 500 files/s; the Clips page's frame (clip_frame + a filter) for 100,000 clips in
about a second. Baselines measured in the same run: for import, the bare cost of reading and
decoding every file with soundfile (no hashing, measuring, storing or database); for the clip
frame, ``pandas.read_sql`` of the clips table alone.
"""

from __future__ import annotations

import io
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import soundfile as sf
from sqlalchemy import insert

from analysis.filters import filter_clips
from bench._report import machine, median_seconds, write_section
from db.engine import Database
from db.migrate import upgrade
from db.models import Clip, ClipTag, Resolution
from labeling.data.clips import clip_frame
from labeling.data.importer import import_path
from labeling.data.projects import create_project
from labeling.platform.config import Settings
from labeling.platform.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
FSDD = ROOT.parent / "shared" / "data" / "fsdd"
PATTERN = r"(?P<label>\d)_(?P<speaker>[a-z]+)_(?P<index>\d+)\.wav"
N_CLIPS = 100_000
# Work beside the project, where earmark-data lives by default (and not on a tmpfs or a slow /tmp).
SCRATCH = ROOT / "bench" / ".cache"


def fresh_workspace(tmp: Path) -> Workspace:
    url = f"sqlite:///{tmp / 'bench.db'}"
    db = Database.from_url(url)
    upgrade(db)
    db.dispose()
    return Workspace.open(Settings(data_dir=tmp, database_url=url))


def time_import(runs: int = 3) -> tuple[float, float, int]:
    files = sorted((FSDD / "recordings").glob("*.wav"))
    ours = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp:
            ws = fresh_workspace(Path(tmp))
            start = time.perf_counter()
            report = import_path(
                ws, FSDD, "fsdd", pattern=PATTERN, metadata=FSDD / "speakers.csv", join="speaker"
            )
            ours.append(time.perf_counter() - start)
            ws.close()
            assert report.n_imported == len(files)

    def decode_only() -> None:
        for f in files:
            sf.read(io.BytesIO(f.read_bytes()), dtype="float32")

    return statistics.median(ours), median_seconds(decode_only, repeat=runs), len(files)


def time_clip_frame(runs: int = 5) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp:
        ws = fresh_workspace(Path(tmp))
        with ws.db.write() as s:
            project = create_project(s, name="big", classes=[str(i) for i in range(10)])
            rows = [
                {
                    "project_id": project.id,
                    "sha256": f"{i:064x}",
                    "storage_key": f"00/{i:064x}.wav",
                    "original_name": f"clip_{i}.wav",
                    "duration_s": 1.0,
                    "sample_rate": 16000,
                    "channels": 1,
                    "frames": 16000,
                    "audio_format": "WAV",
                    "split": ("train", "dev", "test")[i % 3],
                    "meta": {"speaker": f"spk{i % 500}", "accent": ("us", "uk", "in")[i % 3]},
                    "rms_dbfs": -20.0 - i % 10,
                }
                for i in range(1, N_CLIPS + 1)
            ]
            for start in range(0, len(rows), 10_000):
                s.execute(insert(Clip), rows[start : start + 10_000])
            s.execute(
                insert(ClipTag),
                [
                    {"clip_id": i, "tag": f"noise:{('car', 'babble')[i % 2]}"}
                    for i in range(1, N_CLIPS + 1, 3)
                ],
            )
            s.execute(
                insert(Resolution),
                [
                    {"clip_id": i, "project_id": project.id, "label": str(i % 10), "method": "imported"}
                    for i in range(1, N_CLIPS + 1)
                ],
            )

        def load() -> pd.DataFrame:
            with ws.db.read() as s:
                return clip_frame(s, project.id)

        frame = load()
        ours = median_seconds(load, repeat=runs)
        filt = median_seconds(
            lambda: filter_clips(frame, splits=["dev"], tags_all=["noise:car"], metadata={"accent": ["uk"]}),
            repeat=runs,
        )
        base = median_seconds(lambda: pd.read_sql_table("clips", ws.db.engine), repeat=runs)
        ws.close()
    return ours, filt, base


def main() -> None:
    SCRATCH.mkdir(parents=True, exist_ok=True)
    if not (FSDD / "recordings").is_dir():
        raise SystemExit("the shared FSDD recordings are not beside this clone")
    imp, decode, n = time_import()
    frame_s, filter_s, base_s = time_clip_frame()
    md = f"""## Import and clip table ({machine()})

| measure | Earmark | baseline | ratio |
|---|---|---|---|
| FSDD import, {n:,} files (median of 3) | {imp:.2f} s = **{n / imp:,.0f} files/s** (target ≥ 500) | decode only: {decode:.2f} s = {n / decode:,.0f} files/s | {imp / decode:.1f}× the bare decode |
| clip frame, {N_CLIPS:,} clips (median of 5) | **{frame_s:.2f} s** | `pandas.read_sql_table("clips")`: {base_s:.2f} s | {frame_s / base_s:.1f}× |
| filter of that frame (split, tag, metadata) | **{filter_s * 1000:.0f} ms** | | |

The import does, per file, what the baseline does (read and decode) plus SHA-256, quality measures,
content-addressed storage and the database insert, on two threads. The clip frame joins resolutions,
tags and metadata; the Clips page caches it and only re-reads after the data changes.
"""
    print(md)
    write_section("import", md)


if __name__ == "__main__":
    main()
