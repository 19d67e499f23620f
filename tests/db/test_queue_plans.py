"""The hand-out finds the next clip by walking its queue order's index and stopping at the first
eligible clip, not by sorting every open clip: what keeps the Label page as fast at a million clips as
at a hundred. Checked on the statement ``next_clip`` actually sends, in the plan PostgreSQL uses once
the driver has prepared it (the generic plan) and in SQLite's plan."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, text

from db.engine import Database
from db.migrate import upgrade
from labeling.annotate.queue import next_clip
from labeling.data.projects import apply_settings, create_project
from labeling.platform.auth import add_user

#: Queue order -> the index its hand-out must walk (db/models.py).
WALKS = {
    "unlabelled_first": "ix_clips_open_unlabelled",
    "priority": "ix_clips_open",
    "random": "ix_clips_open_shuffled",
    "margin": "ix_clip_queue_open",
    "margin_diversity": "ix_clip_queue_open",
}
N_CLIPS = 20_000

CLIP_ROWS = """
    INSERT INTO clips (project_id, sha256, storage_key, original_name, duration_s, sample_rate, channels,
                       frames, audio_format, meta, split, annotations_needed, annotation_count, priority,
                       created_at)
    SELECT :p, {sha}, 'k' || i, 'c' || i || '.wav', 1.0, 16000, 1, 16000, 'WAV', '{{}}', 'train', 2,
           CASE WHEN i % 5 = 0 THEN 1 ELSE 0 END, i % 7, CURRENT_TIMESTAMP
    FROM {series}
"""
FINAL_LABELS = """
    INSERT INTO resolutions (clip_id, project_id, label, method, created_at, updated_at)
    SELECT id, project_id, 'yes', 'imported', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP
    FROM clips WHERE id % 10 = 0
"""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def big_queue(request: pytest.FixtureRequest) -> Iterator[tuple[Database, int, int]]:
    """A project of 20,000 clips (k = 2, some with an annotation, a tenth with a final label)."""
    db = Database.from_url(request.getfixturevalue(f"{request.param}_url"))
    upgrade(db)
    with db.write() as s:
        project_id = create_project(s, name="plans", classes=["yes", "no"], annotations_per_clip=2).id
        user_id = add_user(s, name="ana", role="annotator").id
        if db.is_sqlite:
            series = (
                f"(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {N_CLIPS}) "
                "SELECT i FROM n)"
            )
            sha = "printf('%064d', i)"
        else:
            series = f"generate_series(1, {N_CLIPS}) AS i"
            sha = "lpad(i::text, 64, '0')"
        s.execute(text(CLIP_ROWS.format(sha=sha, series=series)), {"p": project_id})
        s.execute(text(FINAL_LABELS))
    with db.engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    yield db, project_id, user_id
    db.dispose()


def _sent_by_next_clip(db: Database, project_id: int, user_id: int, order: str) -> list[tuple[str, Any]]:
    with db.write() as s:
        apply_settings(s, project_id, {"settings": {"queue_order": order}})
    sent: list[tuple[str, Any]] = []

    def keep(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        sent.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", keep)
    try:
        with db.write() as s:
            assert next_clip(s, project_id, user_id) is not None
    finally:
        event.remove(db.engine, "before_cursor_execute", keep)
    return sent


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _generic_plan(db: Database, statement: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """PostgreSQL's generic plan of ``statement`` (``%(name)s`` parameters), as a prepared statement
    runs it once the server stops planning it for each call's values."""
    psycopg = pytest.importorskip("psycopg")
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    prepared = re.sub(r"%\((\w+)\)s", number, statement)
    raw = db.engine.raw_connection()
    try:
        cur = psycopg.ClientCursor(raw.driver_connection)  # it writes the values into EXECUTE
        cur.execute("SET plan_cache_mode = force_generic_plan")
        cur.execute(f"PREPARE handout AS {prepared}")
        args = ", ".join(cur.mogrify("%s", (parameters[n],)) for n in names)
        cur.execute(f"EXPLAIN (FORMAT JSON) EXECUTE handout({args})")
        plan = cur.fetchone()[0]
        raw.rollback()
    finally:
        raw.close()
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]


@pytest.mark.parametrize("order", list(WALKS))
def test_the_hand_out_walks_its_order_index_without_sorting(big_queue, order):
    db, project_id, user_id = big_queue
    sent = _sent_by_next_clip(db, project_id, user_id, order)
    if db.is_sqlite:
        # The candidate query: ordered, one row, not the annotator's own claims.
        (candidate, params) = next(
            (sql, p) for sql, p in sent if "LIMIT" in sql and "JOIN claims" not in sql and "ORDER BY" in sql
        )
        with db.engine.connect() as conn:
            plan = [row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {candidate}", params)]
        assert any(f"USING INDEX {WALKS[order]}" in step for step in plan), plan
        assert not any("TEMP B-TREE" in step for step in plan), plan
        return
    ((statement, params),) = [(sql, p) for sql, p in sent if "WITH" in sql]  # the one-statement hand-out
    plan = _generic_plan(db, statement, params)
    (cand,) = [node for node in _nodes(plan) if node.get("Subplan Name") == "CTE cand"]
    under = list(_nodes(cand))
    scans = [n.get("Index Name") for n in under if n["Node Type"] in ("Index Scan", "Index Only Scan")]
    assert WALKS[order] in scans, json.dumps(cand, indent=1)
    assert not [n for n in under if n["Node Type"] in ("Sort", "Incremental Sort")], json.dumps(
        cand, indent=1
    )
