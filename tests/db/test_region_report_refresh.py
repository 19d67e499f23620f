"""Saving regions queues the refresh of the stored region agreement and review ranking; a worker
computes them, and the command and the pages then read them without computing."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from db.models import Job
from labeling.cli import main
from labeling.data.clips import clip_frame
from labeling.data.importer import ensure_users, import_path
from labeling.data.projects import create_project
from labeling.data.regions import save_regions
from labeling.platform.jobs import run_worker
from labeling.quality import region_agreement as ra
from labeling.quality.report_store import is_current
from tests.audio import tone, write_wav

REFRESHES = {"region_agreement", "region_review_queue"}


@pytest.fixture
def meeting(workspace, tmp_path):
    src = tmp_path / "rec"
    write_wav(src / "a.wav", tone(6.0, freq=220))
    write_wav(src / "b.wav", tone(4.0, freq=330))
    with workspace.db.write() as s:
        info = create_project(s, name="meet", task_kind="regions", classes=["speech", "noise"])
        users = ensure_users(s, {"ann", "bob"})
    import_path(workspace, src, "meet", create=False)
    with workspace.db.read() as s:
        clips = clip_frame(s, info.id).set_index("original_name")["clip_id"].to_dict()
    return workspace, info.id, clips, users


def _queued(ws, pid) -> set[str]:
    with ws.db.read() as s:
        return set(
            s.scalars(select(Job.kind).where(Job.project_id == pid, Job.status.in_(("queued", "running"))))
        )


def _save(ws, pid, clip, who, rows) -> None:
    with ws.db.write() as s:
        save_regions(s, pid, clip, [{"start": a, "end": b, "label": c} for a, b, c in rows], annotator_id=who)


def _draw_both(meeting) -> None:
    ws, pid, clips, users = meeting
    _save(ws, pid, clips["a.wav"], users["ann"], [(0.5, 2.0, "speech"), (3.0, 5.0, "noise")])
    _save(ws, pid, clips["a.wav"], users["bob"], [(0.6, 2.0, "speech"), (3.1, 5.5, "noise")])
    _save(ws, pid, clips["b.wav"], users["ann"], [(1.0, 3.0, "speech")])
    _save(ws, pid, clips["b.wav"], users["bob"], [(1.0, 2.0, "speech"), (2.0, 3.0, "noise")])


def _no_computing(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("computed instead of read from the stored report")

    monkeypatch.setattr(ra, "project_region_agreement", refuse)
    monkeypatch.setattr(ra, "region_review_queue", refuse)


def test_saving_regions_queues_the_region_reports_not_the_clip_ones(meeting):
    ws, pid, clips, users = meeting
    run_worker(ws, once=True)  # the refreshes the import queued
    assert _queued(ws, pid) == set()
    _save(ws, pid, clips["a.wav"], users["ann"], [(0.5, 2.0, "speech")])
    queued = _queued(ws, pid)
    assert queued >= REFRESHES
    assert not queued & {"agreement", "review_queue"}  # clip agreement means nothing here


def test_a_worker_stores_the_reports_and_the_command_reads_them_without_computing(
    meeting, monkeypatch, capsys
):
    ws, pid, _, _ = meeting
    _draw_both(meeting)
    assert run_worker(ws, once=True, kinds=sorted(REFRESHES)) == 2
    params = ra.region_view_params()
    assert is_current(ws.db, pid, ra.REGION_AGREEMENT_VIEW, params, fingerprint=ra.region_data_fingerprint)
    assert is_current(ws.db, pid, ra.REGION_REVIEW_QUEUE, {}, fingerprint=ra.region_data_fingerprint)
    with ws.db.read() as s:
        expected = ra.project_region_agreement(s, pid).to_dict()
        ranking = ra.region_review_queue(s, pid)
    _no_computing(monkeypatch)
    view = ra.region_agreement_view(ws.db, pid)
    assert view.fresh
    assert view.value == expected
    stored = ra.region_review_ranking(ws.db, pid)
    assert stored.fresh
    assert list(stored.value["recording"]) == list(ranking["recording"])
    monkeypatch.setenv("EARMARK_DATA_DIR", str(ws.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", ws.settings.database_url)
    assert main(["agreement", "--project", "meet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["annotators"] == ["ann", "bob"]


def test_a_later_save_is_picked_up_by_the_next_refresh(meeting, monkeypatch):
    ws, pid, clips, users = meeting
    _draw_both(meeting)
    run_worker(ws, once=True, kinds=sorted(REFRESHES))
    before = ra.region_agreement_view(ws.db, pid).value["fleiss_kappa"]
    # bob now draws b.wav exactly as ann did: agreement rises.
    _save(ws, pid, clips["b.wav"], users["bob"], [(1.0, 3.0, "speech")])
    assert _queued(ws, pid) >= REFRESHES
    assert not is_current(
        ws.db, pid, ra.REGION_AGREEMENT_VIEW, ra.region_view_params(), fingerprint=ra.region_data_fingerprint
    )
    assert run_worker(ws, once=True, kinds=sorted(REFRESHES)) == 2
    _no_computing(monkeypatch)
    after = ra.region_agreement_view(ws.db, pid)
    assert after.fresh
    assert after.value["fleiss_kappa"] > before


def test_a_page_tolerance_other_than_the_default_is_refreshed_on_request(meeting):
    ws, pid, _, _ = meeting
    _draw_both(meeting)
    run_worker(ws, once=True, kinds=sorted(REFRESHES))
    from labeling.platform.jobs import submit_job

    with ws.db.write() as s:
        submit_job(s, "region_agreement", project_id=pid, owner_id=None, params={"tolerance_ms": 500})
    assert run_worker(ws, once=True, kinds=["region_agreement"]) == 1
    assert is_current(
        ws.db, pid, ra.REGION_AGREEMENT_VIEW, {"tolerance_ms": 500}, fingerprint=ra.region_data_fingerprint
    )
