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

Baseline, in the same run on the same data: the job as it was before the scored orders got their own
table, writing ``clips.priority`` (the same read and ranking, the new values COPYed to a scratch table
and one ``UPDATE clips … FROM`` it; :func:`_clips_job`), with the trigger that copies clip changes into
``clip_queue`` set aside meanwhile so that the write costs what it did. One run per size, while the
clips' priorities are still 0 (a reset would be another such write).

Next clip: after the scoring at 1,000,000 clips, ``next_clip`` then ``submit_annotation`` as the label
page runs them, 50 annotators in turn; the next-clip call alone is timed, 400 times after 20 untimed.

``--million`` runs only 1,000,000 clips on both engines (and writes the section).

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
from sqlalchemy import insert, select, update

from analysis.active import bucketed_priorities, clip_priorities
from bench._report import machine, scratch_postgres, write_section
from db.engine import Database
from db.migrate import upgrade
from db.models import Clip, ClipQueue, ModelRun, Project, Resolution
from labeling.annotate.annotations import submit_annotation
from labeling.annotate.queue import next_clip
from labeling.data.projects import apply_settings, create_project
from labeling.data.queue_order import queue_strategy
from labeling.model.queue_scores import run_probabilities, score_queue
from labeling.platform.auth import add_user
from labeling.platform.columnar import read_frame
from labeling.platform.config import Settings
from labeling.platform.workspace import Workspace

SIZES = (100_000, 1_000_000)
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
            for table in ("clips", "clip_queue", "predictions", "resolutions"):
                pg.execute(f"VACUUM ANALYZE {table}")
            pg.execute("CHECKPOINT")
            pg.autocommit = False
        cur.close()
    finally:
        raw.close()
    return project.id, users


#: The update trigger of clips that copies a clip's own priority into clip_queue (db/migrations 0020).
_FOLLOW = "tr_clips_queue_update"


def _without_follow(db: Database, cursor: Any) -> Any:
    """Set the clips -> clip_queue update trigger aside; returns how to put it back."""
    if not db.is_sqlite:
        cursor.execute(f"ALTER TABLE clips DISABLE TRIGGER {_FOLLOW}")
        return lambda: cursor.execute(f"ALTER TABLE clips ENABLE TRIGGER {_FOLLOW}")
    sql = cursor.execute("SELECT sql FROM sqlite_master WHERE name = ?", (_FOLLOW,)).fetchone()[0]
    cursor.execute(f"DROP TRIGGER {_FOLLOW}")
    return lambda: cursor.execute(sql)


def _clips_job(ws: Workspace, project_id: int) -> int:
    """The margin path of the job as it was: priorities ranked alike, written to ``clips.priority``."""
    with ws.db.read() as s:
        settings = dict(s.scalar(select(Project.settings).where(Project.id == project_id)) or {})
        run_id = s.scalar(
            select(ModelRun.id).where(ModelRun.project_id == project_id).order_by(ModelRun.id.desc())
        )
        proba = run_probabilities(s, run_id)
        pool = read_frame(
            s,
            select(Clip.id, Clip.priority).where(
                Clip.project_id == project_id,
                Clip.deleted_at.is_(None),
                Clip.resolved.is_(False),
                Clip.annotations_needed > 0,
            ),
            {"clip_id": "int64", "priority": "int64"},
        )
    priority, _ = clip_priorities(
        pool["clip_id"].to_numpy(), queue_strategy(settings), proba=proba, random_state=project_id
    )
    current = pool.set_index("clip_id")["priority"].reindex(priority.index)
    values = bucketed_priorities(priority.to_numpy())
    moved = np.flatnonzero(values != current.to_numpy())
    ids = priority.index.to_numpy()[moved]
    order = np.argsort(ids, kind="stable")
    rows = list(zip(ids[order].tolist(), values[moved][order].tolist(), strict=True))
    with ws.db.write() as s:
        cursor = s.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
        restore = _without_follow(ws.db, cursor)
        try:
            if ws.db.is_sqlite:
                cursor.execute("CREATE TEMPORARY TABLE prev_scores (id INTEGER, v INTEGER)")
                cursor.executemany("INSERT INTO prev_scores (id, v) VALUES (?, ?)", rows)
                cursor.execute("PRAGMA cache_size = -262144")
            else:
                cursor.execute(
                    "CREATE TEMPORARY TABLE prev_scores (id bigint PRIMARY KEY, v integer) ON COMMIT DROP"
                )
                with cursor.copy("COPY prev_scores (id, v) FROM STDIN") as copy:
                    copy.write("".join(map("%d\t%d\n".__mod__, rows)))
                cursor.execute("ANALYZE prev_scores")
            cursor.execute("UPDATE clips SET priority = t.v FROM prev_scores AS t WHERE clips.id = t.id")
            done = int(cursor.rowcount or 0)
            cursor.execute("DROP TABLE prev_scores")
        finally:
            restore()
            cursor.close()
    return done


