"""The blind k-overlap labeling queue: :func:`next_clip` hands an annotator the next clip to label.

Each clip needs ``annotations_needed`` (the project's k) annotations from different people. An
annotator is offered a clip they have not labelled that still needs labels, in the project's queue
order (:mod:`labeling.data.queue_order`: by default clips without a final label first, then fewest
annotations, the highest ``priority``, the oldest). Handing a clip out writes a *claim* (a lease, ten
minutes unless the project's ``lease_seconds`` says otherwise); claims held by others count against
a clip's remaining slots, so k people are not all sent to the last one, and expired claims simply stop
counting. Asking again while a claim is live returns the same clip (a page refresh loses nothing).
:func:`skip_clip` hides a clip from the skipper for a while without holding a slot.

Call :func:`next_clip` inside a write transaction (``ws.db.write()``): on SQLite that is
``BEGIN IMMEDIATE``, which serialises queue writers; on PostgreSQL the candidate row is taken with
``FOR UPDATE SKIP LOCKED`` so concurrent annotators pass each other instead of queueing. The scan
walks the order's partial index (``ix_clips_open…``, open clips only) in queue order and stops at the
first eligible clip, so the cost does not grow with the number of clips. The scored (active-learning)
orders walk ``ix_clip_queue_open`` of the narrow ``clip_queue`` instead, where the scoring job writes
their priorities, and check each candidate's clip row as the other orders do.

On PostgreSQL the whole hand-out is one statement (:func:`_pg_next_statement`): it checks the
project's queue settings against the ones this process last read, forgets the annotator's expired
claims, renews and returns their live claim or locks the next candidate and writes its lease. Every
lease raises the clip's ``lease_seq``, and the candidate query passes over a clip whose counter moved
since the statement's snapshot: the row lock re-reads a row a competitor changed, but not the claims
table, so a lease committed by someone else after the snapshot would otherwise go uncounted. The
statement is rendered once per process and sent as SQL (:func:`db.engine.execute_once`), which
saves the client SQLAlchemy's work per call.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    and_,
    bindparam,
    delete,
    exists,
    false,
    func,
    literal_column,
    null,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter

from db.engine import execute_once
from db.models import Annotation, Claim, Clip, ClipQueue, Project, utcnow
from labeling.data.queue_order import DEFAULT_QUEUE_ORDER, QUEUE_ORDERS, queue_order
from labeling.platform.audit import record_many

DEFAULT_LEASE_S = 600
DEFAULT_SKIP_S = 24 * 3600


@dataclass(frozen=True)
class QueueItem:
    """A clip handed to one annotator, and until when it is theirs."""

    clip_id: int
    project_id: int
    annotation_count: int
    annotations_needed: int
    priority: int
    expires_at: datetime
    resumed: bool  # True when this is the annotator's own live claim handed back again


@dataclass(frozen=True)
class Progress:
    """One annotator's progress in a project."""

    done: int
    today: int
    median_seconds: float | None
    open_clips: int


def _seconds(settings: dict | None, key: str, default: int) -> int:
    value = (settings or {}).get(key, default)
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return default


def lease_seconds(settings: dict | None) -> int:
    """A project's lease length (``settings["lease_seconds"]``, default ten minutes)."""
    return _seconds(settings, "lease_seconds", DEFAULT_LEASE_S)


# Statements are built once with bound parameters: the queue runs on every page view, and building
# SQLAlchemy expressions costs more than PostgreSQL or SQLite take to answer them.
_P: BindParameter[int] = bindparam("project_id")
_U: BindParameter[int] = bindparam("user_id")
_NOW: BindParameter[datetime] = bindparam("now", type_=Claim.__table__.c.expires_at.type)
_EXPIRES: BindParameter[datetime] = bindparam("expires", type_=Claim.__table__.c.expires_at.type)
_OPEN = and_(
    # Written exactly as the partial indexes' predicate, so both engines can use them.
    Clip.project_id == _P,
    Clip.annotation_count < Clip.annotations_needed,
    Clip.deleted_at.is_(None),
)
#: The same predicate on ``clip_queue``, as its partial index ``ix_clip_queue_open`` is written.
_QUEUED = and_(
    ClipQueue.project_id == _P,
    ClipQueue.annotation_count < ClipQueue.annotations_needed,
    ClipQueue.deleted_at.is_(None),
)
_MINE = exists().where(Annotation.clip_id == Clip.id, Annotation.annotator_id == _U)
_COLUMNS = (Clip.id, Clip.annotation_count, Clip.annotations_needed, Clip.priority)


