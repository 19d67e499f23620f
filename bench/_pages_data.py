"""The large project the page benchmark opens, built with bulk inserts and kept between runs.

One project ``bench`` of N clips: 10 classes, k = 3, 30 annotators; one annotation on 60% of the clips
and three on 30% (1.5 N annotations), a final label on those 30%, one ``noise:`` tag per clip, metadata
``speaker`` (500 values) and ``accent`` (6), two conventions versions and eight weeks of labelling.
Every clip points at one of twenty real FSDD recordings, so pages that play or draw a clip decode real
audio. The data is a fixed function of N (seeded).

A built project is cached under ``bench/.cache/pages`` (SQLite: the database file and audio store;
PostgreSQL: a database ``earmark_bench_pages_<N>`` beside the audio store there; set
``EARMARK_BENCH_PAGES_DATABASE`` to another prefix when two checkouts share one server) and reused
while the builder's :data:`BUILD` stamp is unchanged; the database is brought to the current schema on
reuse.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from db.engine import Database
from db.migrate import upgrade
from db.models import ImportBatch
from labeling.data.clip_metadata import index_clip_metadata
from labeling.data.conventions import save_convention
from labeling.data.projects import create_project
from labeling.platform.auth import add_user
from labeling.platform.storage import AudioStore

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache" / "pages"
FSDD = ROOT.parent / "shared" / "data" / "fsdd" / "recordings"
BUILD = "pages-v3"  # change when the data below changes, to rebuild cached projects
PROJECT = "bench"
CLASSES = [f"c{i}" for i in range(10)]
NOISE = ["car", "people", "none"]
ACCENTS = ["american", "british", "indian", "irish", "scottish", "australian"]
N_ANNOTATORS = 30
N_SPEAKERS = 500
WEEKS = 8
START = np.datetime64("2026-01-05T00:00:00", "us")

CLIP_COLUMNS = (
    "project_id, sha256, storage_key, original_name, duration_s, sample_rate, channels, frames, "
    "audio_format, meta, split, import_batch_id, peak_dbfs, rms_dbfs, leading_silence_ms, "
    "trailing_silence_ms, clipped_fraction, snr_db, annotations_needed, annotation_count, priority, "
    "created_at"
)
ANN_COLUMNS = (
    "project_id, clip_id, annotator_id, label, tags, unsure, time_spent_ms, convention_version, source, "
    "created_at, updated_at"
)
TAG_COLUMNS = "clip_id, tag, source, created_at"
RES_COLUMNS = "clip_id, project_id, label, method, agreement, created_at, updated_at"


@dataclass(frozen=True)
class BuiltProject:
    engine: str
    n_clips: int
    url: str
    data_dir: Path
    n_annotations: int
    build_s: float


def _stamps(us: np.ndarray, zone: str) -> np.ndarray:
    """Microsecond offsets from START as ``YYYY-MM-DD HH:MM:SS.ffffff`` strings (as SQLAlchemy writes
    them on SQLite; ``zone`` is appended for PostgreSQL)."""
    iso = (START + us.astype("timedelta64[us]")).astype(str)
    return np.char.add(np.char.replace(iso, "T", " "), zone)


class _Plan:
    """The whole project as numpy columns (a fixed function of N)."""

    def __init__(self, n: int) -> None:
        rng = np.random.default_rng(20260105)
        self.n = n
        self.speaker = rng.integers(0, N_SPEAKERS, n)
        accent_of = np.random.default_rng(7).integers(0, len(ACCENTS), N_SPEAKERS)
        self.accent = accent_of[self.speaker]
        self.split = np.where(self.speaker % 10 < 8, "train", np.where(self.speaker % 10 == 8, "dev", "test"))
        self.truth = rng.integers(0, len(CLASSES), n)
        self.noise = rng.choice(len(NOISE), n, p=[0.3, 0.2, 0.5])
        self.n_ann = np.zeros(n, dtype=np.int64)
        self.n_ann[: int(0.6 * n)] = 1
        self.n_ann[int(0.6 * n) : int(0.9 * n)] = 3
        self.rms = rng.normal(-24.0, 5.0, n).round(2)
        self.snr = rng.normal(22.0, 8.0, n).round(2)
        self.file = np.arange(n) % 20

        # Annotations: clip index, annotator index, label code, time, unsure, seconds spent.
        self.ann_clip = np.repeat(np.arange(n), self.n_ann)
        first = np.cumsum(self.n_ann) - self.n_ann
        slot = np.arange(len(self.ann_clip)) - np.repeat(first, self.n_ann)
        base = rng.integers(0, N_ANNOTATORS, n)
        self.ann_user = (np.repeat(base, self.n_ann) + slot * 7) % N_ANNOTATORS  # 3 distinct people
        hard = np.where(self.noise == 0, 0.35, 0.15)[self.ann_clip]
        wrong = rng.random(len(self.ann_clip)) < hard
        other = (self.truth[self.ann_clip] + rng.integers(1, len(CLASSES), len(self.ann_clip))) % len(CLASSES)
        self.ann_label = np.where(wrong, other, self.truth[self.ann_clip])
        self.ann_us = rng.integers(0, WEEKS * 7 * 86_400 * 1_000_000, len(self.ann_clip))
        self.ann_unsure = rng.random(len(self.ann_clip)) < 0.04
        self.ann_ms = rng.lognormal(8.0, 0.5, len(self.ann_clip)).astype(np.int64)

        # Final labels on the clips with three annotations: unanimous ones are settled; the others
        # carry an imported label and wait for a reviewer (the Review queue).
        triple = np.flatnonzero(self.n_ann == 3)
        votes = self.ann_label[np.isin(self.ann_clip, triple)].reshape(-1, 3)
        same = (votes[:, 0] == votes[:, 1]) & (votes[:, 1] == votes[:, 2])
        self.res_clip = triple
        self.res_label = np.where(same, votes[:, 0], self.truth[triple])
        self.res_method = np.where(same, "unanimous", "imported")
        self.res_agreement = np.where(same, 1.0, np.nan)


def _fsdd_keys(store: AudioStore) -> list[tuple[str, float, int]]:
    import soundfile as sf

    out = []
    for path in sorted(FSDD.glob("*_jackson_*.wav"))[:20]:
        data = path.read_bytes()
        key, _ = store.put(data, "wav")
        info = sf.info(str(path))
        out.append((key, float(info.duration), int(info.frames)))
    if len(out) < 20:
        raise SystemExit(f"the page benchmark needs FSDD recordings in {FSDD}")
    return out


def _rows(
    plan: _Plan, project_id: int, batch_id: int, files: list[tuple[str, float, int]], zone: str
) -> Iterator[tuple]:
    stamp = "2026-01-01 00:00:00.000000" + zone
    for i in range(plan.n):
        key, duration, frames = files[plan.file[i]]
        meta = json.dumps({"speaker": f"spk{plan.speaker[i]:03d}", "accent": ACCENTS[plan.accent[i]]})
        yield (
            project_id,
            f"{i:064x}",
            key,
            f"clip{i:07d}.wav",
            duration,
            8000,
            1,
            frames,
            "WAV",
            meta,
            str(plan.split[i]),
            batch_id,
            -3.0,
            float(plan.rms[i]),
            40.0,
            60.0,
            0.0,
            float(plan.snr[i]),
            3,
            int(plan.n_ann[i]),
            0,
            stamp,
        )


def _annotation_rows(
    plan: _Plan, project_id: int, first_clip: int, users: list[int], zone: str
) -> Iterator[tuple]:
    stamps = _stamps(plan.ann_us, zone)
    version = np.where(plan.ann_us < WEEKS * 7 * 86_400 * 1_000_000 // 2, 1, 2)
    for j in range(len(plan.ann_clip)):
        yield (
            project_id,
            first_clip + int(plan.ann_clip[j]),
            users[plan.ann_user[j]],
            CLASSES[plan.ann_label[j]],
            "[]",
            bool(plan.ann_unsure[j]),
            int(plan.ann_ms[j]),
            int(version[j]),
            "app",
            str(stamps[j]),
            str(stamps[j]),
        )


def _tag_rows(plan: _Plan, first_clip: int, zone: str) -> Iterator[tuple]:
    stamp = "2026-01-01 00:00:00.000000" + zone
    for i in range(plan.n):
        yield (first_clip + i, f"noise:{NOISE[plan.noise[i]]}", "import", stamp)


def _res_rows(plan: _Plan, project_id: int, first_clip: int, zone: str) -> Iterator[tuple]:
    stamp = "2026-03-02 00:00:00.000000" + zone
    for c, label, method, agreement in zip(
        plan.res_clip, plan.res_label, plan.res_method, plan.res_agreement, strict=True
    ):
        agree = None if np.isnan(agreement) else float(agreement)
        yield (first_clip + int(c), project_id, CLASSES[label], str(method), agree, stamp, stamp)


def _load(db: Database, store: AudioStore, n: int, progress: bool = True) -> int:
    """Create the project and bulk-load it; returns the number of annotations."""
    upgrade(db)
    plan = _Plan(n)
    files = _fsdd_keys(store)
    with db.write() as s:
        admin = add_user(s, name="admin", role="admin", password="admin-bench")
        users = [add_user(s, name=f"annotator{i:02d}", role="annotator").id for i in range(N_ANNOTATORS)]
        project = create_project(
            s,
            name=PROJECT,
            classes=CLASSES,
            tag_groups={"noise": NOISE},
            annotations_per_clip=3,
            actor_id=admin.id,
        )
        save_convention(s, project.id, text="# Classes\nSay the digit you hear.", author_id=admin.id)
        save_convention(
            s,
            project.id,
            text="# Classes\nSay the digit you hear; c7 is 'seven'.",
            note="Name c7 explicitly",
            author_id=admin.id,
        )
        batch = ImportBatch(project_id=project.id, name="bench", source="bench", n_imported=n)
        s.add(batch)
        s.flush()
        batch_id = batch.id
    zone = "" if db.is_sqlite else "+00"
    tables = [
        ("clips", CLIP_COLUMNS, lambda first: _rows(plan, project.id, batch_id, files, zone)),
        ("annotations", ANN_COLUMNS, lambda first: _annotation_rows(plan, project.id, first, users, zone)),
        ("clip_tags", TAG_COLUMNS, lambda first: _tag_rows(plan, first, zone)),
        ("resolutions", RES_COLUMNS, lambda first: _res_rows(plan, project.id, first, zone)),
    ]
    raw = db.engine.raw_connection()
    try:
        first = 0
        if db.is_sqlite:
            cur = raw.cursor()
            cur.execute("BEGIN IMMEDIATE")
            for table, columns, rows in tables:
                t0 = time.perf_counter()
                marks = ", ".join("?" * len(columns.split(",")))
                cur.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows(first))
                if table == "clips":
                    first = cur.execute(
                        "SELECT min(id) FROM clips WHERE project_id = ?", (project.id,)
                    ).fetchone()[0]
                if progress:
                    print(f"  {table}: {time.perf_counter() - t0:.0f} s", flush=True)
            cur.execute("COMMIT")
            cur.close()
        else:
            pg = raw.driver_connection
            with pg.cursor() as c:
                for table, columns, rows in tables:
                    t0 = time.perf_counter()
                    with c.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                        for row in rows(first):
                            copy.write_row(row)
                    if table == "clips":
                        first = c.execute(
                            "SELECT min(id) FROM clips WHERE project_id = %s", (project.id,)
                        ).fetchone()[0]
                    if progress:
                        print(f"  {table}: {time.perf_counter() - t0:.0f} s", flush=True)
            pg.commit()
    finally:
        raw.close()
    _after_import(db, project.id)
    _analyze(db)
    return len(plan.ann_clip)


def _after_import(db: Database, project_id: int) -> None:
    """What an import does once its clips are in: index their metadata."""
    with db.write() as s:
        index_clip_metadata(s, project_id)


def _analyze(db: Database) -> None:
    raw = db.engine.raw_connection()
    try:
        if db.is_sqlite:
            cur = raw.cursor()
            cur.execute("ANALYZE")
            cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cur.close()
        else:
            pg = raw.driver_connection
            pg.commit()
            pg.autocommit = True
            pg.execute("VACUUM ANALYZE")
            pg.execute("CHECKPOINT")
            pg.autocommit = False
    finally:
        raw.close()


def _marker(folder: Path) -> dict | None:
    path = folder / "built.json"
    if not path.is_file():
        return None
    info = json.loads(path.read_text())
    return info if info.get("build") == BUILD else None


def _pg_url(base: str, name: str) -> str:
    return make_url(base).set(database=name).render_as_string(hide_password=False)


def project(engine: str, n: int, *, postgres: str = "") -> BuiltProject:
    """The cached project of ``n`` clips on ``engine`` ("sqlite" or "postgresql"), built if missing."""
    folder = CACHE / f"{engine}-{n}"
    name = f"{os.environ.get('EARMARK_BENCH_PAGES_DATABASE', 'earmark_bench_pages')}_{n}"
    url = f"sqlite:///{folder / 'bench.db'}" if engine == "sqlite" else _pg_url(postgres, name)
    info = _marker(folder)
    if info is not None and engine == "postgresql":
        admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        admin.dispose()
        info = info if exists else None
    if info is None:
        print(f"building the {n:,}-clip project on {engine} (cached for later runs)…", flush=True)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        if engine == "postgresql":
            admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            admin.dispose()
        t0 = time.perf_counter()
        db = Database.from_url(url)
        try:
            n_ann = _load(db, AudioStore(folder / "data" / "audio"), n)
        finally:
            db.dispose()
        info = {"build": BUILD, "n_annotations": n_ann, "build_s": time.perf_counter() - t0}
        (folder / "built.json").write_text(json.dumps(info))
    else:
        db = Database.from_url(url)
        try:
            upgrade(db)  # a cached project built under an older schema
            _after_import(db, 1)  # the bench database holds one project
        finally:
            db.dispose()
    return BuiltProject(engine, n, url, folder / "data", int(info["n_annotations"]), float(info["build_s"]))
