"""Your own training code as a command: manifest in, predictions out, fingerprinted by its files."""

from __future__ import annotations

import sys
from collections import Counter

import pytest
from sqlalchemy import select, update

from db.models import Clip, ModelRun, Resolution
from labeling.data.importer import import_path
from labeling.data.projects import update_project
from labeling.data.versions import create_version
from labeling.model.compare import compare_runs
from labeling.model.training_command import TrainingCommandError, run_training_command
from tests.audio import speechlike, write_wav

PATTERN = r"(?P<label>[a-z]+)_(?P<speaker>spk\d)_\d+\.wav"
MAJORITY = """\
import json, sys
from collections import Counter
manifest, out = sys.argv[1], sys.argv[2]
rows = [json.loads(line) for line in open(manifest)]
for r in rows:
    assert open(r["audio_path"], "rb").read(4) == b"RIFF"
majority = Counter(r["label"] for r in rows if r["split"] == "train").most_common(1)[0][0]
with open(out, "w") as fh:
    for r in rows:
        fh.write(json.dumps({"clip_id": r["clip_id"], "label": majority, "confidence": 0.5}) + "\\n")
"""


@pytest.fixture
def project(workspace, tmp_path):
    src = tmp_path / "src"
    labels = ["yes", "yes", "yes", "no", "yes", "no", "up", "yes", "no", "yes", "up", "no"]
    for i, label in enumerate(labels):
        write_wav(src / f"{label}_spk{i % 3}_{i}.wav", speechlike(i))
    import_path(workspace, src, "demo", pattern=PATTERN)
    with workspace.db.write() as s:
        for n, cid in enumerate(s.scalars(select(Clip.id).order_by(Clip.id)).all()):
            s.execute(update(Clip).where(Clip.id == cid).values(split=["train", "train", "test"][n % 3]))
        create_version(s, "demo", name="v1")
    script = tmp_path / "code" / "train.py"
    script.parent.mkdir()
    script.write_text(MAJORITY)
    with workspace.db.write() as s:
        update_project(
            s,
            "demo",
            settings={
                "training_command": f"{sys.executable} train.py {{manifest}} {{predictions}}",
                "training_files": ["train.py"],
            },
        )
    return workspace, script


def test_a_majority_class_script_becomes_a_command_run(project):
    ws, script = project
    run = run_training_command(ws, "demo", "v1", cwd=script.parent)
    assert run.kind == "command"
    assert run.n_predictions == 12
    with ws.db.read() as s:
        truth = dict(s.execute(select(Resolution.clip_id, Resolution.label)).all())
        splits = dict(s.execute(select(Clip.id, Clip.split)).all())
    train = Counter(truth[c] for c, sp in splits.items() if sp == "train")
    majority = train.most_common(1)[0][0]
    test = [truth[c] for c, sp in splits.items() if sp == "test"]
    assert run.metrics["test"]["accuracy"] == pytest.approx(sum(t == majority for t in test) / len(test))
    assert run.params["dataset_version"] == "v1"
    assert set(run.params["files"]) == {"train.py"}

    # The same code again: same fingerprint. An edited script: a code change the comparison names.
    again = run_training_command(ws, "demo", "v1", cwd=script.parent)
    assert again.code_fingerprint == run.code_fingerprint
    script.write_text(MAJORITY + "# tuned\n")
    edited = run_training_command(ws, "demo", "v1", cwd=script.parent)
    assert edited.code_fingerprint != run.code_fingerprint
    with ws.db.read() as s:
        assert not compare_runs(s, run.id, again.id).code_changed
        cmp = compare_runs(s, run.id, edited.id)
    assert cmp.code_changed
    assert "NOT a data-only change" in cmp.verdict()


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("import sys; sys.exit('boom')", "exited with status 1:\nboom"),
        ("pass", "wrote no predictions"),
        ("import time; time.sleep(5)", "longer than 1 s"),
    ],
)
def test_failures_are_reported_and_store_nothing(project, script, message):
    ws, path = project
    path.write_text(script)
    with pytest.raises(TrainingCommandError, match=message):
        run_training_command(ws, "demo", "v1", cwd=path.parent, timeout_s=1)
    with ws.db.read() as s:
        assert s.scalar(select(ModelRun.id)) is None


def test_a_missing_training_file_or_command_is_refused(project):
    ws, script = project
    script.unlink()
    with pytest.raises(TrainingCommandError, match="does not exist"):
        run_training_command(ws, "demo", "v1", cwd=script.parent)
    with ws.db.write() as s:
        update_project(s, "demo", settings={})
    with pytest.raises(TrainingCommandError, match="no training command"):
        run_training_command(ws, "demo", "v1", cwd=script.parent)
