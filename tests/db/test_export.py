"""Exports read back through the importer, filters, manifests and the ``earmark export`` command.

Expected values come from the source files themselves (``hashlib`` for clip identity, the metadata
CSV the test writes for labels), never from the export code.
"""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from db.models import Annotation, Clip, ClipFlag, ClipTag, DatasetItem, DatasetVersion, ModelRun, Prediction
from db.models import Resolution as Res
from labeling.cli import main as cli
from labeling.data.export import ExportError, ExportFilters, export_frame, export_project, export_zip
from labeling.data.formats.base import LabelRow
from labeling.data.formats.writers import verify_export
from labeling.data.importer import import_source
from labeling.data.labels_import import apply_label_rows
from labeling.data.projects import get_project, update_project
from tests.audio import speechlike, write_wav

# original name, label, transcript, tags, split, metadata
CLIPS = [
    ("spk1/yes_1.wav", "yes", "yes", ["noise:car"], "train", {"speaker": "s1", "accent": "scottish"}),
    ("spk1/no_2.wav", "no", "no", [], "train", {"speaker": "s1", "accent": "scottish"}),
    (
        "spk2/yes_3.wav",
        "yes",
        "yes please",
        ["channel:low-bandwidth", "noise:car"],
        "dev",
        {"speaker": "s2", "accent": '=HYPERLINK("http://evil.example","x")'},
    ),
    ("spk3/up_4.wav", "=SUM(A1:A2)", "@up", [], "test", {"speaker": "s3", "device": "+phone"}),
    ("spk3/down_5.wav", None, None, [], "test", {"speaker": "s3", "device": "-mic"}),
]


def write_source(root: Path) -> dict[str, tuple]:
    """An audiofolder dataset of CLIPS; returns sha256 → (label, transcript, tags, split, metadata)."""
    expected = {}
    root.mkdir(parents=True, exist_ok=True)
    with (root / "metadata.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["file_name", "label", "transcription", "tags", "split", "speaker", "accent", "device"]
        )
        for n, (name, label, transcript, tags, split, meta) in enumerate(CLIPS, start=1):
            path = write_wav(root / name, speechlike(100 + n))
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            expected[sha] = (label, transcript, sorted(tags), split, meta)
            writer.writerow(
                [
                    name,
                    label or "",
                    transcript or "",
                    ";".join(tags),
                    split,
                    meta.get("speaker", ""),
                    meta.get("accent", ""),
                    meta.get("device", ""),
                ]
            )
    return expected


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, dict[str, tuple]]:
    root = tmp_path / "source"
    return root, write_source(root)


@pytest.fixture
def project(workspace, source) -> dict[str, tuple]:
    root, expected = source
    report = import_source(workspace, root, "voice")
    assert report.source_format == "audiofolder"
    assert report.n_imported == len(CLIPS)
    return expected


def project_state(ws, name: str) -> dict[str, tuple]:
    """sha256 → (label, transcript, sorted tags, split, metadata) as stored, straight from the tables."""
    with ws.db.read() as s:
        pid = get_project(s, name).id
        rows = s.execute(
            select(Clip.id, Clip.sha256, Clip.split, Clip.meta, Res.label, Res.transcript)
            .outerjoin(Res, Res.clip_id == Clip.id)
            .where(Clip.project_id == pid)
        ).all()
        tags: dict[int, list[str]] = {}
        for cid, tag in s.execute(select(ClipTag.clip_id, ClipTag.tag)):
            tags.setdefault(cid, []).append(tag)
    return {
        sha: (label, transcript, sorted(tags.get(cid, [])), split, dict(meta))
        for cid, sha, split, meta, label, transcript in rows
    }


def clip_ids(ws, name: str = "voice") -> dict[str, int]:
    """original name → clip id."""
    with ws.db.read() as s:
        pid = get_project(s, name).id
        return dict(s.execute(select(Clip.original_name, Clip.id).where(Clip.project_id == pid)).all())


def test_the_import_of_the_source_holds_what_the_files_say(workspace, project):
    assert project_state(workspace, "voice") == project


