"""Sixteen annotators at once: latency, throughput and invariants of the labeling queue under load.

Each of ``WORKERS`` (16) processes plays one annotator who, ``SUBMITS`` (500) times, asks for the next
clip (``next_clip``, its own write transaction) and submits a label for it (``submit_annotation``,
another), and one time in ten submits it again with the same idempotency key, as a double click or a
retry would. The project has k = 3 and more clips than the run can fill, on SQLite and on PostgreSQL.

Baseline, measured in the same run on the same database: *one client alone* doing the same loop, so
the ratios say what concurrency costs on this machine, whatever else it is busy with.

Reported: p50/p95/p99/max of submit and next-clip, submits per second, the first against the last
thousand submits (a slowdown as the run goes on would show there), and the invariants — submits lost
(answered ``created`` but not stored), duplicated (one annotator twice on a clip, or a retry stored
again), clips over k, and hand-outs refused as ``full``: all must be 0.

Targets (2 cores): p95 ≤ 50 ms for both calls on PostgreSQL; p95 ≤ 100 ms and p99 ≤ 500 ms on SQLite;
≥ 150 submits/s; no slowdown from the first to the last thousand. ``EARMARK_BENCH_LOAD_SUBMITS``
shortens the run (submits per worker).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import tempfile
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import event, func, insert, select

from bench._report import machine, scratch_postgres, write_section
from db.engine import Database
from db.migrate import upgrade
from db.models import Annotation, Clip, utcnow
from labeling.annotate.annotations import submit_annotation
from labeling.annotate.queue import next_clip
from labeling.data.projects import create_project
from labeling.platform.auth import add_user

WORKERS = 16
SUBMITS = int(os.environ.get("EARMARK_BENCH_LOAD_SUBMITS", "500"))
ALONE = max(50, SUBMITS // 2)
K = 3
RETRY = 0.10
POSTGRES = os.environ.get("EARMARK_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _add_project(db: Database, name: str, n_clips: int, n_users: int) -> tuple[int, list[int]]:
    with db.write() as s:
        project = create_project(s, name=name, classes=["yes", "no"], annotations_per_clip=K)
        users = [add_user(s, name=f"{name}-{i}", role="annotator").id for i in range(n_users)]
        now = utcnow()
        for start in range(0, n_clips, 5000):
            s.execute(
                insert(Clip),
                [
                    {
                        "project_id": project.id,
                        "sha256": f"{project.id:08x}{i:056x}",
                        "storage_key": f"00/{project.id:08x}{i:056x}.wav",
                        "original_name": f"c{i}.wav",
                        "duration_s": 1.0,
                        "sample_rate": 16000,
                        "channels": 1,
                        "frames": 16000,
                        "audio_format": "WAV",
                        "meta": {},
                        "split": "train",
                        "annotations_needed": K,
                        "annotation_count": 0,
                        "priority": 0,
                        "created_at": now,
                    }
                    for i in range(start, min(n_clips, start + 5000))
                ],
            )
    return project.id, users


def _annotate(url: str, project_id: int, user_id: int, n: int, seed: int, barrier, out) -> None:
    """One annotator's loop; sends back (finished_at, next_s, submit_s, status, clip, retried, retry_status)."""
    rng = random.Random(seed)
    db = Database.from_url(url)
    rows: list[tuple] = []
    error = None
    try:
        if barrier is not None:
            barrier.wait(timeout=300)
        for _ in range(n):
            t0 = time.perf_counter()
            with db.write() as s:
                item = next_clip(s, project_id, user_id)
            t1 = time.perf_counter()
            if item is None:
                break
            key = f"u{user_id}-c{item.clip_id}"
            with db.write() as s:
                r = submit_annotation(s, project_id, user_id, item.clip_id, label="yes", idempotency_key=key)
            t2 = time.perf_counter()
            retry_status = None
            if rng.random() < RETRY:
                with db.write() as s:
                    retry_status = submit_annotation(
                        s, project_id, user_id, item.clip_id, label="yes", idempotency_key=key
                    ).status
            rows.append(
                (time.time(), t1 - t0, t2 - t1, r.status, item.clip_id, r.annotation_id, retry_status)
            )
    except Exception as exc:  # reported by the parent
        error = f"{type(exc).__name__}: {exc}"
    finally:
        db.dispose()
        out.put((user_id, rows, error))


