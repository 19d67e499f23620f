"""The queue-scoring job (``labeling.model.queue_scores.score_queue``) at 100,000 and 1,000,000 clips,
on SQLite and PostgreSQL.

Target: scoring 1,000,000 clips by the margin strategy in at most 30 s (a background job), and the
next-clip hand-out after it still at most 5 ms p95.

The data: one project of N clips with ten classes and k = 1; 10% of the clips carry an imported final
label (so they are not scored); one model run with class probabilities (rounded to six digits, as
runs store them) for every clip. Each timing is the median of 3:

- **first scoring**: every clip's priority reset to 0 beforehand (untimed), so every scored clip is
  written;
- **rescore, nothing changed**: the job forced again right after, so it reads and ranks everything
  and writes nothing;
- **rescore after 1,000 labels** (once): the 1,000 clips at the head of the queue get a final label,
  then the job is forced again: it writes only the clips whose stored priority step moved.

Baseline, in the same run on the same data: the job as it was before it read columns — predictions
decoded row by row through SQLAlchemy's JSON type into a DataFrame, the pool read as ``Row`` objects,
and changed priorities written by ``UPDATE … WHERE id = ?`` in executemany chunks of 2,000 (copied
below as :func:`_baseline_job`). It is timed at 100,000 clips (at a million it takes minutes per run).

Next clip: after the scoring at 1,000,000 clips, ``next_clip`` then ``submit_annotation`` as the label
page runs them, 50 annotators in turn; the next-clip call alone is timed, 400 times after 20 untimed.

The PostgreSQL half creates a throwaway database ``earmark_bench_<random>`` on
``EARMARK_BENCH_POSTGRES_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/``) and drops
it afterwards. ``python -m bench.bench_queue_scores --quick`` runs 100,000 clips on SQLite only and
prints without touching BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import bindparam, insert, select, update

from analysis.active import clip_priorities
from bench._report import machine, scratch_postgres, write_section
from db.engine import Database
from db.migrate import upgrade
from db.models import Clip, ModelRun, Prediction, Project, Resolution
from labeling.annotate.annotations import submit_annotation
from labeling.annotate.queue import next_clip
from labeling.data.projects import apply_settings, create_project
from labeling.data.queue_order import queue_strategy
from labeling.model.queue_scores import score_queue
from labeling.platform.auth import add_user
from labeling.platform.config import Settings
from labeling.platform.workspace import Workspace

SIZES = (100_000, 1_000_000)
BASELINE_AT = 100_000
REPEAT = 3
CLASSES = [f"c{i}" for i in range(10)]
FINAL_SHARE = 0.1
N_USERS = 50
N_TIMED = 400
LABELLED = 1_000  # clips labelled from the head of the queue before the last rescore
TARGET_S = 30.0
TARGET_NEXT_MS = 5.0
POSTGRES = os.environ.get("EARMARK_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/")
STAMP = "2026-01-01 00:00:00.000000"
CLIP_COLUMNS = (
    "project_id, sha256, storage_key, original_name, duration_s, sample_rate, channels, frames, "
    "audio_format, meta, split, annotations_needed, annotation_count, priority, created_at"
)
RES_COLUMNS = "clip_id, project_id, label, method, created_at, updated_at"
PRED_COLUMNS = "run_id, clip_id, label, confidence, probabilities, out_of_fold"


def _clip_rows(project_id: int, n: int, zone: str) -> Iterator[tuple]:
    for i in range(n):
        sha = f"{i:064x}"
        yield (project_id, sha, f"{sha[:2]}/{sha}.wav", f"clip{i:07d}.wav", 1.0, 16000, 1, 16000, "WAV", "{}",
               "train", 1, 0, 0, STAMP + zone)  # fmt: skip


def _probabilities(n: int) -> np.ndarray:
    rng = np.random.default_rng(20261207)
    p = rng.dirichlet(np.full(len(CLASSES), 0.3), size=n)
    return np.round(p, 6)


def _prediction_rows(run_id: int, first: int, proba: np.ndarray) -> Iterator[tuple]:
    best = proba.argmax(axis=1)
    for i, row in enumerate(proba.tolist()):
        yield (run_id, first + i, CLASSES[best[i]], min(1.0, max(row)), json.dumps(row), False)


def _resolution_rows(project_id: int, first: int, n: int, zone: str) -> Iterator[tuple]:
    for i in range(0, n, round(1 / FINAL_SHARE)):
        yield (first + i, project_id, CLASSES[i % len(CLASSES)], "imported", STAMP + zone, STAMP + zone)


def _build(db: Database, n: int) -> tuple[int, list[int]]:
    """Migrate and bulk-load the project; returns its id and the annotators' ids."""
    upgrade(db)
    with db.write() as s:
        project = create_project(s, name="bench", classes=CLASSES, annotations_per_clip=1)
        users = [add_user(s, name=f"annotator{i:02d}", role="annotator").id for i in range(N_USERS)]
        run = ModelRun(
            project_id=project.id, kind="builtin", name="bench", code_fingerprint="x", classes=CLASSES
        )
        s.add(run)
        s.flush()
        run_id = run.id
    with db.write() as s:
        apply_settings(s, project.id, {"settings": {"queue_order": "margin"}})
    proba = _probabilities(n)
    zone = "" if db.is_sqlite else "+00"
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        if db.is_sqlite:
            cur.execute("BEGIN IMMEDIATE")
            cur.executemany(
                f"INSERT INTO clips ({CLIP_COLUMNS}) VALUES ({', '.join('?' * 15)})",
                _clip_rows(project.id, n, zone),
            )
            first = cur.execute("SELECT min(id) FROM clips WHERE project_id = ?", (project.id,)).fetchone()[0]
            cur.executemany(
                f"INSERT INTO predictions ({PRED_COLUMNS}) VALUES ({', '.join('?' * 6)})",
                _prediction_rows(run_id, first, proba),
            )
            cur.executemany(
                f"INSERT INTO resolutions ({RES_COLUMNS}) VALUES ({', '.join('?' * 6)})",
                _resolution_rows(project.id, first, n, zone),
            )
            cur.execute("COMMIT")
            cur.execute("ANALYZE")
            cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            pg = raw.driver_connection
            with pg.cursor() as c:
                with c.copy(f"COPY clips ({CLIP_COLUMNS}) FROM STDIN") as copy:
                    for row in _clip_rows(project.id, n, zone):
                        copy.write_row(row)
                first = c.execute(
                    "SELECT min(id) FROM clips WHERE project_id = %s", (project.id,)
                ).fetchone()[0]
                with c.copy(f"COPY predictions ({PRED_COLUMNS}) FROM STDIN") as copy:
                    for row in _prediction_rows(run_id, first, proba):
                        copy.write_row(row)
                with c.copy(f"COPY resolutions ({RES_COLUMNS}) FROM STDIN") as copy:
                    for row in _resolution_rows(project.id, first, n, zone):
                        copy.write_row(row)
            pg.commit()
            pg.autocommit = True
            for table in ("clips", "predictions", "resolutions"):
                pg.execute(f"VACUUM ANALYZE {table}")
            pg.execute("CHECKPOINT")
            pg.autocommit = False
        cur.close()
    finally:
        raw.close()
    return project.id, users


