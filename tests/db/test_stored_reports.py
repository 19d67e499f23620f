"""The agreement report is stored per data change: every process shows it without recomputing, a label
makes it stale (shown as such, then recomputed by a job), and nothing is lost storing it.

The reference is the report computed directly by ``project_agreement``/``disagreements`` on the same
data, and Krippendorff's alpha from the ``krippendorff`` package on the annotations the test wrote.
"""

from __future__ import annotations

import json

import krippendorff
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select, update

from db.models import Clip, Job, StoredReport
from labeling.annotate.annotations import submit_annotation
from labeling.annotate.review import resolve_clip
from labeling.cli import main
from labeling.data.importer import import_path
from labeling.data.projects import get_project, update_project
from labeling.platform.auth import add_user
from labeling.platform.jobs import get_job, latest_job, list_jobs, run_worker, submit_job
from labeling.quality.agreement_service import (
    AGREEMENT_VIEW,
    REVIEW_QUEUE,
    REVIEW_SHOWN,
    agreement_view,
    disagreements,
    project_agreement,
    review_queue,
    view_params,
)
from labeling.quality.data_summaries import CLIP_FACETS, OVERVIEW
from labeling.quality.data_summaries import PARAMS as SUMMARY_PARAMS
from labeling.quality.report_store import decode_value, encode_value, is_current
from tests.audio import speechlike, write_wav
from tests.conftest import make_workspace

# Three annotators on eight clips: unanimous, 2-1 splits and one three-way tie.
SAYS = {
    "ana": ["yes", "no", "yes", "no", "yes", "no", "yes", "no"],
    "ben": ["yes", "no", "no", "no", "yes", "yes", "yes", "no"],
    "cho": ["yes", "yes", "no", "no", "no", "no", "yes", "no"],
}


@pytest.fixture
def team(workspace, tmp_path):
    src = tmp_path / "src"
    for i in range(8):
        write_wav(src / f"{['yes', 'no'][i % 2]}_spk{i % 3}_{i}.wav", speechlike(i, seconds=0.3), sr=8000)
    import_path(workspace, src, "demo", pattern=r"(?P<label>[a-z]+)_(?P<speaker>spk\d)_\d+\.wav")
    with workspace.db.write() as s:
        project = update_project(s, "demo", annotations_per_clip=3, classes=["yes", "no", "maybe"])
        ids = {n: add_user(s, name=n, role="annotator").id for n in [*SAYS, "dan"]}
        clips = s.scalars(select(Clip.id).where(Clip.project_id == project.id).order_by(Clip.id)).all()
        for who, labels in SAYS.items():
            for clip_id, label in zip(clips, labels, strict=True):
                assert submit_annotation(s, project.id, ids[who], clip_id, label=label).ok
    return workspace, project.id, ids, clips


def alpha_of(says: dict[str, list[str]]) -> float:
    codes = {"yes": 0, "no": 1, "maybe": 2}
    data = np.array([[codes[v] for v in row] for row in says.values()], dtype=float)
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))


