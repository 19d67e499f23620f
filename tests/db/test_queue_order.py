"""The queue's order is a project setting (``settings["queue_order"]``), on SQLite and PostgreSQL.

The scenario behind the default: a project imported with 160 clips that already carry final labels and
20 that do not. Annotators should hear the 20 first, not the clips whose answer is already known.
"""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import event, func, select

from db.models import Annotation, AuditEvent, Clip, Resolution, utcnow
from labeling.annotate.annotations import submit_annotation, undo_annotation
from labeling.annotate.queue import candidate_query, next_clip, release_claims, set_priority
from labeling.annotate.review import auto_resolve, resolve_clip
from labeling.data.checks import fix_clips
from labeling.data.importer import import_path
from labeling.data.labels_import import import_labels
from labeling.data.projects import ProjectError, apply_settings, create_project, get_project, update_project
from labeling.data.queue_order import QUEUE_ORDERS
from labeling.platform.auth import add_user
from tests.audio import speechlike, write_wav
from tests.db.test_queue import add_clips


@pytest.fixture
def imported(workspace, tmp_path):
    """160 clips imported with final labels (``yes_*``/``no_*``), then 20 without; k = 2."""
    ws = workspace
    for i in range(160):
        write_wav(tmp_path / "labelled" / f"{'yes' if i % 2 else 'no'}_{i:03d}.wav", speechlike(i, 0.3))
    for i in range(20):
        write_wav(tmp_path / "new" / f"new_{i:03d}.wav", speechlike(1000 + i, 0.3))
    import_path(ws, tmp_path / "labelled", "digits", pattern=r"(?P<label>yes|no)_\d+\.wav")
    import_path(ws, tmp_path / "new", "digits")
    with ws.db.write() as s:
        info = update_project(s, "digits", classes=["yes", "no"], annotations_per_clip=2)
        users = [add_user(s, name=n, role="annotator").id for n in ("ana", "ben", "cho")]
        admin = add_user(s, name="boss", role="admin").id
        labelled = set(s.scalars(select(Resolution.clip_id)))
        unlabelled = set(s.scalars(select(Clip.id).where(Clip.id.not_in(labelled))))
    assert (len(labelled), len(unlabelled)) == (160, 20)
    # Imported before the new clips: in the order of priority and id they all come first.
    assert max(labelled) < min(unlabelled)
    return ws, info.id, users, admin, labelled, unlabelled


def _next(ws, pid, uid):
    with ws.db.write() as s:
        item = next_clip(s, pid, uid)
    return None if item is None else item.clip_id


def _label(ws, pid, uid, clip_id, label="yes"):
    with ws.db.write() as s:
        result = submit_annotation(s, pid, uid, clip_id, label=label)
    assert result.status == "created", result
    return result


def _served(ws, pid, uid, n):
    """The next ``n`` clips the queue hands ``uid``, each labelled before asking again."""
    order = []
    for _ in range(n):
        clip_id = _next(ws, pid, uid)
        if clip_id is None:
            break
        order.append(clip_id)
        _label(ws, pid, uid, clip_id)
    return order


def _set_order(ws, pid, order, actor_id=None):
    with ws.db.write() as s:
        return apply_settings(s, pid, {"settings": {"queue_order": order}}, actor_id=actor_id)


def test_clips_without_a_final_label_are_served_first_by_default(imported):
    ws, pid, (ana, ben, _), _, labelled, unlabelled = imported
    with ws.db.read() as s:
        assert "queue_order" not in get_project(s, pid).settings  # a project that never chose
    served = _served(ws, pid, ana, 21)
    assert served[:20] == sorted(unlabelled)  # same priority: by id
    assert served[20] == min(labelled)
    # Another annotator also starts with the unlabelled clips, which still need a second label.
    assert _served(ws, pid, ben, 20) == sorted(unlabelled)


def test_unlabelled_first_keeps_fewest_annotations_and_priority_within_each_group(imported):
    ws, pid, (ana, ben, cho), _, labelled, unlabelled = imported
    new = sorted(unlabelled)
    old = sorted(labelled)
    with ws.db.write() as s:
        set_priority(s, pid, [new[5], old[7]], 10)
    _label(ws, pid, ben, new[0])  # one annotation already: it comes after the other unlabelled clips
    served = _served(ws, pid, ana, 21)
    assert served[:20] == [new[5], *[c for c in new[1:] if c != new[5]], new[0]]
    assert served[20] == old[7]  # a prioritised labelled clip waits for every unlabelled one
    assert _next(ws, pid, cho) == new[5]