@pytest.mark.parametrize(
    ("fmt", "copy_audio"),
    [
        ("csv", True),
        ("csv", False),
        ("jsonl", True),
        ("jsonl", False),
        ("audiofolder", True),
        ("nemo", True),
        ("nemo", False),
        ("labelstudio", True),
        ("labelstudio", False),
    ],
)
def test_every_export_imports_back_with_the_same_clips_labels_and_metadata(
    workspace, project, tmp_path, fmt, copy_audio
):
    out = tmp_path / f"export-{fmt}"
    report = export_project(workspace, "voice", fmt=fmt, out=out, copy_audio=copy_audio)
    assert report.n_clips == len(CLIPS)
    assert verify_export(out) == []

    again = import_source(workspace, out, "again", audio_root=None if copy_audio else workspace.store.root)

    assert again.rejected == []
    assert project_state(workspace, "again") == project


def test_csv_export_neutralises_formulas_and_reads_back_exactly(workspace, project, tmp_path):
    out = tmp_path / "csv"
    export_project(workspace, "voice", fmt="csv", out=out)

    with (out / "metadata.csv").open(newline="", encoding="utf-8") as f:
        cells = [cell for row in csv.reader(f) for cell in row]
    dangerous = ("=", "+", "-", "@")
    assert not [c for c in cells if c.startswith(dangerous)]
    assert "'=SUM(A1:A2)" in cells
    assert "'@up" in cells
    assert "'+phone" in cells
    assert "'-mic" in cells
    assert """'=HYPERLINK("http://evil.example","x")""" in cells


def test_manifest_hashes_are_the_sha256_of_the_exported_files(workspace, project, tmp_path):
    out = tmp_path / "nemo"
    export_project(workspace, "voice", fmt="nemo", out=out)

    manifest = json.loads((out / "MANIFEST.json").read_text(encoding="utf-8"))
    files = {e["path"]: e for e in manifest["files"]}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"MANIFEST.json"}
    assert set(files) == on_disk
    for rel, entry in files.items():
        data = (out / rel).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["bytes"] == len(data)
    audio = {e["sha256"] for p, e in files.items() if p.endswith(".wav")}
    assert audio == set(project)
    assert manifest["clips"] == len(CLIPS)


def _add_derived(ws, parent_id: int, kind: str, name: str) -> int:
    with ws.db.write() as s:
        parent = s.get(Clip, parent_id)
        clip = Clip(
            project_id=parent.project_id,
            sha256=hashlib.sha256(name.encode()).hexdigest(),
            storage_key=parent.storage_key,
            original_name=name,
            duration_s=parent.duration_s,
            sample_rate=parent.sample_rate,
            channels=parent.channels,
            frames=parent.frames,
            audio_format=parent.audio_format,
            split="train",
            parent_clip_id=parent_id,
            derivation={"kind": kind},
        )
        s.add(clip)
        s.flush()
        return clip.id


def _exported(ws, **filters) -> set[str]:
    with ws.db.read() as s:
        pid = get_project(s, "voice").id
        frame = export_frame(s, ws.store, pid, filters=ExportFilters(**filters))
    return set(frame["original_name"])