def _baseline_job(ws: Workspace, project_id: int) -> int:
    """The margin path of the job as it was: ORM-typed reads, row-by-row frames, chunked UPDATEs."""
    with ws.db.read() as s:
        settings = dict(s.scalar(select(Project.settings).where(Project.id == project_id)) or {})
        run_id = s.scalar(
            select(ModelRun.id).where(ModelRun.project_id == project_id).order_by(ModelRun.id.desc())
        )
        classes = [str(c) for c in s.scalar(select(ModelRun.classes).where(ModelRun.id == run_id))]
        rows = [
            (cid, probs)
            for cid, probs in s.execute(
                select(Prediction.clip_id, Prediction.probabilities).where(Prediction.run_id == run_id)
            )
            if probs is not None and len(probs) == len(classes)
        ]
        proba = pd.DataFrame(
            [p for _, p in rows], index=pd.Index([c for c, _ in rows], name="clip_id"), columns=classes
        ).astype("float64")
        final = select(Resolution.clip_id, Resolution.label).subquery()
        q = (
            select(
                Clip.id,
                Clip.annotation_count,
                Clip.annotations_needed,
                Clip.priority,
                final.c.clip_id.is_not(None),
                final.c.label,
            )
            .outerjoin(final, final.c.clip_id == Clip.id)
            .where(Clip.project_id == project_id, Clip.deleted_at.is_(None))
            .order_by(Clip.id)
        )
        clips = pd.DataFrame(
            s.execute(q).all(), columns=["clip_id", "count", "needed", "priority", "resolved", "final"]
        )
        clips["resolved"] = clips["resolved"].astype(bool)
    pool = clips[~clips["resolved"] & (clips["needed"] > 0)]
    priority, _ = clip_priorities(
        pool["clip_id"].to_numpy(), queue_strategy(settings), proba=proba, random_state=project_id
    )
    current = clips.set_index("clip_id")["priority"].reindex(priority.index)
    values = priority.to_numpy()
    moved = np.flatnonzero(values != current.to_numpy())
    changes: list[dict[str, Any]] = [{"b_id": int(priority.index[i]), "v": int(values[i])} for i in moved]
    stmt = update(Clip).where(Clip.id == bindparam("b_id")).values(priority=bindparam("v"))
    done = 0
    with ws.db.write() as s:
        conn = s.connection()
        for start in range(0, len(changes), 2000):
            done += int(conn.execute(stmt, changes[start : start + 2000]).rowcount or 0)
    return done