def as_if_slow(ws, seconds: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """Make the stored reports look as a large project's do: many seconds to compute (or, with
    ``seconds=0``, a small one's, however long a loaded machine took)."""
    with ws.db.write() as s:
        s.execute(update(StoredReport).values(seconds=seconds))


def stored_rows(ws):  # type: ignore[no-untyped-def]
    with ws.db.read() as s:
        return s.execute(select(StoredReport.kind, StoredReport.computed_at)).all()


def test_the_stored_report_is_the_report_and_every_process_reads_it_without_recomputing(team, tmp_path):
    ws, pid, _, _ = team
    first = agreement_view(ws.db, pid)
    assert first.fresh
    assert first.report["krippendorff_alpha"] == pytest.approx(alpha_of(SAYS))
    with ws.db.read() as s:
        direct = project_agreement(s, pid, n_boot=500)
        split = disagreements(s, pid, limit=12, open_only=False)
    for key in ("kappa_matrix", "annotators", "confusion", "by_version", "by_slice", "hlp"):
        pd.testing.assert_frame_equal(first.report[key], direct[key], check_dtype=False)
    # Another process (an app server of its own) opens the same database: the stored report, as is.
    other = make_workspace(tmp_path / "server-b", ws.settings.database_url)
    try:
        again = agreement_view(other.db, pid)
    finally:
        other.close()
    assert again.fresh
    assert again.computed_at == first.computed_at  # read, not recomputed
    assert again.report["krippendorff_alpha"] == pytest.approx(direct["krippendorff_alpha"])
    assert again.report["krippendorff_alpha_ci"] == pytest.approx(direct["krippendorff_alpha_ci"])
    assert again.split["clip_id"].tolist() == split["clip_id"].tolist()
    assert again.split["votes"].tolist() == split["votes"].tolist()  # dicts of votes, not structs
    assert again.split["ratings"].tolist() == split["ratings"].tolist()
    assert again.split.attrs == split.attrs
    assert len(stored_rows(ws)) == 1


def test_a_new_label_makes_it_stale_and_the_agreement_job_recomputes_it(team):
    ws, pid, ids, clips = team
    before = agreement_view(ws.db, pid)
    as_if_slow(ws)
    with ws.db.write() as s:
        project = get_project(s, pid)
        update_project(s, project.id, annotations_per_clip=4)
        assert submit_annotation(s, pid, ids["dan"], clips[0], label="maybe").ok
    stale = agreement_view(ws.db, pid, allow_stale=True)
    assert not stale.fresh  # shown as it was, and said to be older than the labels
    assert stale.report["n_ratings"] == before.report["n_ratings"] == 24
    with ws.db.read() as s:
        job = latest_job(s, "agreement", project_id=pid)
    assert job is not None
    assert job.status == "queued"  # by the label itself: nobody had to open the page
    assert run_worker(ws, once=True) == 4  # agreement, review ranking, data summaries and checks
    with ws.db.read() as s:
        done = get_job(s, job.id)
    assert done.status == "succeeded", done.error
    now = agreement_view(ws.db, pid, allow_stale=True)
    assert now.fresh
    assert now.report["n_ratings"] == 25
    says = {**SAYS, "dan": ["maybe", *[None] * 7]}
    codes = {"yes": 0, "no": 1, "maybe": 2, None: np.nan}
    data = np.array([[codes[v] for v in row] for row in says.values()], dtype=float)
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert now.report["krippendorff_alpha"] == pytest.approx(expected)
    assert sorted(kind for kind, _ in stored_rows(ws)) == sorted(
        [AGREEMENT_VIEW, REVIEW_QUEUE, CLIP_FACETS, OVERVIEW, "data_checks"]
    )  # replaced, not piled up


@pytest.mark.parametrize("slow", [True, False])
def test_a_changed_project_is_recomputed_at_once_unless_stale_is_allowed_and_computing_is_slow(team, slow):
    ws, pid, ids, clips = team
    agreement_view(ws.db, pid)
    as_if_slow(ws, 30.0 if slow else 0.0)
    with ws.db.write() as s:
        update_project(s, pid, annotations_per_clip=4)
        assert submit_annotation(s, pid, ids["dan"], clips[1], label="yes").ok
    # A quick report is recomputed even where an older one may be shown.
    assert agreement_view(ws.db, pid, allow_stale=True).fresh is not slow
    view = agreement_view(ws.db, pid)
    assert view.fresh
    assert view.report["n_ratings"] == 25


def test_values_that_json_cannot_hold_survive_the_round_trip():
    frame = pd.DataFrame(
        {"x": [1.5, np.nan], "when": pd.to_datetime(["2026-01-05", "2026-01-12"], utc=True), "n": [1, 2]},
        index=pd.Index(["a", "b"], name="annotator"),
    )
    frame.attrs["n_total"] = 7
    value = {"alpha": float("nan"), "ci": (0.1, 0.9), "frame": frame, 3: [np.int64(4), None]}
    back = decode_value(encode_value(value))
    assert np.isnan(back["alpha"])
    assert back["ci"] == (0.1, 0.9)
    assert back[3] == [4, None]
    pd.testing.assert_frame_equal(back["frame"], frame)
    assert back["frame"].attrs == {"n_total": 7}


def test_earmark_agreement_answers_from_the_stored_report_until_a_label_changes(team, monkeypatch, capsys):
    ws, pid, ids, clips = team
    monkeypatch.setenv("EARMARK_DATA_DIR", str(ws.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", ws.settings.database_url)

    def ask() -> dict:
        assert main(["agreement", "--project", "demo", "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    first = ask()
    assert first["krippendorff_alpha"] == pytest.approx(alpha_of(SAYS))
    (row,) = stored_rows(ws)
    assert ask() == first
    assert stored_rows(ws)[0].computed_at == row.computed_at  # answered from the stored report
    with ws.db.write() as s:
        update_project(s, pid, annotations_per_clip=4)
        assert submit_annotation(s, pid, ids["dan"], clips[2], label="maybe").ok
    assert ask()["n_ratings"] == 25


def test_a_settled_clip_leaves_the_stored_review_queue_at_once_and_a_job_re_ranks_it(team):
    ws, pid, _, _ = team
    run_worker(ws, once=True)  # the reports the import and labels queued
    with ws.db.read() as s:
        expected = disagreements(s, pid, limit=200)["clip_id"].tolist()
    first = review_queue(ws.db, pid)
    assert first.fresh
    assert first.queue["clip_id"].tolist() == expected
    assert len(expected) >= 3
    as_if_slow(ws)
    settled = expected[0]
    with ws.db.write() as s:
        reviewer = add_user(s, name="rosa", role="reviewer").id
        resolve_clip(s, pid, settled, label="yes", reviewer_id=reviewer)
    shown = review_queue(ws.db, pid, allow_stale=True)
    assert not shown.fresh
    assert shown.queue["clip_id"].tolist() == expected[1:]  # the settled clip is gone, the rest as ranked
    assert shown.queue.attrs["n_total"] == len(expected) - 1
    with ws.db.read() as s:
        job = latest_job(s, "review_queue", project_id=pid)
    assert job is not None
    assert job.status == "queued"  # by the decision itself
    assert run_worker(ws, once=True) == 4
    with ws.db.read() as s:
        assert get_job(s, job.id).status == "succeeded"
    again = review_queue(ws.db, pid, allow_stale=True)
    assert again.fresh
    with ws.db.read() as s:
        assert again.queue["clip_id"].tolist() == disagreements(s, pid, limit=200)["clip_id"].tolist()


def active_refreshes(ws) -> list[tuple[int, str, str]]:  # type: ignore[no-untyped-def]
    with ws.db.read() as s:
        jobs = list_jobs(s)
    active = jobs[jobs["status"].isin(["queued", "running"])]
    return sorted(zip(active["job_id"], active["kind"], active["status"], strict=True))


def test_after_an_import_a_worker_stores_the_reports_before_anyone_opens_a_page(team):
    ws, pid, _, _ = team
    with ws.db.read() as s:
        queued = list_jobs(s)
    assert sorted(queued["kind"]) == ["Agreement report", "Data checks", "Data summaries", "Review ranking"]
    assert stored_rows(ws) == []  # nobody has asked for a report yet
    assert run_worker(ws, once=True) == 4
    assert is_current(ws.db, pid, AGREEMENT_VIEW, view_params())
    assert is_current(ws.db, pid, REVIEW_QUEUE, {"limit": REVIEW_SHOWN})
    assert is_current(ws.db, pid, OVERVIEW, SUMMARY_PARAMS)
    assert is_current(ws.db, pid, CLIP_FACETS, SUMMARY_PARAMS)
    stored = sorted(stored_rows(ws))
    # What the pages call finds the reports current and computes nothing.
    view = agreement_view(ws.db, pid, allow_stale=True)
    ranked = review_queue(ws.db, pid, allow_stale=True)
    assert view.fresh
    assert ranked.fresh
    assert view.report["krippendorff_alpha"] == pytest.approx(alpha_of(SAYS))
    assert sorted(stored_rows(ws)) == stored
    assert active_refreshes(ws) == []


def test_a_burst_of_labels_queues_one_refresh_of_each_report_and_none_while_it_waits(team):
    ws, pid, ids, clips = team
    run_worker(ws, once=True)
    with ws.db.write() as s:
        update_project(s, pid, annotations_per_clip=5)
        eve = add_user(s, name="eve", role="annotator").id
    for clip_id in clips[:4]:
        with ws.db.write() as s:  # one transaction per label, as the Label page submits them
            assert submit_annotation(s, pid, ids["dan"], clip_id, label="maybe").ok
    queued = active_refreshes(ws)
    assert [(kind, status) for _, kind, status in queued] == [
        ("Data summaries", "queued"),
        ("Data checks", "queued"),
        ("Agreement report", "queued"),
        ("Review ranking", "queued"),
    ]
    for clip_id in clips[4:]:
        with ws.db.write() as s:
            assert submit_annotation(s, pid, ids["dan"], clip_id, label="maybe").ok
    for clip_id in clips:
        with ws.db.write() as s:
            assert submit_annotation(s, pid, eve, clip_id, label="yes").ok
    assert active_refreshes(ws) == queued  # the same jobs cover the second burst
    assert run_worker(ws, once=True) == 4
    view = agreement_view(ws.db, pid, allow_stale=True)
    assert view.fresh
    assert view.report["n_ratings"] == 24 + 2 * len(clips)


def test_the_job_list_leaves_out_report_refreshes_unless_asked_or_one_failed(team, monkeypatch, capsys):
    ws, pid, _, _ = team
    monkeypatch.setenv("EARMARK_DATA_DIR", str(ws.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", ws.settings.database_url)
    with ws.db.write() as s:
        mine = submit_job(s, "label_issues", project_id=pid, owner_id=None)
    with ws.db.read() as s:
        assert set(list_jobs(s)["kind"]) == {
            "Agreement report",
            "Review ranking",
            "Data summaries",
            "Data checks",
            "Label-issue detection",
        }
        assert list_jobs(s, hide_routine=True)["job_id"].tolist() == [mine.id]
    # A refresh that failed is shown: someone has to look at it.
    with ws.db.write() as s:
        s.execute(update(Job).where(Job.kind == "agreement").values(status="failed"))
    with ws.db.read() as s:
        assert sorted(list_jobs(s, hide_routine=True)["kind"]) == [
            "Agreement report",
            "Label-issue detection",
        ]
    capsys.readouterr()
    assert main(["jobs", "list", "--json"]) == 0
    assert {j["kind"] for j in json.loads(capsys.readouterr().out)} == {
        "Agreement report",
        "Label-issue detection",
    }
    assert main(["jobs", "list", "--json", "--all"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 5  # the four refreshes and the detection job