def test_the_priority_order_is_the_order_of_before(imported):
    ws, pid, (ana, ben, _), admin, labelled, unlabelled = imported
    everything = sorted(labelled | unlabelled)
    boosted = {everything[100], everything[170]}  # one labelled, one unlabelled
    with ws.db.write() as s:
        set_priority(s, pid, boosted, 3)
    _label(ws, pid, ben, everything[0])
    info = _set_order(ws, pid, "priority", actor_id=admin)
    assert info.settings["queue_order"] == "priority"
    # Fewest annotations first, then the highest priority, then the lowest id; final labels are ignored.
    expected = sorted(everything, key=lambda c: (c == everything[0], c not in boosted, c))
    assert _served(ws, pid, ana, 180) == expected
    with ws.db.read() as s:
        change = s.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity == "project", AuditEvent.action == "update")
            .order_by(AuditEvent.id.desc())
        ).first()
        assert change.actor_id == admin
        assert "queue_order" not in change.old["settings"]
        assert change.new["settings"]["queue_order"] == "priority"


def test_random_order_is_stable_shared_and_never_over_k(workspace):
    ws = workspace
    with ws.db.write() as s:
        p = create_project(s, name="shuffled", classes=["yes", "no"], annotations_per_clip=2)
        ids = add_clips(s, p.id, 40, k=2)
        users = [add_user(s, name=n, role="annotator").id for n in ("ana", "ben", "cho", "dan")]
    ana, ben, cho, dan = users
    _set_order(ws, p.id, "random")

    first = _next(ws, p.id, ana)
    with ws.db.write() as s:
        release_claims(s, ana)  # signed out: the clip goes back, and comes back to the next request
    assert _next(ws, p.id, ana) == first
    assert _next(ws, p.id, dan) == first  # k = 2: a second person may take it too

    ana_order = [first, *_served(ws, p.id, ana, 41)[1:]]
    assert sorted(ana_order) == ids  # every clip once
    assert ana_order not in (ids, ids[::-1])  # shuffled, not by id either way
    # With every clip at one annotation, the next annotator walks the very same shuffle.
    with ws.db.write() as s:
        release_claims(s, dan)
    assert _served(ws, p.id, ben, 41) == ana_order
    assert _served(ws, p.id, cho, 41) == []  # every clip has its k = 2
    with ws.db.read() as s:
        counts = dict(s.execute(select(Annotation.clip_id, func.count()).group_by(Annotation.clip_id)).all())
    assert counts == dict.fromkeys(ids, 2)


def test_random_order_puts_clips_with_fewer_annotations_first(workspace):
    ws = workspace
    with ws.db.write() as s:
        p = create_project(s, name="shuffled", classes=["yes", "no"], annotations_per_clip=3)
        ids = add_clips(s, p.id, 10, k=3)
        ana, ben = (add_user(s, name=n, role="annotator").id for n in ("ana", "ben"))
    _set_order(ws, p.id, "random")
    for clip_id in ids[:9]:
        _label(ws, p.id, ben, clip_id)
    assert _next(ws, p.id, ana) == ids[9]


@pytest.mark.parametrize("value", ["newest", "", 3, None])
def test_an_unknown_queue_order_is_refused_and_changes_nothing(imported, value):
    ws, pid, *_ = imported
    with ws.db.write() as s:
        before = get_project(s, pid)
        if value is None:  # None resets to the default: no change at all
            assert apply_settings(s, pid, {"settings": {"queue_order": None}}) == before
            return
        with pytest.raises(
            ProjectError, match="queue_order must be one of unlabelled_first, priority, random"
        ):
            apply_settings(s, pid, {"settings": {"queue_order": value}})
    with ws.db.read() as s:
        assert get_project(s, pid) == before


def test_a_project_created_with_an_unknown_queue_order_is_refused(workspace):
    with workspace.db.write() as s, pytest.raises(ProjectError, match="queue_order must be one of"):
        create_project(s, name="odd", classes=["yes"], settings={"queue_order": "loudest"})


# --- a final label moves a clip between the two groups, whichever path writes or removes it ---------


def _final_label_flags_agree(ws) -> bool:
    """Every clip's queue flag says whether it has a final label (the queue reads only the flag)."""
    with ws.db.read() as s:
        has = set(s.scalars(select(Resolution.clip_id)))
        flagged = set(s.scalars(select(Clip.id).where(Clip.resolved)))
    return has == flagged


def test_review_and_auto_resolve_move_a_clip_behind_the_unlabelled(imported):
    ws, pid, (ana, ben, cho), admin, labelled, unlabelled = imported
    new = sorted(unlabelled)
    with ws.db.write() as s:
        resolve_clip(s, pid, new[0], label="no", reviewer_id=admin)
    _label(ws, pid, ana, new[1])
    _label(ws, pid, ben, new[1])
    with ws.db.write() as s:
        assert auto_resolve(s, pid) == 1  # both said yes
    assert _final_label_flags_agree(ws)
    assert _served(ws, pid, cho, 18) == new[2:]
    # new[0] is adjudicated but still short of k: it waits among the labelled clips, by its id.
    assert _next(ws, pid, cho) == min(labelled)


