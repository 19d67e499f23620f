"""What keeping the stored reports current costs a label submit, on SQLite and PostgreSQL.

Every submit queues a refresh of the agreement report and the review ranking unless one is already
queued or running for the project (``labeling.platform.jobs.queue_report_refreshes``). Target: that
adds ≤ 1 ms to ``submit_annotation``'s median, each submit timed as the Label page runs it (its own
write transaction, commit included).

Baseline, measured in the same run on the same project: the same submits with no kind registered as
a report refresh, i.e. the submit as it was before refreshes were queued. Rounds of each alternate so
that load on the machine falls on both alike. At the start of each round with refreshes, the queue is
empty, so its first submit is the one that inserts the two jobs; the rest find them queued (a burst).

``python -m bench.bench_report_refresh``; ``EARMARK_BENCH_POSTGRES_URL`` names the PostgreSQL server
(default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import delete, insert

import labeling.job_kinds  # noqa: F401  (registers the report refresh kinds)
from bench._report import machine, scratch_postgres, write_section
from db.engine import Database
from db.migrate import upgrade
from db.models import Clip, Job, utcnow
from labeling.annotate.annotations import submit_annotation
from labeling.data.projects import create_project
from labeling.platform.auth import add_user
from labeling.platform.jobs import JOB_KINDS

N_CLIPS = 4_000
ROUNDS = 6
PER_ROUND = 250
TARGET_MS = 1.0
POSTGRES = os.environ.get("EARMARK_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REFRESH_KINDS = [name for name, kind in JOB_KINDS.items() if kind.refreshes_report]


def _refreshes(on: bool) -> None:
    for name in REFRESH_KINDS:
        JOB_KINDS[name] = dataclasses.replace(JOB_KINDS[name], refreshes_report=on)


def _project(db: Database) -> tuple[int, int, list[int]]:
    with db.write() as s:
        project = create_project(s, name="bench", classes=["yes", "no"], annotations_per_clip=3)
        user = add_user(s, name="ann", role="annotator").id
        now = utcnow()
        s.execute(
            insert(Clip),
            [
                {
                    "project_id": project.id,
                    "sha256": f"{i:064x}",
                    "storage_key": f"00/{i:064x}.wav",
                    "original_name": f"c{i}.wav",
                    "duration_s": 1.0,
                    "sample_rate": 16000,
                    "channels": 1,
                    "frames": 16000,
                    "audio_format": "WAV",
                    "meta": {},
                    "split": "train",
                    "annotations_needed": 3,
                    "annotation_count": 0,
                    "priority": 0,
                    "created_at": now,
                }
                for i in range(N_CLIPS)
            ],
        )
        clips = [c.id for c in s.query(Clip.id).order_by(Clip.id)]
    return project.id, user, clips


def run(db: Database) -> dict[str, list[float]]:
    upgrade(db)
    project_id, user, clips = _project(db)
    times: dict[str, list[float]] = {"baseline": [], "burst": [], "first": []}
    todo = iter(clips)
    for round_ in range(2 * ROUNDS):
        on = round_ % 2 == 1
        _refreshes(on)
        with db.write() as s:
            s.execute(delete(Job))  # a worker has caught up: nothing queued
        for i in range(PER_ROUND):
            clip = next(todo)
            start = time.perf_counter()
            with db.write() as s:
                assert submit_annotation(s, project_id, user, clip, label="yes").ok
            took = time.perf_counter() - start
            times["baseline" if not on else "first" if i == 0 else "burst"].append(took)
    _refreshes(True)
    with db.read() as s:
        queued = s.query(Job.kind).filter(Job.status == "queued").count()
    assert queued == len(REFRESH_KINDS), queued  # the last burst left one job per report kind
    return times


def _ms(values: list[float], q: float | None = None) -> float:
    if q is None:
        return 1000 * statistics.median(values)
    return 1000 * statistics.quantiles(values, n=100)[int(q) - 1]


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        db = Database.from_url(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            rows.append(("SQLite", run(db)))
        finally:
            db.dispose()
    with scratch_postgres(POSTGRES) as url:
        if url is not None:
            db = Database.from_url(url)
            try:
                rows.append(("PostgreSQL", run(db)))
            finally:
                db.dispose()
    lines = [
        "## Report refreshes queued by label submits",
        "",
        f"{machine()}, load average {os.getloadavg()[0]:.1f} at the end. One project of {N_CLIPS:,} clips; "
        f"{ROUNDS} rounds of {PER_ROUND} submits without refreshes (the baseline) alternating with "
        f"{ROUNDS} rounds with them, each submit in its own write transaction, commit included. Target: "
        f"≤ {TARGET_MS:g} ms added to the median submit.",
        "",
        "| engine | baseline p50 / p95 (ms) | with refreshes p50 / p95 (ms) | added p50 (ms) | ratio | "
        "submit that queues the jobs, median (ms) | target |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for engine, t in rows:
        added = _ms(t["burst"]) - _ms(t["baseline"])
        lines.append(
            f"| {engine} | {_ms(t['baseline']):.2f} / {_ms(t['baseline'], 95):.2f} | "
            f"{_ms(t['burst']):.2f} / {_ms(t['burst'], 95):.2f} | {added:+.2f} | "
            f"{_ms(t['burst']) / _ms(t['baseline']):.2f}× | {_ms(t['first']):.2f} | "
            f"{'met' if added <= TARGET_MS else 'missed'} |"
        )
        print(lines[-1], flush=True)
    lines += [
        "",
        "While a refresh waits, a submit adds one indexed read of `jobs` (the partial unique index on "
        "active jobs); only the first submit after the worker caught up inserts the two jobs.",
    ]
    write_section("report_refresh", "\n".join(lines))


if __name__ == "__main__":
    main()