def _reset(db: Database, project_id: int) -> None:
    with db.write() as s:
        s.execute(update(Clip).where(Clip.project_id == project_id).values(priority=0))
    if db.is_sqlite:
        with db.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def _label_head(db: Database, project_id: int, n: int) -> None:
    """Give the ``n`` clips at the head of the queue a final label, as labelling them would."""
    with db.write() as s:
        head = s.scalars(
            select(Clip.id)
            .where(Clip.project_id == project_id, Clip.resolved.is_(False))
            .order_by(Clip.priority.desc(), Clip.id)
            .limit(n)
        ).all()
        s.execute(
            insert(Resolution),
            [
                {"clip_id": c, "project_id": project_id, "label": CLASSES[0], "method": "majority"}
                for c in head
            ],
        )


def _median_of(fn: Any, before: Any = None) -> tuple[float, list[Any]]:
    times, results = [], []
    for _ in range(REPEAT):
        if before is not None:
            before()
        t0 = time.perf_counter()
        results.append(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times), results


def _next_clip_ms(db: Database, project_id: int, users: list[int]) -> dict[str, float]:
    times = []
    for i in range(N_TIMED + 20):
        uid = users[i % len(users)]
        t0 = time.perf_counter()
        with db.write() as s:
            item = next_clip(s, project_id, uid)
        t1 = time.perf_counter()
        assert item is not None
        with db.write() as s:
            submit_annotation(s, project_id, uid, item.clip_id, label=CLASSES[0], idempotency_key=f"b{i}")
        if i >= 20:
            times.append((t1 - t0) * 1000)
    return {"next_p50": float(np.percentile(times, 50)), "next_p95": float(np.percentile(times, 95))}


def _measure(url: str, n: int, tmp: Path, *, baseline: bool, next_clips: bool) -> dict[str, Any]:
    ws = Workspace.open(Settings(data_dir=tmp, database_url=url), require_schema=False)
    try:
        t0 = time.perf_counter()
        project_id, users = _build(ws.db, n)
        out: dict[str, Any] = {"n": n, "build_s": time.perf_counter() - t0}
        reset = lambda: _reset(ws.db, project_id)  # noqa: E731
        out["first_s"], first = _median_of(lambda: score_queue(ws, project_id, force=True), reset)
        out["rescore_s"], again = _median_of(lambda: score_queue(ws, project_id, force=True))
        out["n_scored"] = first[0].n_scored
        out["first_changed"] = first[0].n_changed
        out["rescore_changed"] = again[0].n_changed
        if baseline:
            out["base_first_s"], base_first = _median_of(lambda: _baseline_job(ws, project_id), reset)
            out["base_rescore_s"], base_again = _median_of(lambda: _baseline_job(ws, project_id))
            assert base_first[0] == out["first_changed"], base_first
            assert base_again[0] == 0, base_again
            score_queue(ws, project_id, force=True)  # the job's steps again, untimed
        _label_head(ws.db, project_id, LABELLED)
        t0 = time.perf_counter()
        after = score_queue(ws, project_id, force=True)
        out["labelled_s"], out["labelled_changed"] = time.perf_counter() - t0, after.n_changed
        with ws.db.read() as s:
            # The job and the baseline rank alike: the same seed, the same probabilities.
            out["top"] = s.scalar(
                select(Clip.id).where(Clip.project_id == project_id).order_by(Clip.priority.desc()).limit(1)
            )
        if next_clips:
            out.update(_next_clip_ms(ws.db, project_id, users))
        print(out, flush=True)
        return out
    finally:
        ws.close()


