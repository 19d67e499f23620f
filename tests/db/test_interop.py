"""Every format there and back through the database, and other tools' files imported into a project.

A project with three annotators, final labels, tags, splits, metadata and one class nobody chose is
exported in each format and imported into a fresh project; what the format carries must come back
exactly (transcripts byte for byte). Expected values come from the source the test writes (hashlib
for clip identity), never from the code under test.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from db.models import Annotation, Clip, ClipTag, User
from db.models import Resolution as Res
from labeling.cli import main as cli
from labeling.data.export import ExportFilters, export_project
from labeling.data.formats.base import LabelRow
from labeling.data.importer import import_source
from labeling.data.labels_import import LabelImportError, apply_label_rows, import_labels
from labeling.data.projects import create_project, get_project
from labeling.platform.auth import add_user
from tests.audio import speechlike, write_wav
from tests.unit.test_formats_interop import FIXTURES, MIN_EXPORT

CLASSES = ["0", "1", "3", "8", "9"]  # nobody chooses 9
TAGS = {"noise": ["clean", "car", "people"]}
# original name, final label, transcript, tags, split, metadata
CLIPS = [
    ("spk1/0_a.wav", "0", "-four, =said", ["noise:car"], "train", {"speaker": "s1", "gender": "f"}),
    ("spk1/1_b.wav", "1", "''Tis the season", [], "train", {"speaker": "s1", "gender": "f"}),
    ("spk2/3_c.wav", "3", '"quoted", twice; =1+1', ["noise:people"], "dev", {"speaker": "s2"}),
    ("spk3/8_d.wav", "8", "مرحبا بالعالم", [], "test", {"speaker": "s3", "device": "@phone"}),
    ("spk3/0_e.wav", "0", "こんにちは NA", ["noise:clean"], "test", {"speaker": "s3", "device": "-mic"}),
    ("-2+3.wav", "1", "null", [], "dev", {}),
]
ANNOTATORS = {"ana": ["0", "1", "3", "8", "0", "1"], "ben": ["0", "1", "8", "8", "0", "1"]}
ANNOTATORS["Cho López"] = ["3", "1", "3", "8", "0", None]

#: What each format carries: final labels, tags, metadata keys (all or the speaker's), annotators.
CARRIES = {
    "csv": {"labels": True, "tags": True, "metadata": "all", "annotators": False},
    "jsonl": {"labels": True, "tags": True, "metadata": "all", "annotators": False},
    "audiofolder": {"labels": True, "tags": True, "metadata": "all", "annotators": False},
    "nemo": {"labels": True, "tags": True, "metadata": "all", "annotators": False},
    "labelstudio": {"labels": True, "tags": True, "metadata": "all", "annotators": True},
    "kaldi": {"labels": False, "tags": False, "metadata": "speaker", "annotators": False},
}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def voice(workspace, tmp_path: Path) -> dict[str, dict]:
    """The project; returns sha256 → what the source says about the clip."""
    source = tmp_path / "source"
    rows = []
    expected: dict[str, dict] = {}
    for n, (name, label, transcript, tags, split, meta) in enumerate(CLIPS):
        path = write_wav(source / name, speechlike(900 + n))
        expected[_sha(path)] = {
            "name": name,
            "label": label,
            "transcript": transcript,
            "tags": sorted(tags),
            "split": split,
            "metadata": meta,
            "annotations": {a: labels[n] for a, labels in ANNOTATORS.items() if labels[n]},
        }
        rows.append(
            {
                "file_name": name,
                "label": label,
                "transcription": transcript,
                "tags": tags,
                "split": split,
                **meta,
            }
        )
    with (source / "metadata.jsonl").open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    with workspace.db.write() as s:
        create_project(
            s, name="voice", task_kind="both", classes=CLASSES, tag_groups=TAGS, annotations_per_clip=3
        )
    report = import_source(workspace, source, "voice")
    assert (report.n_imported, report.rejected) == (len(CLIPS), [])
    labels = [
        LabelRow("file_name", name, annotator, label)
        for annotator, chosen in ANNOTATORS.items()
        for (name, *_), label in zip(CLIPS, chosen, strict=True)
        if label
    ]
    with workspace.db.write() as s:
        assert apply_label_rows(s, "voice", labels).problems == []
    return expected


def state(ws, project: str) -> dict[str, dict]:
    """sha256 → what the database holds about the clip."""
    with ws.db.read() as s:
        pid = get_project(s, project).id
        clips = s.execute(
            select(Clip.id, Clip.sha256, Clip.original_name, Clip.split, Clip.meta, Res.label, Res.transcript)
            .outerjoin(Res, Res.clip_id == Clip.id)
            .where(Clip.project_id == pid)
        ).all()
        tags: dict[int, list[str]] = {}
        for cid, tag in s.execute(select(ClipTag.clip_id, ClipTag.tag)):
            tags.setdefault(cid, []).append(tag)
        annotations: dict[int, dict[str, str]] = {}
        for cid, who, label in s.execute(
            select(Annotation.clip_id, User.name, Annotation.label)
            .join(User, User.id == Annotation.annotator_id)
            .where(Annotation.project_id == pid)
        ):
            annotations.setdefault(cid, {})[who] = label
    return {
        sha: {
            "name": name,
            "label": label,
            "transcript": transcript,
            "tags": sorted(tags.get(cid, [])),
            "split": split,
            "metadata": dict(meta),
            "annotations": annotations.get(cid, {}),
        }
        for cid, sha, name, split, meta, label, transcript in clips
    }


def carried(expected: dict[str, dict], fmt: str) -> dict[str, dict]:
    what = CARRIES[fmt]
    out = {}
    for sha, clip in expected.items():
        clip = dict(clip)
        if not what["labels"]:
            clip["label"] = None
        if not what["tags"]:
            clip["tags"] = []
        if what["metadata"] == "speaker":
            clip["metadata"] = {k: v for k, v in clip["metadata"].items() if k in ("speaker", "gender")}
        if not what["annotators"]:
            clip["annotations"] = {}
        out[sha] = clip
    return out


def test_the_project_holds_what_the_source_says(workspace, voice):
    assert state(workspace, "voice") == voice


@pytest.mark.parametrize(
    ("fmt", "copy_audio"),
    # the audiofolder layout always copies the audio
    [(fmt, copy) for fmt in sorted(CARRIES) for copy in (True, False) if copy or fmt != "audiofolder"],
)
def test_every_format_round_trips_what_it_carries(workspace, voice, tmp_path, fmt, copy_audio):
    out = tmp_path / f"export-{fmt}"
    export_project(workspace, "voice", fmt=fmt, out=out, copy_audio=copy_audio)

    report = import_source(workspace, out, "again")  # no --audio-root, even for referenced audio

    assert report.rejected == []
    # every clip keeps its original name, also where wav.scp names the stored file itself
    assert state(workspace, "again") == carried(voice, fmt)


def test_label_studio_export_offers_every_class_and_names_its_people(workspace, voice, tmp_path):
    out = tmp_path / "ls"
    export_project(workspace, "voice", fmt="labelstudio", out=out)

    config = (out / "label_config.xml").read_text(encoding="utf-8")
    assert '<Choice value="9"/>' in config  # a class nobody chose can still be chosen there
    assert '<Choice value="noise:clean"/>' in config
    users = json.loads((out / "labelstudio_users.json").read_text(encoding="utf-8"))
    assert sorted(u["email"] for u in users) == [
        "%43ho%20%4c%c3%b3pez@earmark.invalid",  # lower-case, as Label Studio stores it
        "ana@earmark.invalid",
        "ben@earmark.invalid",
        "earmark+final-label@earmark.invalid",
    ]
    tasks = json.loads((out / "tasks.json").read_text(encoding="utf-8"))
    authors = {json.dumps(a.get("completed_by")) for t in tasks for a in t["annotations"]}
    assert len(authors) == 4  # three people and the final labels, never one importer for all

    report = import_source(workspace, out, "again")
    assert report.rejected == []
    with workspace.db.read() as s:
        assert get_project(s, "again").classes == CLASSES
        names = set(s.scalars(select(User.name)))
    assert {"ana", "ben", "Cho López"} <= names
    assert not any(n.startswith("labelstudio") for n in names)


def _loaded_by_datasets(datasets, folder: Path, cache: Path) -> dict[str, str | None]:
    """sha256 of each audio file → its transcription, as ``datasets``' audiofolder builder reads
    the folder (its own metadata rules, before any audio is decoded)."""
    builder = datasets.load_dataset_builder("audiofolder", data_dir=str(folder), cache_dir=str(cache))
    loaded = {}
    for split in builder._split_generators(datasets.DownloadManager()):
        for _, example in builder._generate_examples(**split.gen_kwargs):
            loaded[_sha(Path(example["audio"]))] = example["transcription"]
    return loaded


def test_audiofolder_metadata_loads_in_datasets_as_written(workspace, voice, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    datasets = pytest.importorskip("datasets")
    want = {sha: clip["transcript"] for sha, clip in voice.items()}

    out = tmp_path / "af-jsonl"
    export_project(workspace, "voice", fmt="audiofolder", out=out)  # JSON Lines by default
    assert _loaded_by_datasets(datasets, out, tmp_path / "cache") == want

    # CSV on request: nothing neutralised. datasets guesses types per file with pandas, so each
    # split is loaded on its own here; "null" is a missing value to pandas, as its defaults say.
    for split in ("train", "dev", "test"):
        out = tmp_path / f"af-csv-{split}"
        export_project(
            workspace,
            "voice",
            fmt="audiofolder",
            out=out,
            metadata_format="csv",
            filters=ExportFilters(splits=(split,)),
        )
        assert not (out / "train" / "metadata.jsonl").exists()
        loaded = _loaded_by_datasets(datasets, out, tmp_path / "cache")
        assert loaded == {
            sha: (None if t == "null" else t) for sha, t in want.items() if voice[sha]["split"] == split
        }


def test_no_copy_exports_import_back_with_the_cli(workspace, voice, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EARMARK_DATA_DIR", str(workspace.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", workspace.settings.database_url)
    out = tmp_path / "nemo"
    assert (
        cli(["export", "--project", "voice", "--format", "nemo", "--out", str(out), "--no-copy-audio"]) == 0
    )
    capsys.readouterr()

    assert cli(["import", str(out), "--project", "again", "--json"]) == 0

    report = json.loads(capsys.readouterr().out)
    assert report["rejected"] == []
    assert {c["name"] for c in state(workspace, "again").values()} == {c[0] for c in CLIPS}


# ---------------------------------------------------------------- Label Studio into a project


def test_label_studio_json_min_labels_land_as_labels_in_a_project_with_classes(workspace, tmp_path):
    folder = tmp_path / "ls"
    shutil.copytree(FIXTURES / "labelstudio", folder)
    (folder / "label_config.xml").unlink()  # the project's classes and tags tell the columns apart
    upload = folder / "upload"
    for n, name in enumerate(
        ["0f3a9c21-0_jackson_0.wav", "7b1e2d90-3_theo_1.wav", "c4d5e6f7-1_nicolas_2.wav"]
    ):
        write_wav(upload / name, speechlike(300 + n))
    with workspace.db.write() as s:
        create_project(
            s, name="digits", classes=[str(d) for d in range(10)], tag_groups=TAGS, annotations_per_clip=2
        )

    report = import_source(workspace, folder / MIN_EXPORT, "digits", audio_root=upload)

    assert (report.n_imported, report.n_annotations, report.rejected) == (3, 6, [])
    got = state(workspace, "digits")
    assert {c["name"]: c["annotations"] for c in got.values()} == {
        "0_jackson_0.wav": {"labelstudio-user-1": "0", "labelstudio-user-2": "0"},
        "3_theo_1.wav": {"labelstudio-user-1": "3", "labelstudio-user-2": "8"},
        "1_nicolas_2.wav": {"labelstudio-user-1": "1", "labelstudio-user-2": "1"},
    }
    assert {c["name"]: c["metadata"] for c in got.values()}["3_theo_1.wav"] == {"speaker": "theo"}
    with workspace.db.read() as s:
        assert get_project(s, "digits").classes == [str(d) for d in range(10)]
        tags = s.execute(
            select(User.name, Annotation.tags)
            .join(User, User.id == Annotation.annotator_id)
            .join(Clip, Clip.id == Annotation.clip_id)
            .where(Clip.original_name == "3_theo_1.wav")
        ).all()
    assert sorted((who, list(t)) for who, t in tags) == [
        ("labelstudio-user-1", ["noise:car", "noise:people"]),
        ("labelstudio-user-2", ["noise:car"]),
    ]


def test_a_label_studio_email_never_merges_into_an_account_of_that_name(workspace, tmp_path):
    write_wav(tmp_path / "a.wav", speechlike(1))
    with workspace.db.write() as s:
        add_user(s, name="ben", role="annotator", password="a long password for ben")
    task = {
        "id": 1,
        "data": {"audio": "a.wav"},
        "annotations": [
            {
                "id": 1,
                "completed_by": {"id": 9, "email": "ben"},
                "result": [
                    {"from_name": "label", "to_name": "audio", "type": "choices", "value": {"choices": ["x"]}}
                ],
            }
        ],
    }
    (tmp_path / "export.json").write_text(json.dumps([task]), encoding="utf-8")

    import_source(workspace, tmp_path / "export.json", "p")

    with workspace.db.read() as s:
        ben = s.scalar(select(User.id).where(User.name == "ben"))
        assert s.scalar(select(Annotation.id).where(Annotation.annotator_id == ben)) is None
        assert s.scalar(select(User.name).join(Annotation, Annotation.annotator_id == User.id)) == (
            "labelstudio:ben"
        )


# ---------------------------------------------------------------- labels for existing clips


def test_a_labels_csv_with_an_unknown_class_is_refused_unless_asked(workspace, voice, tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("file_name,annotator,label\n-2+3.wav,dan,banana\n", encoding="utf-8")
    before = state(workspace, "voice")

    with pytest.raises(LabelImportError, match="banana"):
        import_labels(workspace, path, "voice")

    assert state(workspace, "voice") == before
    with workspace.db.read() as s:
        assert get_project(s, "voice").classes == CLASSES
    report = import_labels(workspace, path, "voice", add_classes=True)
    assert (report.n_created, report.new_classes) == (1, ["banana"])