def test_filters_change_the_exported_set_as_a_user_expects(workspace, project):
    ids = clip_ids(workspace)
    augmented = _add_derived(workspace, ids["spk1/yes_1.wav"], "augment", "yes_1+car.wav")
    _add_derived(workspace, ids["spk1/yes_1.wav"], "trim", "yes_1-trimmed.wav")
    now = datetime.now(UTC)
    with workspace.db.write() as s:
        s.add(
            Res(
                clip_id=augmented,
                project_id=s.get(Clip, augmented).project_id,
                label="yes",
                method="imported",
            )
        )
        s.execute(update(Clip).where(Clip.id == ids["spk1/no_2.wav"]).values(deleted_at=now))
        s.add(ClipFlag(clip_id=ids["spk2/yes_3.wav"], kind="label_issue"))
        s.add(ClipFlag(clip_id=ids["spk3/up_4.wav"], kind="label_issue", resolved_at=now))
        s.add(ClipFlag(clip_id=ids["spk3/up_4.wav"], kind="quality", resolved_at=now))
        # Agreement recorded with the resolution wins over what the annotations say.
        s.execute(update(Res).where(Res.clip_id == ids["spk1/yes_1.wav"]).values(agreement=0.5))
        update_project(s, "voice", annotations_per_clip=3)
        rows = [
            LabelRow("file_name", "yes_1.wav", "ann", "yes", "yes"),
            LabelRow("file_name", "yes_1.wav", "bea", "yes", "yes"),
            LabelRow("file_name", "yes_3.wav", "ann", "yes", "yes please"),
            LabelRow("file_name", "yes_3.wav", "bea", "yes", "yes please"),
            LabelRow("file_name", "yes_3.wav", "cal", "no", "no"),
            LabelRow("file_name", "up_4.wav", "ann", "=SUM(A1:A2)", "up"),
            LabelRow("file_name", "up_4.wav", "bea", "down", "down"),
        ]
        assert apply_label_rows(s, "voice", rows, add_classes=True).n_created == len(rows)

    everything = {"spk1/yes_1.wav", "spk2/yes_3.wav", "spk3/up_4.wav", "spk3/down_5.wav"}
    derived = {"yes_1+car.wav", "yes_1-trimmed.wav"}
    assert _exported(workspace) == everything | derived  # the deleted clip never
    assert _exported(workspace, resolved_only=True) == everything - {"spk3/down_5.wav"} | {"yes_1+car.wav"}
    assert _exported(workspace, splits=("test",)) == {"spk3/up_4.wav", "spk3/down_5.wav"}
    assert _exported(workspace, splits=("train", "dev")) == {"spk1/yes_1.wav", "spk2/yes_3.wav"} | derived
    assert _exported(workspace, exclude_derived=True) == everything
    assert _exported(workspace, exclude_augmented=True) == everything | {"yes_1-trimmed.wav"}
    assert _exported(workspace, exclude_flagged=True) == everything - {"spk2/yes_3.wav"} | derived
    # yes_1: 0.5 as recorded; yes_3: 2 of 3 annotators agree; up_4: 1 of 2; the rest: nothing to measure
    assert _exported(workspace, min_agreement=0.6) == {"spk2/yes_3.wav"}
    assert _exported(workspace, min_agreement=0.5) == {"spk1/yes_1.wav", "spk2/yes_3.wav", "spk3/up_4.wav"}
    assert _exported(workspace, min_agreement=0.7) == set()
    assert _exported(workspace, include_deleted=True) == everything | derived | {"spk1/no_2.wav"}

    report = export_project(
        workspace,
        "voice",
        fmt="jsonl",
        out=workspace.settings.data_dir / "filtered",
        filters=ExportFilters(resolved_only=True, exclude_derived=True, exclude_flagged=True),
    )
    assert report.n_clips == 2
    assert report.excluded == {"deleted": 1, "derived": 2, "flagged": 1, "unresolved": 1}
    lines = (workspace.settings.data_dir / "filtered" / "metadata.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["original_name"] for line in lines) == ["spk1/yes_1.wav", "spk3/up_4.wav"]


def test_nothing_passing_the_filters_is_refused_and_writes_nothing(workspace, project, tmp_path):
    with pytest.raises(ExportError, match="no clip of 'voice' passes the filters"):
        export_project(
            workspace, "voice", fmt="csv", out=tmp_path / "none", filters=ExportFilters(min_agreement=0.9)
        )
    assert not (tmp_path / "none").exists()
    assert list(tmp_path.glob(".none*")) == []


def test_a_dataset_version_exports_its_frozen_labels_and_its_hash(workspace, project, tmp_path):
    ids = clip_ids(workspace)
    with workspace.db.write() as s:
        pid = get_project(s, "voice").id
        version = DatasetVersion(project_id=pid, name="v1", content_hash="ab" * 32, n_clips=2)
        s.add(version)
        s.flush()
        s.add_all(
            [
                DatasetItem(version_id=version.id, clip_id=ids["spk1/yes_1.wav"], label="no", split="test"),
                DatasetItem(
                    version_id=version.id, clip_id=ids["spk3/up_4.wav"], label="up", tags=["x:y"], split="dev"
                ),
            ]
        )
    out = tmp_path / "v1"

    report = export_project(workspace, "voice", fmt="jsonl", out=out, version="v1")

    assert (report.n_clips, report.version_name, report.dataset_version) == (2, "v1", "ab" * 32)
    lines = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    got = {r["original_name"]: (r["label"], r["split"], r.get("tags", [])) for r in lines}
    assert got == {"spk1/yes_1.wav": ("no", "test", []), "spk3/up_4.wav": ("up", "dev", ["x:y"])}
    assert json.loads((out / "MANIFEST.json").read_text())["dataset_version"] == "ab" * 32
    with pytest.raises(ExportError, match=r"no dataset version 'v9'.*v1"):
        export_project(workspace, "voice", fmt="csv", out=tmp_path / "v9", version="v9")


def test_manifest_names_the_latest_run_of_each_model(workspace, project, tmp_path):
    ids = clip_ids(workspace)
    with workspace.db.write() as s:
        pid = get_project(s, "voice").id
        old = ModelRun(project_id=pid, name="svm", code_fingerprint="1" * 64)
        new = ModelRun(project_id=pid, name="svm", code_fingerprint="2" * 64)
        other = ModelRun(project_id=pid, name="asr", code_fingerprint="3" * 64)
        s.add_all([old, new, other])
        s.flush()
        s.add(Prediction(run_id=new.id, clip_id=ids["spk1/yes_1.wav"], label="yes", confidence=0.9))

    export_project(workspace, "voice", fmt="csv", out=tmp_path / "csv", copy_audio=False)
    export_project(workspace, "voice", fmt="labelstudio", out=tmp_path / "ls", copy_audio=False)

    csv_manifest = json.loads((tmp_path / "csv" / "MANIFEST.json").read_text())
    assert csv_manifest["model_fingerprints"] == {"asr": "3" * 64, "svm": "2" * 64}
    ls_manifest = json.loads((tmp_path / "ls" / "MANIFEST.json").read_text())
    assert ls_manifest["model_fingerprints"] == {"svm": "2" * 64}  # the run whose predictions are in it
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    assert [p["model_version"] for t in tasks for p in t["predictions"]] == ["svm"]


# ---------------------------------------------------------------- Label Studio round trip


def _choice(name: str, *values: str) -> dict:
    return {"from_name": name, "to_name": "audio", "type": "choices", "value": {"choices": list(values)}}


def _text(value: str) -> dict:
    return {"from_name": "transcription", "to_name": "audio", "type": "textarea", "value": {"text": [value]}}


def label_studio_export(upload: Path) -> tuple[list[dict], dict[str, str]]:
    """A Label Studio UI export (user ids, a cancelled annotation, full predictions) and sha by name."""
    shas = {}
    for n in (1, 2):
        path = write_wav(upload / "7" / f"{n:08x}-clip{n}.wav", speechlike(200 + n))
        shas[f"clip{n}.wav"] = hashlib.sha256(path.read_bytes()).hexdigest()
    tasks = [
        {
            "id": n,
            "data": {"audio": f"/data/upload/7/{n:08x}-clip{n}.wav", "speaker": f"s{n}"},
            "annotations": [
                {
                    "id": 10 * n,
                    "completed_by": 1,
                    "result": [_choice("label", "yes"), _text("yes"), _choice("tags", "far")],
                },
                {
                    "id": 10 * n + 1,
                    "completed_by": 2,
                    "result": [_choice("label", "no"), _choice("noise", "car")],
                },
                {"id": 10 * n + 2, "completed_by": 3, "was_cancelled": True, "result": []},
            ],
            "predictions": [
                {"model_version": "svm-1", "score": 0.25 * n, "result": [_choice("label", "yes")]}
            ],
        }
        for n in (1, 2)
    ]
    return tasks, shas


def labels_in(ws, name: str) -> tuple[set, set, dict]:
    """(annotations, predictions, resolutions) of a project keyed by clip SHA-256."""
    from db.models import User

    with ws.db.read() as s:
        pid = get_project(s, name).id
        anns = {
            (sha, who, label, transcript, tuple(tags))
            for sha, who, label, transcript, tags in s.execute(
                select(Clip.sha256, User.name, Annotation.label, Annotation.transcript, Annotation.tags)
                .join(Clip, Clip.id == Annotation.clip_id)
                .join(User, User.id == Annotation.annotator_id)
                .where(Annotation.project_id == pid)
            )
        }
        preds = set(
            s.execute(
                select(Clip.sha256, ModelRun.name, Prediction.label, Prediction.confidence)
                .join(Clip, Clip.id == Prediction.clip_id)
                .join(ModelRun, ModelRun.id == Prediction.run_id)
                .where(ModelRun.project_id == pid)
            ).all()
        )
        res = dict(
            s.execute(
                select(Clip.sha256, Res.label).join(Res, Res.clip_id == Clip.id).where(Clip.project_id == pid)
            ).all()
        )
    return anns, preds, res


def test_label_studio_export_imported_exported_and_imported_again_keeps_the_labels(workspace, tmp_path):
    tasks, shas = label_studio_export(tmp_path / "upload")
    source = tmp_path / "project-7.json"
    source.write_text(json.dumps(tasks), encoding="utf-8")

    first = import_source(workspace, source, "ls", audio_root=tmp_path / "upload")
    assert first.source_format == "labelstudio"
    assert sum("cancelled" in p.reason for p in first.rejected) == 2
    anns, preds, res = labels_in(workspace, "ls")
    assert anns == {
        (shas[c], who, label, text, tags)
        for c in shas
        for who, label, text, tags in [
            ("labelstudio-user-1", "yes", "yes", ("far",)),
            ("labelstudio-user-2", "no", None, ("noise:car",)),
        ]
    }
    assert preds == {(shas["clip1.wav"], "svm-1", "yes", 0.25), (shas["clip2.wav"], "svm-1", "yes", 0.5)}
    assert res == {}  # no ground truth in this export

    # Final labels travel as Label Studio ground truth; give one clip a reviewer's label.
    with workspace.db.write() as s:
        apply_label_rows(s, "ls", [LabelRow("sha256", shas["clip1.wav"], None, "yes")], as_="resolutions")
    out = tmp_path / "to-label-studio"
    report = export_project(workspace, "ls", fmt="labelstudio", out=out)
    assert (report.n_annotations, report.n_predictions) == (4, 2)
    with workspace.db.read() as s:
        fingerprint = s.scalar(select(ModelRun.code_fingerprint).where(ModelRun.name == "svm-1"))
    assert report.model_fingerprints == {"svm-1": fingerprint}

    second = import_source(workspace, out, "ls-again")

    assert second.source_format == "labelstudio"
    assert second.rejected == []
    assert labels_in(workspace, "ls-again") == (anns, preds, {shas["clip1.wav"]: "yes"})


# ---------------------------------------------------------------- the zip and the command


def test_export_zip_packs_the_export_and_removes_the_unpacked_folder(workspace, project, tmp_path):
    import zipfile

    report, path = export_zip(workspace, "voice", fmt="audiofolder", folder=tmp_path / "dl")

    assert path.parent == tmp_path / "dl"
    assert [p.name for p in (tmp_path / "dl").iterdir()] == [path.name]
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        top = names[0].split("/")[0]
        audio = {hashlib.sha256(zf.read(n)).hexdigest() for n in names if n.endswith(".wav")}
        assert f"{top}/MANIFEST.json" in names
    assert audio == set(project)
    assert report.n_clips == len(CLIPS)


def test_cli_export_json_report_and_clear_errors(workspace, project, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EARMARK_DATA_DIR", str(workspace.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", workspace.settings.database_url)
    out = tmp_path / "cli"

    code = cli(
        ["export", "--project", "voice", "--format", "nemo", "--out", str(out), "--split", "test", "--json"]
    )

    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["n_clips"], report["excluded"]) == (2, {"deleted": 0, "split": 3})
    assert sorted(p.name for p in out.glob("*_manifest.json")) == ["test_manifest.json"]
    assert cli(["export", "--project", "voice", "--format", "csv", "--out", str(out)]) == 1
    assert "is not empty" in capsys.readouterr().err
    assert cli(["export", "--project", "nope", "--format", "csv", "--out", str(tmp_path / "x")]) == 1
    assert "no project named 'nope'" in capsys.readouterr().err
    args = ["export", "--project", "voice", "--format", "audiofolder", "--out", str(tmp_path / "y")]
    assert cli([*args, "--no-copy-audio"]) == 1
    assert "with the audio" in capsys.readouterr().err
    with workspace.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Clip)) == len(CLIPS)
