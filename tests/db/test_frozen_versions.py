"""A dataset version is a contract: whatever happens to the live project after it was frozen — fixes
that retire clips, relabels, re-tags, new classes, other normalisation, edited metadata — training on
it again reads the same clips, labels, tags, metadata and splits, gives the same data fingerprint and,
with the same seed, the same predictions; reading an old run back shows what it was scored on.

Real FSDD recordings on both engines: three speakers' digits, takes 0-4 test, 5-9 train.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select, update

from db.models import Clip, DatasetVersion, ModelRun, Resolution, User
from labeling.annotate.review import resolve_clip
from labeling.data.checks import fix_clips
from labeling.data.export import export_frame
from labeling.data.projects import update_project
from labeling.data.versions import create_version, get_version, list_versions
from labeling.model.compare import compare_runs
from labeling.model.error_analysis import tag_clip
from labeling.model.runs import list_runs, run_predictions, train_run
from labeling.platform.auth import add_user
from tests.db.test_runs import make_fsdd_project

pytestmark = pytest.mark.fsdd

FROZEN = ["clip_id", "split", "y_true", "tags", "speaker"]


@pytest.fixture
def digits(workspace, fsdd_dir, tmp_path):
    ws = workspace
    project_id = make_fsdd_project(ws, fsdd_dir, tmp_path, takes=10)
    with ws.db.write() as s:
        add_user(s, name="rosa", role="reviewer", password="password1")
    return ws, project_id


def _everything_changes(ws, project_id: int) -> dict[str, int]:
    """Fix, relabel, re-tag, add a class, change the normalisation and edit metadata, live."""
    with ws.db.read() as s:
        live = s.execute(
            select(Clip.id, Clip.split, Resolution.label)
            .join(Resolution, Resolution.clip_id == Clip.id)
            .where(Clip.project_id == project_id, Clip.deleted_at.is_(None))
            .order_by(Clip.id)
        ).all()
        rosa = s.scalar(select(User.id).where(User.name == "rosa"))
    train_ids = [c for c, split, _ in live if split == "train"]
    test_ids = [c for c, split, label in live if split == "test" and label != "7"]
    # Half the training clips go through a loudness and silence fix: their originals are retired.
    report = fix_clips(ws, project_id, train_ids[::2], actions=["silence", "loudness"])
    with ws.db.write() as s:
        for clip_id in test_ids[:15]:
            resolve_clip(s, project_id, clip_id, label="7", reviewer_id=rosa)
        for clip_id in test_ids[15:40]:
            tag_clip(s, clip_id, "noise:car")
        update_project(
            s, project_id, classes=[*map(str, range(10)), "ten"], normalization={"lowercase": False}
        )
        s.execute(
            update(Clip)
            .where(Clip.id.in_(test_ids[40:60]))
            .values(meta={"speaker": "someone-else", "label": "0"})
        )
    return {"fixed": len(report.fixed), "relabelled": 15, "retagged": 25}


def test_training_on_a_version_again_reads_the_same_data_whatever_the_live_project_did(digits):
    ws, project_id = digits
    with ws.db.write() as s:
        v1 = create_version(s, project_id, name="v1")
    first = train_run(ws, project_id, version="v1", random_state=0)
    before = run_predictions_of(ws, first.id)
    with ws.db.read() as s:
        exported = export_frame(s, None, project_id, version_id=v1.id)

    changed = _everything_changes(ws, project_id)
    assert changed["fixed"] > 20  # enough retired clips to have broken training on v1 before

    again = train_run(ws, project_id, version="v1", random_state=0)
    after = run_predictions_of(ws, again.id)
    # The same data: the fingerprint of what was read is the version's own content hash.
    assert first.data_fingerprint == again.data_fingerprint == v1.content_hash
    assert again.n_predictions == first.n_predictions == v1.n_clips == 300
    # The same clips, labels, tags, metadata and splits — and, with the same seed, the same model.
    pd.testing.assert_frame_equal(before[FROZEN], after[FROZEN])
    assert (before["y_pred"] == after["y_pred"]).all()
    np.testing.assert_allclose(before["confidence"], after["confidence"], rtol=0, atol=1e-9)
    assert first.metrics["test"] == again.metrics["test"]

    # The first run, read back after all that, still shows what it was scored on.
    pd.testing.assert_frame_equal(before, run_predictions_of(ws, first.id))
    # And the version exports as it was frozen.
    with ws.db.read() as s:
        pd.testing.assert_frame_equal(exported, export_frame(s, None, project_id, version_id=v1.id))

    with ws.db.read() as s:
        cmp = compare_runs(s, first.id, again.id)
    assert cmp.same_data
    assert cmp.no_change
    assert not cmp.code_changed
    assert cmp.warnings == []
    assert cmp.verdict().startswith("No change")
    assert cmp.data_diff is not None
    assert cmp.data_diff.unchanged


def run_predictions_of(ws, run_id: int) -> pd.DataFrame:
    with ws.db.read() as s:
        return run_predictions(s, run_id).reset_index(drop=True)


def test_a_run_on_the_current_labels_reads_a_snapshot_that_a_named_version_can_adopt(digits):
    ws, project_id = digits
    run = train_run(ws, project_id, random_state=0)
    before = run_predictions_of(ws, run.id)
    with ws.db.read() as s:
        snapshot = get_version(s, project_id, run.dataset_version_id)
        # Nobody named it: the version list people pick from does not show it.
        assert snapshot.kind == "snapshot"
        assert list_versions(s, project_id).empty
        assert len(list_versions(s, project_id, include_snapshots=True)) == 1
    assert run.data_fingerprint == snapshot.content_hash

    _everything_changes(ws, project_id)
    pd.testing.assert_frame_equal(before, run_predictions_of(ws, run.id))

    # Training on the current labels again freezes the new state: another snapshot, other data.
    again = train_run(ws, project_id, random_state=0)
    assert again.dataset_version_id != run.dataset_version_id
    assert again.data_fingerprint != run.data_fingerprint
    with ws.db.read() as s:
        cmp = compare_runs(s, run.id, again.id)
        runs = list_runs(s, project_id)
    assert not cmp.same_data
    assert cmp.data_diff is not None
    assert len(cmp.data_diff.relabelled) == 15
    assert "the difference comes from the data alone" in cmp.verdict()

    # Freezing the current labels by name, unfiltered, is that second snapshot: it takes the name.
    with ws.db.write() as s:
        named = create_version(s, project_id, name="after fixes", filters=_unfiltered(), note="as trained on")
    assert named.id == again.dataset_version_id
    assert named.kind == "named"
    with ws.db.read() as s:
        assert list_runs(s, project_id).set_index("run_id").loc[again.id, "version"] == "after fixes"
    assert runs.set_index("run_id").loc[run.id, "version"] == snapshot.label
    assert snapshot.label.startswith("current labels of ")


def _unfiltered():
    from labeling.data.versions import SNAPSHOT_FILTERS

    return SNAPSHOT_FILTERS


def test_runs_that_name_one_version_but_read_different_data_are_flagged(digits):
    ws, project_id = digits
    with ws.db.write() as s:
        create_version(s, project_id, name="v1")
    a = train_run(ws, project_id, version="v1", random_state=0)
    b = train_run(ws, project_id, version="v1", random_state=1)
    with ws.db.read() as s:
        cmp = compare_runs(s, a.id, b.id)
    assert cmp.same_data
    assert "different random seeds (0 and 1)" in " ".join(cmp.warnings)
    assert "only chance in training" in cmp.verdict() or cmp.no_change

    # A version never changes, so two runs on it cannot read different data; if they ever did, the
    # comparison must say so rather than credit the data.
    with ws.db.write() as s:
        s.execute(update(ModelRun).where(ModelRun.id == b.id).values(data_fingerprint="f" * 64))
    with ws.db.read() as s:
        cmp = compare_runs(s, a.id, b.id)
        name = s.scalar(select(DatasetVersion.name).where(DatasetVersion.id == a.dataset_version_id))
    assert not cmp.same_data
    assert any(f"both name version {name!r} but read different data" in w for w in cmp.warnings)
