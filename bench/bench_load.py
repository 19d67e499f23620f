"""Sixteen annotators at once: latency, throughput and invariants of the labeling queue under load.

Each of ``WORKERS`` (16) processes plays one annotator who, ``SUBMITS`` (500) times, asks for the next
clip (``next_clip``, its own write transaction) and submits a label for it (``submit_annotation``,
another), and one time in ten submits it again with the same idempotency key, as a double click or a
retry would. The project has k = 3 and more clips than the run can fill, on SQLite and on PostgreSQL.

Baselines, measured in the same run: *one client alone* doing the same loop on the same database, so
the ratios say what concurrency costs on this machine, whatever else it is busy with; and on SQLite,
the whole load again with fair turns for starving writers off (``EARMARK_SQLITE_WRITE_FAIRNESS=off``:
SQLite's own busy handler orders the writers), alternated with the fair runs and the PostgreSQL
ones, ``EARMARK_BENCH_LOAD_RUNS`` (3) of each.

Reported: p50/p95/p99/max of submit and next-clip, submits per second, the first against the last
thousand submits (a slowdown as the run goes on would show there), the CPU time per submit cycle of
the clients and of their PostgreSQL backends (a server on this machine), and the invariants — submits lost
(answered ``created`` but not stored), duplicated (one annotator twice on a clip, or a retry stored
again), clips over k, and hand-outs refused as ``full``: all must be 0.

Targets (2 cores): p95 ≤ 50 ms for both calls on PostgreSQL; p95 ≤ 100 ms and p99 ≤ 500 ms on SQLite,
and with fair turns no submit over 2 s and none refused; ≥ 150 submits/s; no slowdown from the
first to the last thousand. ``EARMARK_BENCH_LOAD_SUBMITS`` shortens the run (submits per worker);
``EARMARK_BENCH_LOAD_POSTGRES=0`` leaves PostgreSQL out.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, insert, select, text

from bench._report import machine, scratch_postgres, write_section
from db.engine import Database
from db.migrate import upgrade
from db.models import Annotation, Clip, utcnow
from db.writer_turns import FAIRNESS_ENV, WriteWaitTimeout, starve_after_s, wait_bound_s, write_wait_stats
from labeling.annotate.annotations import submit_annotation
from labeling.annotate.queue import next_clip
from labeling.data.projects import create_project
from labeling.platform.auth import add_user

WORKERS = 16
SUBMITS = int(os.environ.get("EARMARK_BENCH_LOAD_SUBMITS", "500"))
ALONE = max(50, SUBMITS // 2)
RUNS = int(os.environ.get("EARMARK_BENCH_LOAD_RUNS", "3"))
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


def _server_cpu_s(db: Database) -> tuple[int | None, float]:
    """This client's PostgreSQL backend and the CPU seconds it has used, read from /proc when the
    server runs on this machine; (None, 0.0) otherwise (SQLite, or a server elsewhere)."""
    if db.is_sqlite:
        return None, 0.0
    with db.read() as s:
        pid = s.scalar(text("SELECT pg_backend_pid()"))
    return pid, _backend_cpu_s(pid)


def _backend_cpu_s(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def _annotate(url: str, project_id: int, user_id: int, n: int, seed: int, barrier, out) -> None:
    """One annotator's loop; sends back (finished_at, next_s, submit_s, status, clip, retried, retry_status)
    per submit, and the CPU seconds the loop took in this process and in its server backend."""
    rng = random.Random(seed)
    db = Database.from_url(url)
    rows: list[tuple] = []
    errors: list[str] = []
    cpu = (0.0, 0.0)
    try:
        backend, server0 = _server_cpu_s(db)
        if barrier is not None:
            barrier.wait(timeout=300)
        client0 = time.process_time()
        for _ in range(n):
            # A write refused for waiting too long is counted and the annotator goes on, as one
            # would after the message; anything else ends this client.
            try:
                t0 = time.perf_counter()
                with db.write() as s:
                    item = next_clip(s, project_id, user_id)
                t1 = time.perf_counter()
                if item is None:
                    break
                key = f"u{user_id}-c{item.clip_id}"
                with db.write() as s:
                    r = submit_annotation(
                        s, project_id, user_id, item.clip_id, label="yes", idempotency_key=key
                    )
                t2 = time.perf_counter()
                retry_status = None
                if rng.random() < RETRY:
                    with db.write() as s:
                        retry_status = submit_annotation(
                            s, project_id, user_id, item.clip_id, label="yes", idempotency_key=key
                        ).status
            except WriteWaitTimeout as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            rows.append(
                (time.time(), t1 - t0, t2 - t1, r.status, item.clip_id, r.annotation_id, retry_status)
            )
        cpu = (time.process_time() - client0, _backend_cpu_s(backend) - server0)
    except Exception as exc:  # reported by the parent
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        db.dispose()
        stats = write_wait_stats()
        out.put((user_id, rows, errors, (stats.starved, stats.deferred), cpu))


def _run(url: str, project_id: int, users: list[int], n: int) -> tuple[list[tuple], list[str], float, dict]:
    """Rows, errors, wall time, and the clients' SQLite write waits (starved, deferred) with their CPU
    seconds (client, server) in all."""
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
    rows = [(uid, *r) for uid, rs, *_ in reports for r in rs]
    errors = [e for _, _, es, *_ in reports for e in es]
    turns = {
        "starved": sum(t[0] for *_, t, _ in reports),
        "deferred": sum(t[1] for *_, t, _ in reports),
        "client_cpu": sum(c[0] for *_, c in reports),
        "server_cpu": sum(c[1] for *_, c in reports),
    }
    if not rows:
        return rows, errors, 0.0, turns
    started = min(r[1] - r[2] - r[3] for r in rows)
    wall = max(r[1] for r in rows) - started
    return rows, errors, wall, turns


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
        alone_rows, alone_errors, alone_wall, _ = _run(url, alone_project, alone_users, ALONE)
        rows, errors, wall, turns = _run(url, load_project, load_users, SUBMITS)
        cpu = {key: turns.pop(key) for key in ("client_cpu", "server_cpu")}
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
                # CPU per submit cycle (hand-out, submit, the one-in-ten retry), in ms.
                **{key: 1000 * seconds / len(rows) if rows else 0.0 for key, seconds in cpu.items()},
            },
            "invariants": _invariants(db, load_project, rows),
            "turns": turns,
            "loadavg": os.getloadavg()[0],
            "trips": trips,
            "errors": alone_errors + errors,
        }
    finally:
        db.dispose()


def run_sqlite(*, fair: bool = True) -> dict:
    """One SQLite measurement; ``fair=False`` leaves the writers to SQLite's busy handler alone."""
    saved = os.environ.get(FAIRNESS_ENV)
    os.environ[FAIRNESS_ENV] = "on" if fair else "off"  # read by the spawned clients too
    try:
        with tempfile.TemporaryDirectory(prefix="earmark-bench-") as tmp:
            return _measure(f"sqlite:///{Path(tmp) / 'bench.db'}")
    finally:
        if saved is None:
            os.environ.pop(FAIRNESS_ENV, None)
        else:
            os.environ[FAIRNESS_ENV] = saved