def _select_clips(order: str) -> Select:
    """SELECT id, annotation_count, annotations_needed, priority of the clips queue order ``order``
    hands out: from ``clips``, or for a scored order from ``clip_queue`` (its priority is the scoring
    job's) joined to ``clips``, whose columns the caller checks again (under a row lock on PostgreSQL
    those are the newest values; ``clip_queue``'s are the statement's snapshot)."""
    if not QUEUE_ORDERS[order].sorts_clip_queue:
        return select(*_COLUMNS)
    return (
        select(Clip.id, Clip.annotation_count, Clip.annotations_needed, ClipQueue.priority)
        .select_from(ClipQueue)
        .join(Clip, Clip.id == ClipQueue.clip_id)
        .where(_QUEUED)
    )


def _own_claim(order: str) -> Select:
    """The annotator's live claims on open clips they have not labelled, newest first."""
    return (
        _select_clips(order)
        .join(Claim, Claim.clip_id == Clip.id)
        .where(Claim.user_id == _U, Claim.expires_at > _NOW, Claim.skipped_at.is_(None), _OPEN, ~_MINE)
        .order_by(Claim.claimed_at.desc())
    )


def candidate_query(order: str = DEFAULT_QUEUE_ORDER) -> Select:
    """The next eligible clip in queue order ``order`` for ``:user_id`` in ``:project_id`` at ``:now``.

    One row (id, annotation_count, annotations_needed, priority) or none. The scan walks the order's
    index (:data:`labeling.data.queue_order.QUEUE_ORDERS`: a partial index of ``clips``, or
    ``ix_clip_queue_open`` for the scored orders) and stops at the first eligible clip.
    """
    skipped = exists().where(
        Claim.clip_id == Clip.id,
        Claim.user_id == _U,
        Claim.skipped_at.is_not(None),
        Claim.expires_at > _NOW,
    )
    held_by_others = (
        select(func.count())
        .select_from(Claim)
        .where(
            Claim.clip_id == Clip.id,
            Claim.user_id != _U,
            Claim.expires_at > _NOW,
            Claim.skipped_at.is_(None),
        )
        .scalar_subquery()
    )
    return (
        _select_clips(order)
        .where(_OPEN, ~_MINE, ~skipped, Clip.annotation_count + held_by_others < Clip.annotations_needed)
        .order_by(*QUEUE_ORDERS[order].keys)
        .limit(1)
    )


_SETTINGS = select(Project.settings).where(Project.id == _P)


@dataclass(frozen=True)
class _Statements:
    forget_expired: Any
    own_claim: Any
    renew: Any
    candidate: Any
    claim: Any
    bump: Any


@cache
def _statements(dialect: str, order: str = DEFAULT_QUEUE_ORDER) -> _Statements:
    pg = dialect == "postgresql"
    candidate = candidate_query(order)
    upsert = (postgresql if pg else sqlite).insert(Claim)
    return _Statements(
        forget_expired=delete(Claim).where(Claim.user_id == _U, Claim.expires_at <= _NOW),
        own_claim=_own_claim(order).limit(1),
        renew=update(Claim)
        .where(Claim.clip_id == bindparam("b_clip_id"), Claim.user_id == bindparam("b_user_id"))
        .values(expires_at=bindparam("b_expires_at")),
        candidate=candidate,
        claim=upsert.on_conflict_do_update(
            index_elements=[Claim.clip_id, Claim.user_id],
            set_={
                "claimed_at": upsert.excluded.claimed_at,
                "expires_at": upsert.excluded.expires_at,
                "skipped_at": upsert.excluded.skipped_at,
            },
        ),
        bump=update(Clip).where(Clip.id == bindparam("clip_id")).values(lease_seq=Clip.lease_seq + 1),
    )


