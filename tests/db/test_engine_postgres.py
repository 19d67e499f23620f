"""The PostgreSQL engine's pool: a connection in steady use goes straight to work, one that sat idle is
checked first and replaced when the server has closed it."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select, text

import db.engine as engine_module
from db.engine import Database
from db.models import Annotation, AuditEvent
from labeling.annotate.annotations import submit_annotation
from labeling.annotate.queue import next_clip
from labeling.data.projects import create_project
from labeling.platform.auth import add_user
from tests.db.test_queue import add_clips, two_annotators

pytestmark = pytest.mark.postgres

PQTRACE_SUPPRESS_TIMESTAMPS = 1
PQTRACE_REGRESS_MODE = 2


@contextmanager
def wire(db: Database) -> Iterator[list[str]]:
    """What the client sends to the server inside the block, as libpq traces it: one entry per message
    that waits for an answer (a simple ``Query`` with its text, or ``Sync`` closing a statement sent in
    the extended protocol), so one entry per trip. The pool must hold one connection."""
    with db.engine.connect() as conn:
        pgconn = conn.connection.driver_connection.pgconn  # type: ignore[union-attr]
    sent: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace"
        with path.open("w") as out:
            pgconn.trace(out.fileno())
            pgconn.set_trace_flags(PQTRACE_SUPPRESS_TIMESTAMPS | PQTRACE_REGRESS_MODE)
            try:
                yield sent
            finally:
                pgconn.untrace()
        for line in path.read_text().splitlines():
            parts = line.split("\t")
            if parts[0] == "F" and parts[2] == "Query":
                sent.append(parts[3].strip().strip('"'))
            elif parts[0] == "F" and parts[2] == "Sync":
                sent.append("statement")


@pytest.fixture
def queue(migrated_postgres_url: str) -> Iterator[tuple[Database, int, list[int]]]:
    with two_annotators(migrated_postgres_url, clips=8, pool_size=1, max_overflow=0) as made:
        yield made


def test_a_busy_connection_is_not_pinged_before_each_transaction(queue):
    db, project_id, users = queue
    for i in range(4):  # warm up: the queue settings are read, the first submit queues its refreshes
        with db.write() as s:
            item = next_clip(s, project_id, users[i % 2])
        assert item is not None
        with db.write() as s:
            submit_annotation(s, project_id, users[i % 2], item.clip_id, label="yes")
    with wire(db) as sent:
        with db.write() as s:
            item = next_clip(s, project_id, users[0])
        assert item is not None
    assert sent == ["BEGIN", "statement", "COMMIT"]
    with wire(db) as sent, db.write() as s:
        assert submit_annotation(s, project_id, users[0], item.clip_id, label="no").status == "created"
    assert sent == ["BEGIN", "statement", "statement", "COMMIT"]


def test_an_idle_connection_the_server_closed_is_replaced_unnoticed(queue, postgres_admin, monkeypatch):
    db, project_id, users = queue
    with db.read() as s:
        first = s.scalar(text("SELECT pg_backend_pid()"))
    with postgres_admin.connect() as admin:  # the server ends the session, as a restart would
        admin.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": first})
    monkeypatch.setattr(engine_module, "PING_IDLE_S", 0.0)  # it has been idle long enough
    with db.write() as s:
        item = next_clip(s, project_id, users[0])
        second = s.scalar(text("SELECT pg_backend_pid()"))
    assert item is not None
    assert second != first


def test_a_connection_that_sat_idle_is_pinged_first(queue, monkeypatch):
    db, project_id, users = queue
    with db.write() as s:
        assert next_clip(s, project_id, users[0]) is not None
    monkeypatch.setattr(engine_module, "PING_IDLE_S", 0.0)  # every connection has been idle long enough
    with wire(db) as sent, db.write() as s:
        assert next_clip(s, project_id, users[0]) is not None
    assert len(sent) == 4
    assert sent[0] not in ("BEGIN", "statement")  # the ping, before the transaction
    assert sent[1:] == ["BEGIN", "statement", "COMMIT"]


def test_a_submit_stores_everything_the_annotator_chose(migrated_postgres_url):
    db = Database.from_url(migrated_postgres_url)
    try:
        with db.write() as s:
            project = create_project(
                s,
                name="chosen",
                task_kind="both",
                classes=["yes", "no"],
                tag_groups={"noise": ["car", "wind"]},
                annotations_per_clip=2,
            )
            user = add_user(s, name="ana", role="annotator").id
            add_clips(s, project.id, 8, k=2)
        for _ in range(6):  # the same submit, repeated often enough for the driver to prepare it
            with db.write() as s:
                item = next_clip(s, project.id, user)
            assert item is not None
            with db.write() as s:
                result = submit_annotation(
                    s,
                    project.id,
                    user,
                    item.clip_id,
                    label="no",
                    transcript="  two   cars ",
                    tags=["noise:wind", "noise:car"],
                    unsure=True,
                    time_spent_ms=1234,
                    idempotency_key=f"key-{item.clip_id}",
                )
            assert result.status == "created"
            with db.read() as s:
                stored = s.get(Annotation, result.annotation_id)
                assert stored is not None
                assert (
                    stored.label,
                    stored.transcript,
                    stored.tags,
                    stored.unsure,
                    stored.time_spent_ms,
                ) == (
                    "no",
                    "two cars",
                    ["noise:wind", "noise:car"],
                    True,
                    1234,
                )
                assert stored.created_at.tzinfo is not None
                event = s.scalars(
                    select(AuditEvent).where(
                        AuditEvent.entity == "annotation", AuditEvent.entity_id == str(result.annotation_id)
                    )
                ).one()
                assert event.new["tags"] == ["noise:wind", "noise:car"]
                assert event.new["label"] == "no"
                assert event.actor_id == user
        with db.write() as s:  # a repeat of the last one
            again = submit_annotation(
                s,
                project.id,
                user,
                item.clip_id,
                label="no",
                transcript="x",
                idempotency_key=f"key-{item.clip_id}",
            )
        assert again.status == "duplicate"
    finally:
        db.dispose()
