"""A failed import never takes audio from another import; what killed imports and exports leave behind
is swept once it is old and nobody holds it."""

from __future__ import annotations

import os
import threading
import time

import pytest
from sqlalchemy import select

from db.models import Clip, ProductionClip
from labeling.data.export import export_project
from labeling.data.importer import import_path
from labeling.data.leftovers import hold, incoming_files, release, sweep_orphan_audio, sweep_stale
from labeling.data.projects import ProjectNotFound, update_project
from labeling.monitor.production import log_predictions
from tests.audio import speechlike, write_wav


def _folder(path, n: int, seed: int = 100):
    path.mkdir()
    for i in range(n):
        write_wav(path / f"c{i}.wav", speechlike(seed + i))
    return path


def test_a_failed_import_leaves_the_audio_another_import_is_about_to_commit(workspace, tmp_path):
    src = _folder(tmp_path / "src", 20)
    b_prepared, a_failed = threading.Event(), threading.Event()
    outcome: dict = {}

    def b_progress(done: int, total: int) -> None:
        if done == total:  # every file of B is prepared (found already stored by A)
            b_prepared.set()
            a_failed.wait(timeout=60)

    def run_b() -> None:
        try:
            outcome["b"] = import_path(workspace, src, "b", progress=b_progress)
        except BaseException as exc:  # reported below
            outcome["b"] = exc

    b = threading.Thread(target=run_b)

    def a_progress(done: int, total: int) -> None:
        if done == total:  # A has stored every file; B now prepares the same audio
            b.start()
            assert b_prepared.wait(timeout=60)

    # A imports into a project that does not exist without leave to create it: it fails after storing.
    with pytest.raises(ProjectNotFound):
        import_path(workspace, src, "nowhere", create=False, progress=a_progress)
    a_failed.set()
    b.join(timeout=120)
    report = outcome["b"]
    assert not isinstance(report, BaseException), report
    assert report.n_imported == 20
    with workspace.db.read() as s:
        keys = list(s.scalars(select(Clip.storage_key)))
    assert len(keys) == 20
    assert all(workspace.store.exists(k) for k in keys)


def test_orphaned_audio_is_swept_after_its_grace_period(workspace, tmp_path):
    used = _folder(tmp_path / "used", 2)
    import_path(workspace, used, "kept")
    orphan_src = _folder(tmp_path / "orphans", 3, seed=200)
    with pytest.raises(ProjectNotFound):
        import_path(workspace, orphan_src, "nowhere", create=False)
    stored = set(workspace.store.iter_keys())
    assert len(stored) == 5  # the failed import's files stay until a sweep
    assert sweep_orphan_audio(workspace.db, workspace.store) == []  # younger than an hour
    removed = sweep_orphan_audio(workspace.db, workspace.store, grace_s=0)
    assert len(removed) == 3
    with workspace.db.read() as s:
        keys = set(s.scalars(select(Clip.storage_key)))
    assert set(workspace.store.iter_keys()) == keys
    assert all(workspace.store.exists(k) for k in keys)


def test_stale_incoming_copies_are_swept_at_the_next_import_unless_held(sqlite_workspace, tmp_path):
    ws = sqlite_workspace
    import_path(ws, _folder(tmp_path / "first", 1), "p")
    shard = next(ws.store.path(k) for k in ws.store.iter_keys()).parent
    old, fresh, held = (shard / f".incoming-{name}" for name in ("old", "fresh", "held"))
    for path in (old, fresh, held):
        path.write_bytes(b"half a copy")
    two_hours_ago = time.time() - 7200
    for path in (old, held):
        os.utime(path, (two_hours_ago, two_hours_ago))
    fd = hold(held)  # a live writer
    try:
        import_path(ws, _folder(tmp_path / "second", 1, seed=300), "p")
        assert sorted(p.name for p in incoming_files(ws.store)) == [".incoming-fresh", ".incoming-held"]
    finally:
        release(fd)
    # Its writer gone, the old copy goes; the fresh one is still young.
    assert sweep_stale(incoming_files(ws.store)) == [held]


def test_an_unfinished_export_folder_is_swept_by_the_next_export(sqlite_workspace, tmp_path):
    ws = sqlite_workspace
    import_path(ws, _folder(tmp_path / "src", 2), "p")
    out = tmp_path / "exports"
    out.mkdir()
    stale = out / ".old.partial-1a2b3c4d"
    (stale / "audio").mkdir(parents=True)
    (stale / "audio" / "x.wav").write_bytes(b"RIFF")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    young = out / ".other.partial-5e6f7a8b"
    young.mkdir()
    export_project(ws, "p", fmt="csv", out=out / "new")
    assert not stale.exists()
    assert young.exists()
    assert (out / "new").is_dir()


def test_two_imports_of_the_same_audio_at_once_both_answer(workspace, tmp_path):
    src = _folder(tmp_path / "src", 12, seed=400)
    both_prepared = threading.Barrier(2)
    reports: list = []

    def progress(done: int, total: int) -> None:
        if done == total:
            both_prepared.wait(timeout=60)

    def run() -> None:
        try:
            reports.append(import_path(workspace, src, "shared", progress=progress))
        except BaseException as exc:  # reported below
            reports.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert [r for r in reports if isinstance(r, BaseException)] == []
    assert sorted(r.n_imported for r in reports) == [0, 12]
    assert sorted(r.n_duplicates for r in reports) == [0, 12]
    with workspace.db.read() as s:
        assert len(s.scalars(select(Clip.id)).all()) == 12


def test_logged_production_audio_is_never_swept_as_an_orphan(workspace, tmp_path):
    import_path(workspace, _folder(tmp_path / "project", 2), "live")
    with workspace.db.write() as s:
        update_project(s, "live", classes=["yes", "no"])
    logged = _folder(tmp_path / "requests", 3, seed=300)
    records = [
        {
            "audio": f"c{i}.wav",
            "timestamp": "2026-01-05T10:00:00+00:00",
            "model": "v1",
            "prediction": "yes",
            "confidence": 0.9,
            "latency_ms": 20.0,
            "request_id": f"r{i}",
        }
        for i in range(3)
    ]
    report = log_predictions(workspace, "live", records, batch="monday", audio_root=logged)
    assert report.n_logged == 3
    with workspace.db.read() as s:
        production = set(s.scalars(select(ProductionClip.storage_key)))
    assert len(production) == 3
    # Production requests are not project clips, but their audio is in use all the same.
    assert sweep_orphan_audio(workspace.db, workspace.store, grace_s=0) == []
    assert all(workspace.store.exists(k) for k in production)