def next_clip(
    s: Session,
    project_id: int,
    user_id: int,
    *,
    lease_s: int | None = None,
    now: datetime | None = None,
) -> QueueItem | None:
    """Claim the next clip for ``user_id`` (or hand back their live claim); None when nothing is left.

    Run it in a write transaction of its own; the claim is part of it. On PostgreSQL that
    transaction commits asynchronously (see below), so do not add writes that must be durable.
    """
    conn = s.connection()
    now = now or utcnow()
    if conn.dialect.name == "postgresql":
        return _next_clip_pg(conn, project_id, user_id, lease_s, now)
    settings = conn.execute(_SETTINGS, {"project_id": project_id}).first()
    if settings is None:
        raise LookupError(f"no project {project_id}")
    sql = _statements(conn.dialect.name, queue_order(settings[0]).name)
    expires = now + timedelta(seconds=lease_s if lease_s is not None else lease_seconds(settings[0]))
    params = {"project_id": project_id, "user_id": user_id, "now": now}
    conn.execute(sql.forget_expired, params)
    own = conn.execute(sql.own_claim, params).first()
    if own is not None:
        conn.execute(sql.renew, {"b_clip_id": own.id, "b_user_id": user_id, "b_expires_at": expires})
        return QueueItem(
            own.id, project_id, own.annotation_count, own.annotations_needed, own.priority, expires, True
        )
    row = _take_candidate(conn, sql, params)
    if row is None:
        return None
    conn.execute(
        sql.claim,
        {
            "clip_id": row.id,
            "user_id": user_id,
            "claimed_at": now,
            "expires_at": expires,
            "skipped_at": None,
        },
    )
    return QueueItem(
        row.id, project_id, row.annotation_count, row.annotations_needed, row.priority, expires, False
    )


def _take_candidate(conn: Any, sql: _Statements, params: dict) -> Any:
    """The next eligible clip (SQLite: ``BEGIN IMMEDIATE`` means no other writer ran since this
    transaction began, so what the query sees still holds when the claim is written)."""
    return conn.execute(sql.candidate, params).first()


#: (database, project id) -> (``settings->>'queue_order'``, ``settings->>'lease_seconds'`` as
#: PostgreSQL reads them, the queue order's name, the lease length) as this process last read them.
#: The hand-out statement compares the first two with the project row and does nothing when they
#: moved. Keyed by database too: one process may serve several, and their project ids overlap.
_SEEN: dict[tuple[str, int], tuple[str | None, str | None, str, int]] = {}
_ORDER_RAW = Project.settings["queue_order"].as_string()
_LEASE_RAW = Project.settings["lease_seconds"].as_string()
_SETTINGS_PG = select(Project.settings, _ORDER_RAW, _LEASE_RAW).where(Project.id == _P)


#: The hand-out statement's own names for the project and the annotator: SQLAlchemy reads execution
#: parameters named like a column as values to SET in an UPDATE, also in an UPDATE inside a WITH, and
#: the statement updates claims (``user_id``) and clips (``project_id``).
_PG_NAMES = {"project_id": "q_project", "user_id": "q_user"}
_QP: BindParameter[int] = bindparam("q_project", type_=Integer)
_QU: BindParameter[int] = bindparam("q_user", type_=Integer)


def _pg_named(stmt: Any) -> Any:
    """``stmt`` with its project and annotator parameters renamed as in :data:`_PG_NAMES`."""

    def swap(element: Any, **_: Any) -> Any:
        if isinstance(element, BindParameter) and element.key in _PG_NAMES:
            return bindparam(_PG_NAMES[element.key], type_=element.type)
        return None

    return visitors.replacement_traverse(stmt, {}, swap)


#: LIMIT 1 written into the SQL rather than bound: psycopg prepares the statement after a few calls,
#: and PostgreSQL's generic plan for a bound LIMIT expects a tenth of the rows and sorts every open
#: clip of the project instead of walking the queue order's index to the first eligible one.
_ONE: Any = literal_column("1")