def _run(url: str, project_id: int, users: list[int], n: int) -> tuple[list[tuple], list[str], float]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(users)) if len(users) > 1 else None
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_annotate, args=(url, project_id, uid, n, i, barrier, out))
        for i, uid in enumerate(users)
    ]
    for p in procs:
        p.start()
    reports = [out.get(timeout=3600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    rows = [(uid, *r) for uid, rs, _ in reports for r in rs]
    errors = [e for _, _, e in reports if e]
    if not rows:
        return rows, errors, 0.0
    started = min(r[1] - r[2] - r[3] for r in rows)
    wall = max(r[1] for r in rows) - started
    return rows, errors, wall


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] * 1000


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "p50": _pct(values, 50),
        "p95": _pct(values, 95),
        "p99": _pct(values, 99),
        "max": max(values) * 1000,
    }


def _invariants(db: Database, project_id: int, rows: list[tuple]) -> dict[str, int]:
    with db.read() as s:
        stored = {
            a.id: (a.annotator_id, a.clip_id)
            for a in s.scalars(select(Annotation).where(Annotation.project_id == project_id))
        }
        over = s.scalar(
            select(func.count())
            .select_from(Clip)
            .where(Clip.project_id == project_id, Clip.annotation_count > Clip.annotations_needed)
        )
    created = [(uid, clip, aid) for uid, _, _, _, status, clip, aid, _ in rows if status == "created"]
    lost = sum(1 for uid, clip, aid in created if stored.get(aid) != (uid, clip))
    pairs = Counter(stored.values())
    duplicated = sum(n - 1 for n in pairs.values() if n > 1)
    duplicated += sum(1 for r in rows if r[7] is not None and r[7] != "duplicate")
    full = sum(1 for r in rows if r[4] != "created")
    return {"lost": lost, "duplicated": duplicated, "over_k": int(over or 0), "refused_handouts": full}


def _round_trips(db: Database) -> dict[str, int]:
    """Trips to the server (statements, BEGIN and COMMIT, as SQLAlchemy's engine events see them) of one
    hand-out, one submit and one repeated submit, once the process has warmed up."""
    project_id, users = _add_project(db, "trips", 40, 2)
    sent: list[str] = []

    def statement(*_: object) -> None:
        sent.append("statement")

    listeners = (
        ("before_cursor_execute", statement),
        ("begin", lambda *_: sent.append("BEGIN")),
        ("commit", lambda *_: sent.append("COMMIT")),
    )
    for name, fn in listeners:
        event.listen(db.engine, name, fn)
    trips: dict[str, int] = {}
    try:
        for i in range(10):  # the first submits queue the project's report refreshes
            user = users[i % 2]
            sent.clear()
            with db.write() as s:
                item = next_clip(s, project_id, user)
            assert item is not None
            trips["next"] = len(sent)
            sent.clear()
            key = f"u{user}-c{item.clip_id}"
            with db.write() as s:
                submit_annotation(s, project_id, user, item.clip_id, label="yes", idempotency_key=key)
            trips["submit"] = len(sent)
            sent.clear()
            with db.write() as s:
                submit_annotation(s, project_id, user, item.clip_id, label="yes", idempotency_key=key)
            trips["retry"] = len(sent)
    finally:
        for name, fn in listeners:
            event.remove(db.engine, name, fn)
    return trips


