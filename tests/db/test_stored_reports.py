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

from db.models import Clip, StoredReport
from labeling.annotate.annotations import submit_annotation
from labeling.annotate.review import resolve_clip
from labeling.cli import main
from labeling.data.importer import import_path
from labeling.data.projects import get_project, update_project
from labeling.platform.auth import add_user
from labeling.platform.jobs import run_next_job, submit_job
from labeling.quality.agreement_service import agreement_view, disagreements, project_agreement, review_queue
from labeling.quality.report_store import decode_value, encode_value
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


def as_if_slow(ws) -> None:  # type: ignore[no-untyped-def]
    """Make the stored reports look as a large project's do: many seconds to compute."""
    with ws.db.write() as s:
        s.execute(update(StoredReport).values(seconds=30.0))


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
    with ws.db.write() as s:
        job = submit_job(s, "agreement", project_id=pid, owner_id=ids["ana"])
    done = run_next_job(ws, worker="test-worker")
    assert done is not None
    assert (done.id, done.status) == (job.id, "succeeded"), done.error
    now = agreement_view(ws.db, pid, allow_stale=True)
    assert now.fresh
    assert now.report["n_ratings"] == 25
    says = {**SAYS, "dan": ["maybe", *[None] * 7]}
    codes = {"yes": 0, "no": 1, "maybe": 2, None: np.nan}
    data = np.array([[codes[v] for v in row] for row in says.values()], dtype=float)
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert now.report["krippendorff_alpha"] == pytest.approx(expected)
    assert len(stored_rows(ws)) == 1  # replaced, not piled up


@pytest.mark.parametrize("slow", [True, False])
def test_a_changed_project_is_recomputed_at_once_unless_stale_is_allowed_and_computing_is_slow(team, slow):
    ws, pid, ids, clips = team
    agreement_view(ws.db, pid)
    if slow:
        as_if_slow(ws)
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
    with ws.db.write() as s:
        submit_job(s, "review_queue", project_id=pid, owner_id=reviewer)
    done = run_next_job(ws, worker="test-worker")
    assert done is not None
    assert done.status == "succeeded", done.error
    again = review_queue(ws.db, pid, allow_stale=True)
    assert again.fresh
    with ws.db.read() as s:
        assert again.queue["clip_id"].tolist() == disagreements(s, pid, limit=200)["clip_id"].tolist()