@cache
def _pg_next_statement(order: str) -> Any:
    """The hand-out on PostgreSQL as one statement, for queue order ``order``.

    One row when the project exists: ``fresh`` (False when the cached settings moved: nothing was
    written), then the clip (id, annotation_count, annotations_needed, priority, resumed), all NULL
    when nothing is left. The statement also turns synchronous commit off for its transaction: a
    claim is a lease, and losing the last few to a server crash only returns clips to the queue.
    """
    fresh = (
        select(
            and_(
                _ORDER_RAW.is_not_distinct_from(bindparam("order_raw")),
                _LEASE_RAW.is_not_distinct_from(bindparam("lease_raw")),
            ).label("fresh")
        )
        .where(Project.id == _QP)
        .cte("fresh")
    )
    go = select(fresh.c.fresh).scalar_subquery()
    own = _pg_named(_own_claim(order).where(go).limit(_ONE)).cte("own")
    renew = (
        update(Claim)
        .where(Claim.clip_id == select(own.c.id).scalar_subquery(), Claim.user_id == _QU)
        .values(expires_at=_EXPIRES)
        .returning(Claim.clip_id)
        .cte("renew")
    )
    # The same clip as this statement's snapshot saw it: under the row lock, ``Clip`` is the newest
    # version, while this subquery still reads the snapshot. The counter only grows, so "not above"
    # is "unchanged"; written as an inequality, the planner does not take it for a filter that leaves
    # one row in a thousand, which made its prepared (generic) plan sort every open clip.
    seen = aliased(Clip)
    unchanged = Clip.lease_seq <= select(seen.lease_seq).where(seen.id == Clip.id).scalar_subquery()
    cand = (
        _pg_named(candidate_query(order))
        .limit(_ONE)
        .where(go, ~exists(select(own.c.id)), unchanged)
        .with_for_update(skip_locked=True, of=Clip)
        .cte("cand")
    )
    bump = (
        update(Clip)
        .where(Clip.id == select(cand.c.id).scalar_subquery())
        .values(lease_seq=Clip.lease_seq + 1)
        .returning(Clip.id)
        .cte("bump")
    )
    upsert = postgresql.insert(Claim)
    take = (
        upsert.from_select(
            ["clip_id", "user_id", "claimed_at", "expires_at", "skipped_at"],
            select(cand.c.id, _QU, _NOW, _EXPIRES, null()),
        )
        .on_conflict_do_update(
            index_elements=[Claim.clip_id, Claim.user_id],
            set_={
                "claimed_at": upsert.excluded.claimed_at,
                "expires_at": upsert.excluded.expires_at,
                "skipped_at": upsert.excluded.skipped_at,
            },
        )
        .returning(Claim.clip_id)
        .cte("take")
    )
    forget = (
        delete(Claim)
        .where(go, Claim.user_id == _QU, Claim.expires_at <= _NOW, Claim.clip_id.not_in(select(cand.c.id)))
        .returning(Claim.clip_id)
        .cte("forget")
    )
    picked = union_all(
        select(own, true().label("resumed")),
        select(cand, false().label("resumed")),
    ).subquery("picked")
    return (
        select(
            fresh.c.fresh,
            picked,
            func.set_config("synchronous_commit", "off", true()).label("sync"),
        )
        .select_from(fresh.outerjoin(picked, true()))
        .add_cte(renew, bump, take, forget)
    )


def _next_clip_pg(
    conn: Any, project_id: int, user_id: int, lease_s: int | None, now: datetime
) -> QueueItem | None:
    """:func:`next_clip` on PostgreSQL: one statement, and a read of the settings when they moved."""
    key = (str(conn.engine.url), project_id)
    for _ in range(3):
        seen = _SEEN.get(key)
        if seen is None:
            row = conn.execute(_SETTINGS_PG, {"project_id": project_id}).first()
            if row is None:
                raise LookupError(f"no project {project_id}")
            seen = (row[1], row[2], queue_order(row[0]).name, lease_seconds(row[0]))
            _SEEN[key] = seen
        order_raw, lease_raw, order, lease_default = seen
        expires = now + timedelta(seconds=lease_s if lease_s is not None else lease_default)
        got = execute_once(
            conn,
            _pg_next_statement,
            order,
            params={
                "q_project": project_id,
                "q_user": user_id,
                "now": now,
                "expires": expires,
                "order_raw": order_raw,
                "lease_raw": lease_raw,
            },
        ).first()
        if got is None or not got.fresh:  # deleted, or its settings changed: read them again
            _SEEN.pop(key, None)
            continue
        if got.id is None:
            return None
        return QueueItem(
            got.id,
            project_id,
            got.annotation_count,
            got.annotations_needed,
            got.priority,
            expires,
            got.resumed,
        )
    raise LookupError(f"project {project_id}'s queue settings keep changing; try again")


