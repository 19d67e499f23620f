"""The worker keeps the Overview and Clips summaries current by moving the clips whose final label
changed between the counts: after labels change, what it stores equals counting every clip again,
and it counts again whenever the changes are of another kind or cannot be vouched for."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from db.models import Clip, Resolution, utcnow
from labeling.annotate.review import resolve_clip
from labeling.data.clip_query import clip_filter_options
from labeling.data.importer import import_path
from labeling.data.overview import NONE, project_overview
from labeling.data.projects import update_project
from labeling.platform.auth import add_user
from labeling.quality.data_summaries import clip_facets, overview_summary, refresh_data_summaries
from tests.audio import speechlike, write_wav


@pytest.fixture
def project(workspace, tmp_path):
    src = tmp_path / "src"
    for i in range(6):
        write_wav(src / f"clip{i}.wav", speechlike(i, seconds=0.3), sr=8000)
    import_path(workspace, src, "demo")
    with workspace.db.write() as s:
        info = update_project(s, "demo", classes=["yes", "no", "maybe"])
        rev = add_user(s, name="rev", role="reviewer").id
        clips = s.scalars(select(Clip.id).where(Clip.project_id == info.id).order_by(Clip.id)).all()
    return workspace, info.id, rev, list(clips)


def settle(ws, pid: int, rev: int, decisions: dict[int, str]) -> None:  # type: ignore[no-untyped-def]
    for clip_id, label in decisions.items():
        with ws.db.write() as s:  # one decision per transaction, as the Review page makes them
            resolve_clip(s, pid, clip_id, label=label, reviewer_id=rev)


def stored(ws, pid: int) -> tuple[dict[str, int], int, list[str]]:  # type: ignore[no-untyped-def]
    overview = overview_summary(ws.db, pid, allow_stale=True)
    facets = clip_facets(ws.db, pid, allow_stale=True)
    assert overview.fresh
    assert facets.fresh
    return dict(overview.value.labels), overview.value.summary["n_resolved"], facets.value.labels


def counted_afresh(ws, pid: int) -> tuple[dict[str, int], int, list[str]]:  # type: ignore[no-untyped-def]
    with ws.db.read() as s:
        view = project_overview(s, pid)
        return dict(view.labels), view.summary["n_resolved"], clip_filter_options(s, pid).labels


def test_labels_changed_by_reviewers_are_moved_between_the_counts(project):
    ws, pid, rev, clips = project
    assert refresh_data_summaries(ws.db, pid) == "full"
    assert refresh_data_summaries(ws.db, pid) == "current"
    settle(ws, pid, rev, {clips[0]: "yes", clips[1]: "yes", clips[2]: "no"})
    assert refresh_data_summaries(ws.db, pid) == "incremental"
    # By hand: two yes, one no, three clips without a final label.
    assert stored(ws, pid) == ({"yes": 2, "no": 1, NONE: 3}, 3, ["no", "yes"])
    settle(ws, pid, rev, {clips[1]: "no", clips[3]: "maybe"})  # one relabelled, one new
    assert refresh_data_summaries(ws.db, pid) == "incremental"
    assert stored(ws, pid) == ({"yes": 1, "no": 2, "maybe": 1, NONE: 2}, 4, ["maybe", "no", "yes"])
    assert stored(ws, pid) == counted_afresh(ws, pid)
    settle(ws, pid, rev, {clips[0]: "no"})  # "yes" is no one's label any more
    assert refresh_data_summaries(ws.db, pid) == "incremental"
    assert stored(ws, pid) == counted_afresh(ws, pid)
    assert "yes" not in stored(ws, pid)[2]


def test_a_label_written_without_an_audit_event_makes_it_count_afresh(project):
    ws, pid, rev, clips = project
    settle(ws, pid, rev, {clips[0]: "yes", clips[1]: "no"})
    assert refresh_data_summaries(ws.db, pid) == "full"
    with ws.db.write() as s:  # a script relabelling behind the audit log's back
        s.execute(
            update(Resolution).where(Resolution.clip_id == clips[0]).values(label="no", updated_at=utcnow())
        )
    assert refresh_data_summaries(ws.db, pid) == "full"
    assert stored(ws, pid) == counted_afresh(ws, pid) == ({"no": 2, NONE: 4}, 2, ["no"])


def test_retired_clips_and_a_summary_of_an_older_format_are_counted_afresh(project, monkeypatch):
    ws, pid, rev, clips = project
    settle(ws, pid, rev, {clips[0]: "yes", clips[1]: "no"})
    assert refresh_data_summaries(ws.db, pid) == "full"
    with ws.db.write() as s:
        s.execute(update(Clip).where(Clip.id == clips[0]).values(deleted_at=utcnow()))
    assert refresh_data_summaries(ws.db, pid) == "full"
    assert stored(ws, pid) == counted_afresh(ws, pid) == ({"no": 1, NONE: 4}, 1, ["no"])
    settle(ws, pid, rev, {clips[2]: "maybe"})
    monkeypatch.setattr("labeling.quality.data_summaries.FORMAT", 99)
    assert refresh_data_summaries(ws.db, pid) == "full"
    assert stored(ws, pid) == counted_afresh(ws, pid)
