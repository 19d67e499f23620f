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
first eligible clip, so the cost does not grow with the number of clips.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Select, and_, bindparam, delete, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from db.models import Annotation, Claim, Clip, Project, utcnow
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
_NOW: BindParameter[datetime] = bindparam("now")
_OPEN = and_(
    # Written exactly as the partial indexes' predicate, so both engines can use them.
    Clip.project_id == _P,
    Clip.annotation_count < Clip.annotations_needed,
    Clip.deleted_at.is_(None),
)
_MINE = exists().where(Annotation.clip_id == Clip.id, Annotation.annotator_id == _U)
_COLUMNS = (Clip.id, Clip.annotation_count, Clip.annotations_needed, Clip.priority)


def candidate_query(order: str = DEFAULT_QUEUE_ORDER) -> Select:
    """The next eligible clip in queue order ``order`` for ``:user_id`` in ``:project_id`` at ``:now``.

    One row (id, annotation_count, annotations_needed, priority) or none.
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
        select(*_COLUMNS)
        .where(_OPEN, ~_MINE, ~skipped, Clip.annotation_count + held_by_others < Clip.annotations_needed)
        .order_by(*QUEUE_ORDERS[order].keys)
        .limit(1)
    )


_SETTINGS = select(Project.settings).where(Project.id == _P)


def _where(stmt: Select[Any]) -> Any:
    """The WHERE clause of ``stmt`` (the candidate query always has one)."""
    assert stmt.whereclause is not None
    return stmt.whereclause


@dataclass(frozen=True)
class _Statements:
    forget_expired: Any
    own_claim: Any
    renew: Any
    candidate: Any
    recheck: Any
    claim: Any


@cache
def _statements(dialect: str, order: str = DEFAULT_QUEUE_ORDER) -> _Statements:
    pg = dialect == "postgresql"
    candidate = candidate_query(order)
    upsert = (postgresql if pg else sqlite).insert(Claim)
    return _Statements(
        forget_expired=delete(Claim).where(Claim.user_id == _U, Claim.expires_at <= _NOW),
        own_claim=select(*_COLUMNS)
        .join(Claim, Claim.clip_id == Clip.id)
        .where(Claim.user_id == _U, Claim.expires_at > _NOW, Claim.skipped_at.is_(None), _OPEN, ~_MINE)
        .order_by(Claim.claimed_at.desc())
        .limit(1),
        renew=update(Claim)
        .where(Claim.clip_id == bindparam("b_clip_id"), Claim.user_id == bindparam("b_user_id"))
        .values(expires_at=bindparam("b_expires_at")),
        candidate=candidate.with_for_update(skip_locked=True, of=Clip) if pg else candidate,
        recheck=select(Clip.id).where(Clip.id == bindparam("clip_id"), _where(candidate)),
        claim=upsert.on_conflict_do_update(
            index_elements=[Claim.clip_id, Claim.user_id],
            set_={
                "claimed_at": upsert.excluded.claimed_at,
                "expires_at": upsert.excluded.expires_at,
                "skipped_at": upsert.excluded.skipped_at,
            },
        ),
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
    settings = conn.execute(_SETTINGS, {"project_id": project_id}).first()
    if settings is None:
        raise LookupError(f"no project {project_id}")
    sql = _statements(conn.dialect.name, queue_order(settings[0]).name)
    now = now or utcnow()
    expires = now + timedelta(seconds=lease_s if lease_s is not None else lease_seconds(settings[0]))
    if conn.dialect.name == "postgresql":
        # A claim is a lease: losing the last few to a server crash only returns clips to the queue,
        # so this transaction need not wait for its WAL flush (PostgreSQL's asynchronous commit;
        # still atomic and consistent).
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
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


_RECHECKS = 50


def _take_candidate(conn: Any, sql: _Statements, params: dict) -> Any:
    """The next eligible clip, locked for this transaction on PostgreSQL.

    On PostgreSQL the candidate query's snapshot is taken before its row lock: a competitor may have
    claimed that clip and committed in between, and the claim lives in another table, so the lock's
    re-check does not see it. Once the row is ours no new claim on it can commit, so a fresh statement
    (READ COMMITTED: a new snapshot) re-counts the claims; a clip that no longer qualifies is passed over
    and the next fresh candidate query, which sees the competitor's claim, finds another.
    """
    row = conn.execute(sql.candidate, params).first()
    if conn.dialect.name != "postgresql":
        return row  # BEGIN IMMEDIATE: no other writer ran since this transaction began
    for _ in range(_RECHECKS):
        if row is None or conn.execute(sql.recheck, {**params, "clip_id": row.id}).first() is not None:
            return row
        row = conn.execute(sql.candidate, params).first()
    return None


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
