"""Sixteen annotators in separate processes follow the queue: every clip it hands out is theirs.

``next_clip`` reserves a slot with a lease; while the lease lives, the annotator's submit of that clip
must be accepted, however many others ask for clips at the same moment.
"""

from __future__ import annotations

import sys
import traceback
import types
from collections import Counter

from sqlalchemy import func, select

from db.engine import Database
from db.models import Annotation, Clip
from labeling.annotate.annotations import submit_annotation
from labeling.annotate.queue import next_clip
from labeling.data.projects import create_project
from labeling.platform.auth import add_user
from tests.conftest import child_processes, migrate
from tests.db.test_queue import add_clips

K = 3
WORKERS = 16
SUBMITS = 40
# Two spare clips per worker: clips still fill to k (the queue finishes nearly full clips first, which
# is where the race was), but a worker never finds every open slot its own or held by others' leases,
# so each of them gets all its hand-outs however the machine schedules them.
N_CLIPS = WORKERS * SUBMITS // K + 2 * WORKERS


def _follow_queue(url: str, project_id: int, user_id: int, barrier, out) -> None:
    outcomes: list[tuple[int, str]] = []
    errors: list[str] = []
    db = Database.from_url(url)
    try:
        barrier.wait(timeout=120)
        for _ in range(SUBMITS):
            with db.write() as s:
                item = next_clip(s, project_id, user_id)
            if item is None:
                break
            with db.write() as s:
                r = submit_annotation(
                    s,
                    project_id,
                    user_id,
                    item.clip_id,
                    label="yes",
                    idempotency_key=f"u{user_id}-c{item.clip_id}",
                )
            outcomes.append((item.clip_id, r.status))
    except Exception:
        errors.append(traceback.format_exc())
    finally:
        db.dispose()
        out.put((outcomes, errors))


def test_a_clip_handed_out_is_accepted_under_sixteen_workers(migrated_db_url, monkeypatch):
    db_url = migrated_db_url
    migrate(db_url)  # SQLite: a copy of a migrated file; PostgreSQL: a copy already at head
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    db = Database.from_url(db_url)
    with db.write() as s:
        project = create_project(s, name="handout", classes=["yes", "no"], annotations_per_clip=K)
        users = [add_user(s, name=f"a{i}", role="annotator").id for i in range(WORKERS)]
        add_clips(s, project.id, N_CLIPS, k=K)
    ctx = child_processes("tests.db.test_queue_handout")
    barrier = ctx.Barrier(WORKERS)
    out = ctx.Queue()
    procs = [ctx.Process(target=_follow_queue, args=(db_url, project.id, uid, barrier, out)) for uid in users]
    for p in procs:
        p.start()
    reports = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert [e for _, errs in reports for e in errs] == []
    statuses = Counter(status for outcomes, _ in reports for _, status in outcomes)
    assert statuses == Counter({"created": WORKERS * SUBMITS})
    with db.read() as s:
        over = s.scalar(
            select(func.count()).select_from(Clip).where(Clip.annotation_count > Clip.annotations_needed)
        )
        stored = s.scalar(select(func.count()).select_from(Annotation))
    assert over == 0
    assert stored == WORKERS * SUBMITS
    db.dispose()