def _engine_runs(engine: str, sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    results = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="earmark-bench-") as tmp:
            kwargs = {"baseline": n == BASELINE_AT, "next_clips": n == max(sizes)}
            if engine == "SQLite":
                results.append(_measure(f"sqlite:///{Path(tmp) / 'bench.db'}", n, Path(tmp), **kwargs))
            else:
                with scratch_postgres(POSTGRES) as url:
                    if url is None:
                        return results
                    results.append(_measure(url, n, Path(tmp), **kwargs))
    return results


def _report(results: dict[str, list[dict[str, Any]]]) -> str:
    def ok(value: float, target: float) -> str:
        return "met" if value <= target else "**missed**"

    lines = [
        "## Queue scoring (`labeling/model/queue_scores.py`)",
        "",
        f"Margin strategy, {len(CLASSES)} classes, {FINAL_SHARE:.0%} of the clips with an imported final "
        f"label; median of {REPEAT} runs; {machine()}, load average {os.getloadavg()[0]:.1f} at the end. "
        f"Baseline: the job as it was (JSON decoded per row, `UPDATE … WHERE id = ?` in chunks), "
        f"measured at {BASELINE_AT:,} clips in the same run.",
        "",
        "| engine | clips | first scoring | rescore, nothing changed | rescore after "
        f"{LABELLED:,} labels | baseline first | baseline rescore | ratio (first / rescore) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for engine, runs in results.items():
        for r in runs:
            if "base_first_s" in r:
                base = (
                    f"{r['base_first_s']:.2f} s | {r['base_rescore_s']:.2f} s | "
                    f"{r['first_s'] / r['base_first_s']:.2f}× / {r['rescore_s'] / r['base_rescore_s']:.2f}×"
                )
            else:
                base = "– | – | –"
            lines.append(
                f"| {engine} | {r['n']:,} | {r['first_s']:.2f} s ({r['first_changed']:,} written) | "
                f"{r['rescore_s']:.2f} s ({r['rescore_changed']:,} written) | "
                f"{r['labelled_s']:.2f} s ({r['labelled_changed']:,} written) | {base} |"
            )
    lines += ["", f"Targets at {max(SIZES):,} clips: scoring ≤ {TARGET_S:.0f} s, next clip p95 ≤ "
              f"{TARGET_NEXT_MS:.0f} ms after scoring.", ""]  # fmt: skip
    for engine, runs in results.items():
        big = [r for r in runs if r["n"] == max(SIZES)]
        if not big:
            continue
        r = big[0]
        worst = max(r["first_s"], r["rescore_s"])
        lines.append(
            f"- {engine}: scoring {worst:.1f} s ({ok(worst, TARGET_S)}); next clip p50 "
            f"{r['next_p50']:.2f} ms, p95 {r['next_p95']:.2f} ms ({ok(r['next_p95'], TARGET_NEXT_MS)})."
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 clips on SQLite only; print only")
    parser.add_argument("--small", action="store_true", help="100,000 clips on both engines; print only")
    args = parser.parse_args()
    if args.quick or args.small:
        small = {"SQLite": _engine_runs("SQLite", (BASELINE_AT,))}
        if args.small:
            small["PostgreSQL"] = _engine_runs("PostgreSQL", (BASELINE_AT,))
        print(_report(small))
        return
    results = {"SQLite": _engine_runs("SQLite", SIZES)}
    pg = _engine_runs("PostgreSQL", SIZES)
    if pg:
        results["PostgreSQL"] = pg
    markdown = _report(results)
    print(markdown)
    write_section("queue_scores", markdown)


if __name__ == "__main__":
    main()
