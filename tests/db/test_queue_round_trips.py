"""On PostgreSQL the label page's two calls cost a fixed, small number of trips to the server.

A trip is a statement the driver sends (SQLAlchemy's ``before_cursor_execute``) or a BEGIN or COMMIT.
Handing out a clip is one statement inside its transaction; a submit is one read and one write. The
counts are what a user on a distant database server feels, whatever the machine's load.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import event, select, text

import labeling.job_kinds  # noqa: F401  (registers the report-refreshing kinds a submit queues)
from db.engine import Database
from db.models import Annotation, AuditEvent, Claim, Clip, utcnow
from labeling.annotate.annotations import submit_annotation
from labeling.annotate.queue import next_clip
from labeling.data.projects import update_project
from tests.db.test_queue import two_annotators

pytestmark = pytest.mark.postgres


class Trips:
    """Counts statements, BEGINs and COMMITs sent by one engine."""

    def __init__(self, db: Database) -> None:
        self.sent: list[str] = []
        event.listen(db.engine, "before_cursor_execute", self._statement)
        event.listen(db.engine, "begin", lambda conn: self.sent.append("BEGIN"))
        event.listen(db.engine, "commit", lambda conn: self.sent.append("COMMIT"))

    def _statement(self, conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        self.sent.append(statement.split(None, 1)[0].upper())

    def take(self) -> list[str]:
        sent, self.sent = self.sent, []
        return sent


@pytest.fixture
def queue(migrated_postgres_url: str) -> Iterator[tuple[Database, int, list[int]]]:
    with two_annotators(migrated_postgres_url, clips=6) as made:
        yield made


def test_next_clip_is_one_statement_and_submit_two(queue):
    db, project_id, (alice, bob) = queue
    trips = Trips(db)
    with db.write() as s:  # this process has not read the project's queue settings yet
        first = next_clip(s, project_id, alice)
    assert first is not None
    assert trips.take() == ["BEGIN", "SELECT", "WITH", "COMMIT"]

    with db.write() as s:  # a refresh of the page: the same clip, its lease renewed
        again = next_clip(s, project_id, alice)
    assert again is not None
    assert again.clip_id == first.clip_id
    assert again.resumed
    assert trips.take() == ["BEGIN", "WITH", "COMMIT"]

    with db.write() as s:
        bobs = next_clip(s, project_id, bob)
    assert bobs is not None
    assert not bobs.resumed
    assert trips.take() == ["BEGIN", "WITH", "COMMIT"]

    with db.write() as s:  # the first submit of the project also queues its report refreshes
        assert submit_annotation(s, project_id, alice, first.clip_id, label="yes", idempotency_key="k1").ok
    assert len(trips.take()) > 4

    for user, item, key in ((bob, bobs, "k2"), (alice, None, "k3")):
        if item is None:
            with db.write() as s:
                item = next_clip(s, project_id, user)
            assert item is not None
            assert trips.take() == ["BEGIN", "WITH", "COMMIT"]
        with db.write() as s:
            result = submit_annotation(s, project_id, user, item.clip_id, label="no", idempotency_key=key)
        assert result.status == "created"
        assert trips.take() == ["BEGIN", "SELECT", "WITH", "COMMIT"]

    with db.write() as s:  # a double click: answered from the read alone
        repeat = submit_annotation(s, project_id, alice, first.clip_id, label="yes", idempotency_key="k1")
    assert repeat.status == "duplicate"
    assert trips.take() == ["BEGIN", "SELECT", "COMMIT"]

    # Asked often, the hand-out is a prepared statement on the server (psycopg prepares a query after
    # five executions on a connection), so it is no longer planned on every call.
    for _ in range(6):
        with db.write() as s:
            assert next_clip(s, project_id, bob) is not None
        assert trips.take() == ["BEGIN", "WITH", "COMMIT"]
    with db.write() as s:
        prepared = s.scalars(text("SELECT statement FROM pg_prepared_statements")).all()
    assert any(p.lstrip().startswith("WITH fresh AS") for p in prepared)

    # What the one-statement write stored: the annotation, the count, no claim left, the audit event.
    with db.read() as s:
        stored = s.scalars(select(Annotation).where(Annotation.project_id == project_id)).all()
        assert len(stored) == 3
        for clip_id in {a.clip_id for a in stored}:
            count = s.scalar(select(Clip.annotation_count).where(Clip.id == clip_id))
            assert count == sum(1 for a in stored if a.clip_id == clip_id)
        assert (
            s.scalar(select(Claim.clip_id).where(Claim.user_id == alice, Claim.skipped_at.is_(None))) is None
        )
        created = s.scalars(
            select(AuditEvent).where(AuditEvent.entity == "annotation", AuditEvent.action == "create")
        ).all()
        assert sorted(int(e.entity_id) for e in created) == sorted(a.id for a in stored)
        assert {e.new["label"] for e in created} == {"yes", "no"}


def test_a_changed_lease_length_applies_to_the_next_hand_out(queue):
    db, project_id, (alice, bob) = queue
    with db.write() as s:
        first = next_clip(s, project_id, alice)
    assert first is not None
    now = utcnow()
    assert first.expires_at - now > timedelta(minutes=9)  # the default lease: ten minutes
    with db.write() as s:
        update_project(s, project_id, settings={"lease_seconds": 60})
    with db.write() as s:
        second = next_clip(s, project_id, bob)
    assert second is not None
    assert second.expires_at - utcnow() < timedelta(seconds=61)


def test_an_expired_lease_returns_the_clip_to_the_queue(queue):
    db, project_id, (alice, bob) = queue
    with db.write() as s:
        update_project(s, project_id, annotations_per_clip=1)
    with db.write() as s:
        held = next_clip(s, project_id, alice)
    assert held is not None
    with db.write() as s:
        others = next_clip(s, project_id, bob)
    assert others is not None
    assert others.clip_id != held.clip_id
    later = utcnow() + timedelta(minutes=11)
    with db.write() as s:
        # Bob's own lease has run out too: his claim is forgotten and the first open clip is his.
        after = next_clip(s, project_id, bob, now=later)
    assert after is not None
    assert after.clip_id == held.clip_id
    assert not after.resumed
