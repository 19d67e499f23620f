"""The audit log: :func:`record` and :func:`record_many`, always inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from db.models import AuditEvent, utcnow


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def record(
    s: Session,
    *,
    entity: str,
    entity_id: object,
    action: str,
    old: Mapping[str, Any] | None = None,
    new: Mapping[str, Any] | None = None,
    actor_id: int | None = None,
    project_id: int | None = None,
) -> None:
    """Write one audit event in the session's current transaction."""
    record_many(
        s,
        [dict(entity=entity, entity_id=entity_id, action=action, old=old, new=new)],
        actor_id=actor_id,
        project_id=project_id,
    )


def record_many(
    s: Session,
    events: Iterable[Mapping[str, Any]],
    *,
    actor_id: int | None = None,
    project_id: int | None = None,
) -> int:
    """Write many events at once (keys: entity, entity_id, action, old, new)."""
    now = utcnow()
    rows = [
        {
            "entity": e["entity"],
            "entity_id": str(e["entity_id"]),
            "action": e["action"],
            "old": _jsonable(e.get("old")),
            "new": _jsonable(e.get("new")),
            "actor_id": e.get("actor_id", actor_id),
            "project_id": e.get("project_id", project_id),
            "created_at": now,
        }
        for e in events
    ]
    if rows:
        s.execute(insert(AuditEvent), rows)
    return len(rows)


def audit_frame(
    s: Session, *, project_id: int | None = None, entity: str | None = None, limit: int = 500
) -> pd.DataFrame:
    """The most recent audit events, newest first."""
    q = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if project_id is not None:
        q = q.where(AuditEvent.project_id == project_id)
    if entity is not None:
        q = q.where(AuditEvent.entity == entity)
    rows = [
        {
            "id": e.id,
            "at": e.created_at,
            "actor_id": e.actor_id,
            "entity": e.entity,
            "entity_id": e.entity_id,
            "action": e.action,
            "old": e.old,
            "new": e.new,
        }
        for e in s.scalars(q)
    ]
    return pd.DataFrame(rows, columns=["id", "at", "actor_id", "entity", "entity_id", "action", "old", "new"])