def _claim(
    s: Session, project_id: int, user_id: int, clip_id: int, *, now: datetime | None, skip: bool
) -> None:
    """Write ``user_id``'s claim on one clip: a lease (``skip=False``) or a skip."""
    project = s.get(Project, project_id)
    clip = s.get(Clip, clip_id)
    if project is None or clip is None or clip.project_id != project_id:
        raise LookupError(f"no clip {clip_id} in this project")
    now = now or utcnow()
    seconds = (
        _seconds(project.settings, "skip_seconds", DEFAULT_SKIP_S)
        if skip
        else lease_seconds(project.settings)
    )
    conn = s.connection()
    conn.execute(
        _statements(conn.dialect.name).claim,
        {
            "clip_id": clip_id,
            "user_id": user_id,
            "claimed_at": now,
            "expires_at": now + timedelta(seconds=seconds),
            "skipped_at": now if skip else None,
        },
    )
    if not skip and conn.dialect.name == "postgresql":
        conn.execute(_statements(conn.dialect.name).bump, {"clip_id": clip_id})


def skip_clip(
    s: Session,
    project_id: int,
    user_id: int,
    clip_id: int,
    *,
    now: datetime | None = None,
) -> None:
    """Set a clip aside for ``user_id`` (for the project's ``skip_seconds``, a day by default).

    The clip stops counting as theirs, so others may take the slot; the skipper is not offered it
    again until the skip expires.
    """
    _claim(s, project_id, user_id, clip_id, now=now, skip=True)


def hold_clip(
    s: Session, project_id: int, user_id: int, clip_id: int, *, now: datetime | None = None
) -> None:
    """Claim one given clip for ``user_id`` (a lease, as :func:`next_clip` would take), so the next
    :func:`next_clip` hands it back: the label page brings back a clip whose label was just undone."""
    _claim(s, project_id, user_id, clip_id, now=now, skip=False)


def release_claims(s: Session, user_id: int) -> int:
    """Give back every live clip ``user_id`` holds (on sign-out), keeping their skips."""
    result = s.execute(delete(Claim).where(Claim.user_id == user_id, Claim.skipped_at.is_(None)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def set_priority(
    s: Session,
    project_id: int,
    clip_ids: Iterable[int],
    priority: int,
    *,
    actor_id: int | None = None,
) -> int:
    """Move clips up (or down) the queue; higher priority is labelled first among equally-labelled clips
    (in the queue orders that use priority: not ``random``)."""
    ids = sorted({int(c) for c in clip_ids})
    changed = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        before = s.execute(
            select(Clip.id, Clip.priority).where(
                Clip.project_id == project_id, Clip.id.in_(chunk), Clip.priority != int(priority)
            )
        ).all()
        if not before:
            continue
        s.execute(update(Clip).where(Clip.id.in_([r.id for r in before])).values(priority=int(priority)))
        record_many(
            s,
            (
                {
                    "entity": "clip",
                    "entity_id": r.id,
                    "action": "update",
                    "old": {"priority": r.priority},
                    "new": {"priority": int(priority)},
                }
                for r in before
            ),
            actor_id=actor_id,
            project_id=project_id,
        )
        changed += len(before)
    return changed


def progress(s: Session, project_id: int, user_id: int, *, now: datetime | None = None) -> Progress:
    """How much ``user_id`` has labelled in this project (in all, today), and how many clips are still
    open for them (needing labels, not labelled or skipped by them)."""
    now = now or utcnow()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    mine = (Annotation.project_id == project_id) & (Annotation.annotator_id == user_id)
    done, today = s.execute(
        select(func.count(), func.count().filter(Annotation.created_at >= midnight)).where(mine)
    ).one()
    times = sorted(
        int(t or 0)
        for t in s.scalars(
            select(Annotation.time_spent_ms)
            .where(mine, Annotation.time_spent_ms.is_not(None))
            .order_by(Annotation.id.desc())
            .limit(200)
        )
    )
    median = times[len(times) // 2] / 1000 if times else None
    # Open for this annotator: clips that still need labels, that they have not labelled and have
    # not set aside (what the queue could still hand them), not everyone's remaining work.
    set_aside = exists().where(
        Claim.clip_id == Clip.id,
        Claim.user_id == _U,
        Claim.skipped_at.is_not(None),
        Claim.expires_at > _NOW,
    )
    open_clips = (
        s.scalar(
            select(func.count()).select_from(Clip).where(_OPEN, ~_MINE, ~set_aside),
            {"project_id": project_id, "user_id": user_id, "now": now},
        )
        or 0
    )
    return Progress(done=int(done), today=int(today), median_seconds=median, open_clips=int(open_clips))
