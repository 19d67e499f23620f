"""Label issues on real speech: FSDD with 5% of its labels flipped at random must be found again.

The flipped clips are known to the test (it flipped them); the detector only sees the labels.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sqlalchemy import select, update

from db.models import Clip, ClipFlag, Resolution
from labeling.cli import main as cli
from labeling.data.importer import import_path
from labeling.quality.label_issues import FLAG_KIND, REVIEW_PRIORITY, open_label_issues, review_label_issues

pytestmark = pytest.mark.fsdd
PATTERN = r"(?P<label>\d)_(?P<speaker>[a-z]+)_(?P<index>\d+)\.wav"


@pytest.fixture
def flipped_fsdd(sqlite_workspace, fsdd_dir, request):
    ws = sqlite_workspace
    # Features are keyed by the audio's SHA-256, so a cache kept between test runs is always valid.
    shared = request.config.cache.mkdir("earmark-feature-cache")
    cache = ws.settings.data_dir / "cache"
    if cache.is_dir() and not any(cache.iterdir()):
        cache.rmdir()  # the empty, private folder the workspace made on opening
    cache.symlink_to(shared, target_is_directory=True)
    import_path(ws, fsdd_dir / "recordings", "fsdd", pattern=PATTERN)
    rng = np.random.default_rng(7)
    with ws.db.write() as s:
        rows = s.execute(select(Resolution.clip_id, Resolution.label).order_by(Resolution.clip_id)).all()
        chosen = rng.choice(len(rows), size=len(rows) // 20, replace=False)
        flipped = {}
        for i in chosen:
            clip_id, label = rows[i]
            wrong = str((int(label) + int(rng.integers(1, 10))) % 10)
            s.execute(update(Resolution).where(Resolution.clip_id == clip_id).values(label=wrong))
            flipped[clip_id] = (label, wrong)
    return ws, flipped


def test_flipped_labels_are_found_and_sent_to_review(flipped_fsdd, monkeypatch, capsys):
    ws, flipped = flipped_fsdd
    candidates, n_flagged = review_label_issues(ws, "fsdd")
    found = set(candidates["clip_id"])
    recall = len(found & set(flipped)) / len(flipped)
    precision = len(found & set(flipped)) / len(found)
    print(f"label issues: {len(found)} candidates, recall {recall:.3f}, precision {precision:.3f}")
    assert recall >= 0.85
    assert precision >= 0.7
    # The suggestion is, for most found flips, the label the clip had before it was flipped.
    hits = candidates[candidates["clip_id"].isin(flipped)]
    restored = np.mean([flipped[r.clip_id][0] == r.suggested_label for r in hits.itertuples()])
    assert restored >= 0.9
    assert n_flagged == len(found)
    with ws.db.read() as s:
        flags = set(s.scalars(select(ClipFlag.clip_id).where(ClipFlag.kind == FLAG_KIND)))
        priorities = set(s.scalars(select(Clip.priority).where(Clip.id.in_(found))))
        listed = open_label_issues(s, s.scalar(select(Clip.project_id).limit(1)))
    assert flags == found
    assert priorities == {REVIEW_PRIORITY}
    assert set(listed["clip_id"]) == found

    capsys.readouterr()
    monkeypatch.setenv("EARMARK_DATA_DIR", str(ws.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", ws.settings.database_url)
    assert cli(["label-issues", "--project", "fsdd", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    first = out["candidates"][0]
    assert {"clip_id", "file_name", "given_label", "suggested_label", "self_confidence"} <= set(first)
    assert first["file_name"].endswith(".wav")
    assert out["n_candidates"] == len(found)