def _reset(db: Database, project_id: int) -> None:
    with db.write() as s:
        s.execute(update(ClipQueue).where(ClipQueue.project_id == project_id).values(priority=0))
    if db.is_sqlite:
        with db.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def _label_head(db: Database, project_id: int, n: int) -> None:
    """Give the ``n`` clips at the head of the queue a final label, as labelling them would."""
    with db.write() as s:
        head = s.scalars(
            select(ClipQueue.clip_id)
            .where(ClipQueue.project_id == project_id, ClipQueue.resolved.is_(False))
            .order_by(ClipQueue.priority.desc(), ClipQueue.clip_id)
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
        if baseline:
            t0 = time.perf_counter()
            out["base_changed"] = _clips_job(ws, project_id)
            out["base_first_s"] = time.perf_counter() - t0
        reset = lambda: _reset(ws.db, project_id)  # noqa: E731
        out["first_s"], first = _median_of(lambda: score_queue(ws, project_id, force=True), reset)
        out["rescore_s"], again = _median_of(lambda: score_queue(ws, project_id, force=True))
        out["n_scored"] = first[0].n_scored
        out["first_changed"] = first[0].n_changed
        out["rescore_changed"] = again[0].n_changed
        if baseline:
            assert out["base_changed"] == out["first_changed"], out
        _label_head(ws.db, project_id, LABELLED)
        t0 = time.perf_counter()
        after = score_queue(ws, project_id, force=True)
        out["labelled_s"], out["labelled_changed"] = time.perf_counter() - t0, after.n_changed
        with ws.db.read() as s:
            # The job and the baseline rank alike: the same seed, the same probabilities.
            out["top"] = s.scalar(
                select(ClipQueue.clip_id)
                .where(ClipQueue.project_id == project_id)
                .order_by(ClipQueue.priority.desc())
                .limit(1)
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
            kwargs = {"baseline": True, "next_clips": n == max(sizes)}
            if engine == "SQLite":
                results.append(_measure(f"sqlite:///{Path(tmp) / 'bench.db'}", n, Path(tmp), **kwargs))
            else:
                with scratch_postgres(POSTGRES) as url:
                    if url is None:
                        return results
                    results.append(_measure(url, n, Path(tmp), **kwargs))
    return results


def _report(results: dict[str, list[dict[str, Any]]], load_before: tuple[float, ...]) -> str:
    def ok(value: float, target: float) -> str:
        return "met" if value <= target else "**missed**"

    load_after = os.getloadavg()
    lines = [
        "## Queue scoring (`labeling/model/queue_scores.py`)",
        "",
        f"Margin strategy, {len(CLASSES)} classes, {FINAL_SHARE:.0%} of the clips with an imported final "
        f"label; median of {REPEAT} runs; {machine()}, load average (1, 5, 15 min) "
        f"{', '.join(f'{x:.1f}' for x in load_before)} at the start and "
        f"{', '.join(f'{x:.1f}' for x in load_after)} at the end (the machine is shared: wall times "
        "move with the load; read the ratios). Scores go to the narrow `clip_queue`; baseline: the job "
        "as it was, writing `clips.priority` (same read and ranking, same single `UPDATE … FROM`), "
        "one run in the same process on the same data.",
        "",
        "| engine | clips | first scoring | rescore, nothing changed | rescore after "
        f"{LABELLED:,} labels | baseline first (`clips.priority`) | first / baseline |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for engine, runs in results.items():
        for r in runs:
            base = (
                f"{r['base_first_s']:.2f} s | {r['first_s'] / r['base_first_s']:.2f}×"
                if "base_first_s" in r
                else "– | –"
            )
            lines.append(
                f"| {engine} | {r['n']:,} | {r['first_s']:.2f} s ({r['first_changed']:,} written) | "
                f"{r['rescore_s']:.2f} s ({r['rescore_changed']:,} written) | "
                f"{r['labelled_s']:.2f} s ({r['labelled_changed']:,} written) | {base} |"
            )
    lines += ["", f"Targets at {max(SIZES):,} clips: scoring ≤ {TARGET_S:.0f} s, next clip p95 ≤ "
              f"{TARGET_NEXT_MS:.0f} ms after scoring (margin order: the hand-out walks `clip_queue`).",
              ""]  # fmt: skip
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
    parser.add_argument("--million", action="store_true", help="1,000,000 clips on both engines only")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"load average {load}", flush=True)
    if args.quick or args.small:
        small = {"SQLite": _engine_runs("SQLite", (min(SIZES),))}
        if args.small:
            small["PostgreSQL"] = _engine_runs("PostgreSQL", (min(SIZES),))
        print(_report(small, load))
        return
    sizes = (max(SIZES),) if args.million else SIZES
    results = {"SQLite": _engine_runs("SQLite", sizes)}
    pg = _engine_runs("PostgreSQL", sizes)
    if pg:
        results["PostgreSQL"] = pg
    markdown = _report(results, load)
    print(markdown)
    write_section("queue_scores", markdown)


if __name__ == "__main__":
    main()