def run_postgres() -> dict | None:
    with scratch_postgres(POSTGRES) as url:
        return None if url is None else _measure(url)


def _median_run(runs: list[dict]) -> dict:
    """The runs' medians, figure by figure; ``worst_max`` keeps the longest single call of any run."""
    if len(runs) == 1:
        only = runs[0]
        return {**only, "worst_max": only["load"]["submit"]["max"], "runs": 1, "loadavg": [only["loadavg"]]}

    def med(path: tuple[str, ...]) -> float:
        values: list[float] = []
        for r in runs:
            node: Any = r
            for key in path:
                node = node[key]
            values.append(node)
        return statistics.median(values)

    out: dict = {"alone": {}, "load": {}, "invariants": {}, "runs": len(runs)}
    for part in ("alone", "load"):
        for call in ("submit", "next"):
            out[part][call] = {q: med((part, call, q)) for q in ("p50", "p95", "p99", "max")}
        out[part]["rate"] = med((part, "rate"))
    for key in ("first_p50", "last_p50", "first_rate", "last_rate", "client_cpu", "server_cpu"):
        out["load"][key] = med(("load", key))
    for key in runs[0]["invariants"]:
        out["invariants"][key] = sum(r["invariants"][key] for r in runs)  # counts: all runs together
    out["errors"] = [e for r in runs for e in r["errors"]]
    out["worst_max"] = max(r["load"]["submit"]["max"] for r in runs)
    out["turns"] = {key: med(("turns", key)) for key in runs[0]["turns"]}
    out["loadavg"] = [r["loadavg"] for r in runs]
    out["trips"] = runs[0]["trips"]  # counts of statements, the same in every run
    return out


def _row(engine: str, what: str, trips: str, r: dict, alone: dict) -> str:
    ratio = r["p95"] / alone["p95"] if alone["p95"] else float("nan")
    return (
        f"| {engine} | {what} | {trips} | {r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} | {r['max']:.0f} | "
        f"{alone['p50']:.1f} / {alone['p95']:.1f} | {ratio:.1f}× |"
    )


FAIR = "SQLite, fair to the starving"
BUSY = "SQLite, busy handler only"
#: How the load-average sentence names each engine's runs.
_SHORT = {FAIR: "fair", BUSY: "busy handler only"}


