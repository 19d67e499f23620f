"""Annotators in separate processes race through the queue; the database keeps every invariant.

Each process plays two annotators who take clips with ``next_clip`` and submit them, sometimes twice
with the same idempotency key (a double click), sometimes straight onto a clip they never claimed (a
script), and all of them start by fighting over the last slot of one clip.
"""

from __future__ import annotations

import random
import sys
import traceback
import types
from collections import Counter

from sqlalchemy import func, insert, select

from db.engine import Database
from db.models import Annotation, Clip, utcnow
from labeling.annotate.annotations import submit_annotation
from labeling.annotate.queue import next_clip
from labeling.data.projects import create_project
from labeling.platform.auth import add_user
from tests.conftest import child_processes, migrate

K = 3
N_CLIPS = 30
PROCESSES = 3
USERS_PER_PROCESS = 2
LABELS = ("yes", "no")


def _annotator(
    url: str, project_id: int, user_ids: list[int], last_slot: int, seed: int, barrier, out
) -> None:
    rng = random.Random(seed)
    results: list[tuple] = []
    errors: list[str] = []
    db = Database.from_url(url)

    def submit(uid: int, cid: int, key: str) -> None:
        with db.write() as s:
            r = submit_annotation(s, project_id, uid, cid, label=rng.choice(LABELS), idempotency_key=key)
        results.append((uid, cid, key, r.status, r.annotation_id))

    try:
        barrier.wait(timeout=60)
        for uid in user_ids:
            submit(uid, last_slot, f"{uid}-last")
        done = set()
        while len(done) < len(user_ids):
            for uid in user_ids:
                if uid in done:
                    continue
                with db.write() as s:
                    item = next_clip(s, project_id, uid)
                if item is None:
                    done.add(uid)
                    continue
                key = f"{uid}-{item.clip_id}"
                submit(uid, item.clip_id, key)
                if rng.random() < 0.3:
                    submit(uid, item.clip_id, key)
                if rng.random() < 0.2:
                    cid = rng.randrange(last_slot + 1, last_slot + 1 + N_CLIPS)
                    submit(uid, cid, f"{uid}-{cid}-script")
    except Exception:
        errors.append(traceback.format_exc())
    finally:
        db.dispose()
        out.put((results, errors))


def test_concurrent_annotators_never_break_the_invariants(migrated_db_url, monkeypatch):
    db_url = migrated_db_url
    migrate(db_url)  # SQLite: a copy of a migrated file; PostgreSQL: a copy already at head
    # Spawned children re-import the parent's __main__ by path; after an AppTest in the same worker
    # that is the app script, which a child must never run.
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    db = Database.from_url(db_url)
    with db.write() as s:
        project = create_project(s, name="race", classes=list(LABELS), annotations_per_clip=K)
        users = [
            add_user(s, name=f"user{i}", role="annotator").id for i in range(PROCESSES * USERS_PER_PROCESS)
        ]
        outsiders = [add_user(s, name=f"early{i}", role="annotator").id for i in range(K - 1)]
        rows = [
            {
                "project_id": project.id,
                "sha256": f"{i:064x}",
                "storage_key": f"00/{i:064x}.wav",
                "original_name": f"clip{i}.wav",
                "duration_s": 1.0,
                "sample_rate": 8000,
                "channels": 1,
                "frames": 8000,
                "audio_format": "WAV",
                "meta": {},
                "split": "train",
                "annotations_needed": K,
                "annotation_count": 0,
                "priority": 0,
                "created_at": utcnow(),
            }
            for i in range(N_CLIPS + 1)
        ]
        ids = list(s.scalars(insert(Clip).returning(Clip.id), rows))
    last_slot = ids[0]
    assert ids == list(range(last_slot, last_slot + N_CLIPS + 1))
    for uid in outsiders:  # the first clip is one annotation short of k before the race starts
        with db.write() as s:
            assert submit_annotation(s, project.id, uid, last_slot, label="yes").status == "created"

    ctx = child_processes("tests.db.test_queue_concurrency")
    barrier = ctx.Barrier(PROCESSES)
    out = ctx.Queue()
    procs = [
        ctx.Process(
            target=_annotator,
            args=(
                db_url,
                project.id,
                users[i * USERS_PER_PROCESS : (i + 1) * USERS_PER_PROCESS],
                last_slot,
                i,
                barrier,
                out,
            ),
        )
        for i in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    reports = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0

    errors = [e for _, errs in reports for e in errs]
    assert errors == []
    results = [r for res, _ in reports for r in res]

    with db.read() as s:
        stored = {
            a.id: (a.annotator_id, a.clip_id, a.idempotency_key)
            for a in s.scalars(select(Annotation).where(Annotation.project_id == project.id))
        }
        counts = dict(s.execute(select(Clip.id, Clip.annotation_count)).all())
        needed = dict(s.execute(select(Clip.id, Clip.annotations_needed)).all())
        per_clip = Counter(cid for _, cid, _ in stored.values())
        pairs = Counter((uid, cid) for uid, cid, _ in stored.values())

    # Exactly one racer got the last slot of the first clip; the others were told it was full.
    last = Counter(status for uid, cid, key, status, _ in results if key.endswith("-last"))
    assert last == Counter({"created": 1, "full": PROCESSES * USERS_PER_PROCESS - 1})
    # Never more than k, the stored count matches the rows, no (clip, annotator) twice.
    assert all(per_clip[c] <= needed[c] for c in needed)
    assert all(counts[c] == per_clip[c] for c in counts)
    assert max(pairs.values()) == 1
    # Everything reported as stored is stored, as reported; repeats point at the first one.
    for uid, cid, key, status, annotation_id in results:
        if status == "created":
            assert stored[annotation_id] == (uid, cid, key)
        elif status in ("duplicate", "already_labelled"):
            assert stored[annotation_id][:2] == (uid, cid)
        else:
            assert status == "full"
            assert (uid, cid) not in pairs
    created = sum(1 for r in results if r[3] == "created")
    assert created + len(outsiders) == len(stored)
    assert any(r[3] == "duplicate" for r in results)

    # No slot was lost to a dangling claim: finishing the queue fills every clip to exactly k.
    for uid in users:
        while True:
            with db.write() as s:
                item = next_clip(s, project.id, uid)
                if item is None:
                    break
                assert submit_annotation(s, project.id, uid, item.clip_id, label="no").ok
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Clip).where(Clip.annotation_count != K)) == 0
    db.dispose()
