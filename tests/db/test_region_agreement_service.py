"""Region agreement of a project's stored regions, against scikit-learn and statsmodels on frames."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from labeling.cli import main
from labeling.data.importer import ensure_users, import_path
from labeling.data.projects import create_project
from labeling.data.regions import save_regions
from labeling.quality.region_agreement import project_region_agreement
from tests.audio import tone, write_wav

SECONDS = {"a.wav": 8.0, "b.wav": 5.0}
DRAWN = {
    ("a.wav", "ann"): [(0.5, 2.0, "speech"), (3.0, 6.0, "speech"), (6.5, 7.5, "noise")],
    ("a.wav", "bob"): [(0.6, 2.0, "speech"), (3.4, 6.1, "speech"), (6.0, 7.5, "noise")],
    ("b.wav", "ann"): [(1.0, 4.0, "speech")],
    ("b.wav", "bob"): [(1.1, 3.5, "speech"), (3.5, 4.5, "noise")],
    ("b.wav", "cat"): [(0.0, 5.0, "noise")],  # cat did only b.wav: compared with the others there
}


def frames(regions, seconds, step=0.01):
    """Category of each 10 ms frame, computed here, independently: the set of classes whose regions
    hold the frame's centre (``noise+speech`` where two overlap, ``none`` where none does)."""
    centres = (np.arange(round(seconds / step)) + 0.5) * step
    active = [set() for _ in centres]
    for start, end, label in regions:
        for i in np.flatnonzero((centres >= start) & (centres < end)):
            active[i].add(label)
    return np.array(["+".join(sorted(a)) or "none" for a in active], dtype=object)


@pytest.fixture
def project(workspace, tmp_path):
    src = tmp_path / "rec"
    for i, (name, seconds) in enumerate(SECONDS.items()):
        write_wav(src / name, tone(seconds, freq=200 + 100 * i))
    with workspace.db.write() as s:
        info = create_project(s, name="meet", task_kind="regions", classes=["speech", "noise"])
        users = ensure_users(s, {"ann", "bob", "cat"})
    import_path(workspace, src, "meet", create=False)
    from labeling.data.clips import clip_frame

    with workspace.db.write() as s:
        clips = clip_frame(s, info.id).set_index("original_name")["clip_id"].to_dict()
        for (name, who), regions in DRAWN.items():
            rows = [{"start": a, "end": b, "label": c} for a, b, c in regions]
            save_regions(s, info.id, clips[name], rows, annotator_id=users[who])
    return workspace, info.id


def test_region_agreement_matches_frame_kappas_computed_independently(project):
    ws, pid = project
    with ws.db.read() as s:
        report = project_region_agreement(s, pid)
    assert report.annotators == ["ann", "bob", "cat"]
    assert report.n_recordings == 2
    assert report.left_out == {}
    assert report.others == []
    assert report.annotators_per_recording == {2: 1, 3: 1}
    drawn = {(n, who): frames(DRAWN[(n, who)], SECONDS[n]) for n, who in DRAWN}
    ann = np.concatenate([drawn[(n, "ann")] for n in SECONDS])
    bob = np.concatenate([drawn[(n, "bob")] for n in SECONDS])
    cohen = report.agreement.cohen_kappa.set_index(["rater_a", "rater_b"])
    assert cohen.loc[("ann", "bob"), "kappa"] == pytest.approx(cohen_kappa_score(ann, bob), abs=1e-9)
    # cat did only b.wav: each pair with cat is compared there alone.
    for other in ("ann", "bob"):
        expected = cohen_kappa_score(drawn[("b.wav", other)], drawn[("b.wav", "cat")])
        assert cohen.loc[(other, "cat"), "kappa"] == pytest.approx(expected, abs=1e-9)
        assert cohen.loc[(other, "cat"), "n_recordings"] == 1
    assert cohen.loc[("ann", "bob"), "n_recordings"] == 2
    # Per recording, Fleiss' kappa among that recording's own annotators.
    by_name = {report.names[int(i)]: row for i, row in report.agreement.by_item.iterrows()}
    for name, who in (("a.wav", ["ann", "bob"]), ("b.wav", ["ann", "bob", "cat"])):
        table, _ = aggregate_raters(np.stack([drawn[(name, w)] for w in who], axis=1))
        assert by_name[name]["fleiss_kappa"] == pytest.approx(fleiss_kappa(table, method="fleiss"), abs=1e-9)
        assert by_name[name]["n_annotators"] == len(who)
    data = report.to_dict()
    assert data["coverage"] == {
        "recordings": 2,
        "annotators": 3,
        "annotators_per_recording": {"2": 1, "3": 1},
    }
    assert {(p["rater_a"], p["rater_b"]): p["n_recordings"] for p in data["diarization_pairs"]} == {
        ("ann", "bob"): 2,
        ("ann", "cat"): 1,
        ("bob", "cat"): 1,
    }


def test_earmark_agreement_prints_region_agreement(project, monkeypatch, capsys):
    ws, _ = project
    monkeypatch.setenv("EARMARK_DATA_DIR", str(ws.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", ws.settings.database_url)
    assert main(["agreement", "--project", "meet"]) == 0
    out = capsys.readouterr().out
    assert "2 recordings labelled by ann, bob, cat" in out
    assert "Unitizing alpha" in out
    assert "Boundary F1 within ±200 ms" in out
    assert "DER / JER by pair" in out
    assert main(["agreement", "--project", "meet", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["annotators"] == ["ann", "bob", "cat"]
    assert -1 <= data["unitizing_alpha"] <= 1
    assert {r["recording"] for r in data["by_recording"]} == set(SECONDS)