def main() -> None:
    started = time.perf_counter()
    fair: list[dict] = []
    busy: list[dict] = []
    pgs: list[dict] = []
    with_pg = os.environ.get("EARMARK_BENCH_LOAD_POSTGRES", "1") != "0"
    for i in range(RUNS):  # alternated, so all see the same load on the machine
        busy.append(run_sqlite(fair=False))
        print(f"run {i + 1}, {BUSY}:", busy[-1]["load"]["submit"], len(busy[-1]["errors"]), flush=True)
        fair.append(run_sqlite(fair=True))
        print(f"run {i + 1}, {FAIR}:", fair[-1]["load"]["submit"], len(fair[-1]["errors"]), flush=True)
        if with_pg and (pg := run_postgres()) is not None:
            pgs.append(pg)
            print(f"run {i + 1}, PostgreSQL:", pg["load"]["submit"], len(pg["errors"]), flush=True)
    for errors in {e for r in fair + busy + pgs for e in r["errors"]}:
        print("error:", errors[:300], flush=True)
    results = {FAIR: _median_run(fair), BUSY: _median_run(busy)}
    if pgs:
        results["PostgreSQL"] = _median_run(pgs)
    q, b = results[FAIR], results[BUSY]
    met = q["worst_max"] <= 2000 and not q["errors"]
    lines = [
        "## Labeling under load (`bench/bench_load.py`)",
        "",
        f"{WORKERS} annotator processes × {SUBMITS} submits each (next clip, submit, and a same-key retry "
        f"one time in ten), k = {K}, against one client alone ({ALONE} submits) measured in the same run "
        f"on the same database. {machine()}, load average {os.getloadavg()[0]:.1f} at the end; the "
        f"machine was shared with other work, so read the ratios. Latencies in ms, each call its own "
        f"write transaction, commit included (on SQLite, the wait for its turn too). SQLite: median of "
        f"{RUNS} runs with fair turns for starving writers and {RUNS} with SQLite's own busy handler only "
        f"(`{FAIRNESS_ENV}=off`), alternated in the same bench run; the write bound "
        f"(`EARMARK_SQLITE_WRITE_WAIT_S`) was {wait_bound_s():g} s in both. PostgreSQL: median of "
        f"{RUNS} runs, alternated with those. "
        f"Bench took {time.perf_counter() - started:.0f} s.",
        "",
        "Targets: PostgreSQL p95 ≤ 50 ms; SQLite p95 ≤ 100 ms and p99 ≤ 500 ms, and no submit over 2 s "
        "nor refused (errors); ≥ 150 submits/s; no slowdown from the first to the last thousand "
        "submits; 0 lost, 0 duplicated, 0 over k.",
        "",
        "Trips: statements sent plus BEGIN and COMMIT, per call once warmed up (a repeated submit in "
        "brackets). CPU per cycle: the CPU time of the sixteen client processes over their loops, and "
        "of their PostgreSQL backends (read from /proc, so only for a server on this machine), divided "
        "by the submits: one hand-out, one submit and a tenth of a retry each.",
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
        "| CPU per cycle: clients, server ms "
        "| lost | duplicated | over k | hand-outs refused | errors | longest submit, any run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for engine, r in results.items():
        load, inv = r["load"], r["invariants"]
        server = f"{load['server_cpu']:.2f}" if load["server_cpu"] else "–"
        lines.append(
            f"| {engine} | {load['rate']:.0f} | {r['alone']['rate']:.0f} | "
            f"{load['first_p50']:.1f}, {load['first_rate']:.0f} | {load['last_p50']:.1f}, "
            f"{load['last_rate']:.0f} | {load['client_cpu']:.2f}, {server} | "
            f"{inv['lost']} | {inv['duplicated']} | {inv['over_k']} | "
            f"{inv['refused_handouts']} | {len(r['errors'])} | {r['worst_max']:.0f} ms |"
        )
    ratio = b["load"]["submit"]["p99"] / q["load"]["submit"]["p99"] if q["load"]["submit"]["p99"] else 0
    lines += [
        "",
        f"Fair to the starving against busy handler only, submit: p99 {q['load']['submit']['p99']:.0f} against "
        f"{b['load']['submit']['p99']:.0f} ms ({ratio:.1f}×), max {q['load']['submit']['max']:.0f} "
        f"against {b['load']['submit']['max']:.0f} ms (medians of the runs). Target max ≤ 2 s and 0 "
        f"errors with fair turns: {'met' if met else '**missed**'}. Lost, duplicated, over k, refused and "
        "errors are counted over all runs.",
        "",
        f"Writes that starved (waited past {starve_after_s() * 1000:.0f} ms, `EARMARK_SQLITE_WRITE_STARVE_MS`) "
        f"and so made newcomers step aside, median per run: {q['turns']['starved']:.0f}; writes that "
        f"stepped aside: {q['turns']['deferred']:.0f}. One-minute load average after each run: "
        + "; ".join(
            f"{_SHORT.get(e, e)} {', '.join(f'{x:.1f}' for x in r['loadavg'])}" for e, r in results.items()
        )
        + ".",
    ]
    write_section("load", "\n".join(lines))


if __name__ == "__main__":
    main()