def _measure(url: str) -> dict:
    db = Database.from_url(url)
    try:
        upgrade(db)
        alone_project, alone_users = _add_project(db, "alone", ALONE + 10, 1)
        load_clips = WORKERS * SUBMITS // K + 2 * WORKERS * SUBMITS // K
        load_project, load_users = _add_project(db, "load", load_clips, WORKERS)
        db.analyze()  # as a bulk import does
        trips = _round_trips(db)
        alone_rows, alone_errors, alone_wall = _run(url, alone_project, alone_users, ALONE)
        rows, errors, wall = _run(url, load_project, load_users, SUBMITS)
        # First against last thousand while all sixteen still run: once some have finished, fewer
        # submits per second is fewer clients, not a slowdown.
        all_running = min(max(r[1] for r in rows if r[0] == uid) for uid in {r[0] for r in rows})
        by_time = sorted((r for r in rows if r[1] <= all_running), key=lambda r: r[1])
        first, last = by_time[:1000], by_time[-1000:]
        return {
            "alone": {
                "submit": _stats([r[3] for r in alone_rows]),
                "next": _stats([r[2] for r in alone_rows]),
                "rate": len(alone_rows) / alone_wall if alone_wall else 0.0,
            },
            "load": {
                "submit": _stats([r[3] for r in rows]),
                "next": _stats([r[2] for r in rows]),
                "rate": sum(1 for r in rows if r[4] == "created") / wall if wall else 0.0,
                "n": len(rows),
                "retries": sum(1 for r in rows if r[7] is not None),
                "first_p50": _pct([r[3] for r in first], 50),
                "last_p50": _pct([r[3] for r in last], 50),
                "first_rate": len(first) / (first[-1][1] - first[0][1]) if len(first) > 1 else 0.0,
                "last_rate": len(last) / (last[-1][1] - last[0][1]) if len(last) > 1 else 0.0,
            },
            "invariants": _invariants(db, load_project, rows),
            "trips": trips,
            "errors": alone_errors + errors,
        }
    finally:
        db.dispose()


def run_sqlite() -> dict:
    with tempfile.TemporaryDirectory(prefix="earmark-bench-") as tmp:
        return _measure(f"sqlite:///{Path(tmp) / 'bench.db'}")


def run_postgres() -> dict | None:
    with scratch_postgres(POSTGRES) as url:
        return None if url is None else _measure(url)


def _row(engine: str, what: str, trips: str, r: dict, alone: dict) -> str:
    ratio = r["p95"] / alone["p95"] if alone["p95"] else float("nan")
    return (
        f"| {engine} | {what} | {trips} | {r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} | {r['max']:.0f} | "
        f"{alone['p50']:.1f} / {alone['p95']:.1f} | {ratio:.1f}× |"
    )


def main() -> None:
    results = {"SQLite": run_sqlite()}
    print("SQLite:", results["SQLite"], flush=True)
    pg = run_postgres()
    if pg is not None:
        results["PostgreSQL"] = pg
        print("PostgreSQL:", pg, flush=True)
    lines = [
        "## Labeling under load (`bench/bench_load.py`)",
        "",
        f"{WORKERS} annotator processes × {SUBMITS} submits each (next clip, submit, and a same-key retry "
        f"one time in ten), k = {K}, against one client alone ({ALONE} submits) measured in the same run "
        f"on the same database. {machine()}; the machine was shared with other work, so read the "
        "ratios. Latencies in ms, each call its own write transaction, commit included.",
        "",
        "Targets: PostgreSQL p95 ≤ 50 ms; SQLite p95 ≤ 100 ms and p99 ≤ 500 ms; ≥ 150 submits/s; no "
        "slowdown from the first to the last thousand submits; 0 lost, 0 duplicated, 0 over k.",
        "",
        "Trips: statements sent plus BEGIN and COMMIT, per call once warmed up (a repeated submit in "
        "brackets).",
        "",
        "| engine | call | trips | p50 | p95 | p99 | max | alone p50 / p95 | p95 vs alone |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for engine, r in results.items():
        trips = r["trips"]
        submit_trips = f"{trips['submit']} ({trips['retry']})"
        lines.append(_row(engine, "submit", submit_trips, r["load"]["submit"], r["alone"]["submit"]))
        lines.append(_row(engine, "next clip", str(trips["next"]), r["load"]["next"], r["alone"]["next"]))
    lines += [
        "",
        "| engine | submits/s (16) | submits/s (alone) | first 1,000: p50 ms, /s | last 1,000: p50 ms, /s "
        "| lost | duplicated | over k | hand-outs refused | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for engine, r in results.items():
        load, inv = r["load"], r["invariants"]
        lines.append(
            f"| {engine} | {load['rate']:.0f} | {r['alone']['rate']:.0f} | "
            f"{load['first_p50']:.1f}, {load['first_rate']:.0f} | {load['last_p50']:.1f}, "
            f"{load['last_rate']:.0f} | {inv['lost']} | {inv['duplicated']} | {inv['over_k']} | "
            f"{inv['refused_handouts']} | {len(r['errors'])} |"
        )
    write_section("load", "\n".join(lines))


if __name__ == "__main__":
    main()
