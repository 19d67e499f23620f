"""Dataset versions: frozen snapshots, refused duplicates, diffs and ``earmark version``."""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import select, update

from db.models import Clip, ClipFlag, DatasetItem, Resolution
from labeling.cli import main as cli
from labeling.data.importer import import_path
from labeling.data.versions import (
    VersionError,
    VersionFilters,
    create_version,
    diff_versions,
    get_version,
    list_versions,
    version_frame,
)
from tests.audio import speechlike, write_wav

PATTERN = r"(?P<label>[a-z]+)_(?P<speaker>spk\d)_\d+\.wav"


@pytest.fixture
def project(workspace, tmp_path):
    src = tmp_path / "src"
    for i in range(9):
        write_wav(src / f"{['yes', 'no', 'up'][i % 3]}_spk{i % 3}_{i}.wav", speechlike(i))
    import_path(workspace, src, "demo", pattern=PATTERN)
    return workspace


def test_a_version_freezes_labels_and_later_edits_do_not_change_it(project):
    with project.db.write() as s:
        v1 = create_version(s, "demo", name="v1", note="first")
    assert v1.n_clips == 9
    assert v1.parent_id is None
    with project.db.write() as s:
        clip_id = s.scalar(select(Clip.id).where(Clip.original_name.like("yes_%")).order_by(Clip.id))
        s.execute(update(Resolution).where(Resolution.clip_id == clip_id).values(label="no"))
    with project.db.read() as s:
        frozen = version_frame(s, v1.id).set_index("clip_id")
    assert frozen.loc[clip_id, "label"] == "yes"


def test_identical_content_is_refused_naming_the_existing_version(project):
    with project.db.write() as s:
        create_version(s, "demo", name="v1")
    with project.db.write() as s, pytest.raises(VersionError, match="identical to dataset version 'v1'"):
        create_version(s, "demo", name="v2")
    with project.db.read() as s:
        assert len(list_versions(s, "demo")) == 1


def test_a_child_version_records_its_changes_against_the_parent(project):
    with project.db.write() as s:
        v1 = create_version(s, "demo", name="v1")
        first, second = s.scalars(select(Clip.id).order_by(Clip.id).limit(2)).all()
        s.execute(update(Resolution).where(Resolution.clip_id == first).values(label="up"))
        s.add(ClipFlag(clip_id=second, kind="label_issue"))
    with project.db.write() as s:
        v2 = create_version(s, "demo", name="v2", filters=VersionFilters(exclude_flagged=True))
    assert v2.parent_name == "v1"
    assert v2.n_clips == 8
    assert v2.changes["relabelled"] == 1
    assert v2.changes["removed"] == 1
    with project.db.read() as s:
        diff = diff_versions(s, v1.id, v2.id)
        listed = list_versions(s, "demo")
    assert diff.removed["clip_id"].tolist() == [second]
    assert diff.relabelled["new_label"].tolist() == ["up"]
    assert listed["name"].tolist() == ["v1", "v2"]
    assert listed["parent"].tolist()[1] == "v1"


def test_the_hash_names_audio_by_its_bytes(project):
    with project.db.write() as s:
        v1 = create_version(s, "demo", name="v1")
        items = s.execute(
            select(Clip.storage_key, DatasetItem.label, DatasetItem.tags, DatasetItem.split)
            .join(DatasetItem, DatasetItem.clip_id == Clip.id)
            .where(DatasetItem.version_id == v1.id)
        ).all()
    lines = []
    for key, label, tags, split in items:
        sha = hashlib.sha256(project.store.path(key).read_bytes()).hexdigest()
        record = {"label": label, "sha256": sha, "split": split, "tags": sorted(tags), "transcript": None}
        lines.append(json.dumps(record, sort_keys=True, separators=(",", ":")))
    expected = hashlib.sha256(
        "".join(line + "\n" for line in sorted(lines, key=lambda x: json.loads(x)["sha256"])).encode()
    )
    assert v1.content_hash == expected.hexdigest()


def test_cli_creates_lists_and_diffs(project, monkeypatch, capsys):
    monkeypatch.setenv("EARMARK_DATA_DIR", str(project.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", project.settings.database_url)
    assert cli(["version", "create", "--project", "demo", "--name", "v1", "--note", "baseline"]) == 0
    assert "9 clips" in capsys.readouterr().out
    assert cli(["version", "create", "--project", "demo", "--name", "again"]) == 1
    assert "identical to dataset version 'v1'" in capsys.readouterr().err
    with project.db.write() as s:
        clip_id = s.scalar(select(Clip.id).order_by(Clip.id))
        s.execute(update(Resolution).where(Resolution.clip_id == clip_id).values(label="up"))
    assert cli(["version", "create", "--project", "demo", "--name", "v2", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["changes"]["relabelled"] == 1
    assert cli(["version", "list", "--project", "demo", "--json"]) == 0
    assert [v["name"] for v in json.loads(capsys.readouterr().out)] == ["v1", "v2"]
    assert cli(["version", "diff", "--project", "demo", "v1", "v2", "--json"]) == 0
    diff = json.loads(capsys.readouterr().out)
    assert diff["relabelled"][0]["clip_id"] == clip_id
    with project.db.read() as s:
        assert get_version(s, "demo", "v2").parent_name == "v1"