def test_undoing_the_label_a_rule_drew_puts_the_clip_back_among_the_unlabelled(workspace):
    ws = workspace
    with ws.db.write() as s:
        p = create_project(s, name="undo", classes=["yes", "no"], annotations_per_clip=1)
        a, _ = add_clips(s, p.id, 2, k=1)
        ana, ben = (add_user(s, name=n, role="annotator").id for n in ("ana", "ben"))
    done = _label(ws, p.id, ana, a)
    with ws.db.write() as s:
        assert auto_resolve(s, p.id) == 1
    assert _final_label_flags_agree(ws)
    with ws.db.write() as s:
        assert undo_annotation(s, p.id, ana, done.annotation_id).status == "undone"
    assert _final_label_flags_agree(ws)
    assert _next(ws, p.id, ben) == a


def test_imported_final_labels_move_clips_behind_the_unlabelled(imported, tmp_path):
    ws, pid, (ana, *_), _, labelled, unlabelled = imported
    new = sorted(unlabelled)
    (tmp_path / "final.csv").write_text(
        "clip_id,label\n" + "".join(f"{c},yes\n" for c in new[:15]), encoding="utf-8"
    )
    report = import_labels(ws, tmp_path / "final.csv", pid, as_="resolutions")
    assert not report.problems
    assert _final_label_flags_agree(ws)
    assert _served(ws, pid, ana, 6) == [*new[15:], min(labelled)]


def test_a_fixed_copy_keeps_its_group(workspace, tmp_path):
    ws = workspace
    silence = np.zeros(int(0.9 * 16000), np.float32)
    write_wav(tmp_path / "old" / "yes_a.wav", np.concatenate([silence, speechlike(1)]))
    for name, seed in (("b", 2), ("c", 3)):
        write_wav(tmp_path / "new" / f"{name}.wav", np.concatenate([silence, speechlike(seed)]))
    import_path(ws, tmp_path / "old", "fix", pattern=r"(?P<label>yes)_\w\.wav")
    import_path(ws, tmp_path / "new", "fix")
    with ws.db.write() as s:
        info = update_project(s, "fix", classes=["yes", "no"])
        ana = add_user(s, name="ana", role="annotator").id
        originals = list(s.scalars(select(Clip.id).order_by(Clip.id)))
    report = fix_clips(ws, "fix", originals, actions=["silence"])
    copies = [report.fixed[c] for c in originals]
    assert _final_label_flags_agree(ws)
    assert _served(ws, info.id, ana, 3) == [*sorted(copies[1:]), copies[0]]


@pytest.mark.parametrize("order", list(QUEUE_ORDERS))
def test_every_queue_order_walks_an_index_in_its_order(workspace, order):
    """The hand-out stays a short index walk at any size: no queue order sorts the open clips."""
    ws = workspace
    with ws.db.write() as s:
        p = create_project(s, name="plans", classes=["yes"], annotations_per_clip=2)
        ids = add_clips(s, p.id, 300, k=2)
        ana = add_user(s, name="ana", role="annotator").id
        s.add_all(Resolution(clip_id=c, project_id=p.id, label="yes", method="imported") for c in ids[::3])
    with ws.db.write() as s:
        conn = s.connection()
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            # Tiny tables: make every plan that is not a sort-free index walk look expensive.
            for switch in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
                conn.exec_driver_sql(f"SET LOCAL {switch} = off")
        else:
            conn.exec_driver_sql("ANALYZE")

        def explain(conn, cursor, statement, parameters, context, executemany):
            return ("EXPLAIN " if postgres else "EXPLAIN QUERY PLAN ") + statement, parameters

        event.listen(conn, "before_cursor_execute", explain, retval=True)
        try:
            params = {"project_id": p.id, "user_id": ana, "now": utcnow()}
            plan = "\n".join(str(row[-1]) for row in conn.execute(candidate_query(order), params))
        finally:
            event.remove(conn, "before_cursor_execute", explain)
    # The scored orders walk the narrow clip_queue their priorities are written to.
    assert ("ix_clip_queue_open" if QUEUE_ORDERS[order].strategy else "ix_clips_open") in plan, plan
    assert "Sort" not in plan, plan  # PostgreSQL
    assert "TEMP B-TREE" not in plan, plan  # SQLite


def test_the_command_line_shows_the_queue_order(workspace, monkeypatch, capsys):
    from labeling.cli import main

    with workspace.db.write() as s:
        create_project(s, name="plain", classes=["yes"])
        create_project(s, name="shuffled", classes=["yes"], settings={"queue_order": "random"})
    monkeypatch.setenv("EARMARK_DATA_DIR", str(workspace.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", workspace.settings.database_url)
    assert main(["project", "show", "plain"]) == 0
    assert "queue_order: unlabelled_first\n" in capsys.readouterr().out
    assert main(["project", "show", "shuffled", "--json"]) == 0
    assert '"queue_order": "random"' in capsys.readouterr().out
