"""Importing every format into the database, labels files for existing clips, and hostile sources.

Nothing half-done may remain when a source is refused: every test of a refusal counts the rows of
every table a write would touch and the files in the audio store.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.models import (
    Annotation,
    AuditEvent,
    Clip,
    ClipTag,
    ImportBatch,
    ModelRun,
    Project,
    Resolution,
    User,
)
from labeling.cli import main as cli
from labeling.data.formats.base import FormatError, LabelRow
from labeling.data.formats.folder import SourceError
from labeling.data.importer import ImportRefused, import_path, import_source
from labeling.data.labels_import import LabelImportError, apply_label_rows, import_labels
from labeling.data.projects import get_project, update_project
from tests.audio import speechlike, write_wav

TABLES = (Project, Clip, Annotation, Resolution, User, ModelRun, ImportBatch, AuditEvent)


def counts(ws) -> dict[str, int]:
    with ws.db.read() as s:
        rows = {m.__tablename__: s.scalar(select(func.count()).select_from(m)) for m in TABLES}
    rows["stored files"] = (
        sum(1 for p in ws.store.root.rglob("*") if p.is_file()) if ws.store.root.exists() else 0
    )
    return rows


NOTHING = dict.fromkeys([*(m.__tablename__ for m in TABLES), "stored files"], 0)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- Label Studio


def _choice(name: str, *values: str) -> dict:
    return {"from_name": name, "to_name": "audio", "type": "choices", "value": {"choices": list(values)}}


@pytest.fixture
def upload(tmp_path: Path) -> Path:
    folder = tmp_path / "media" / "upload"
    write_wav(folder / "3" / "1a2b3c4d-yes_01.wav", speechlike(1))
    write_wav(folder / "3" / "9f8e7d6c-no_02.wav", speechlike(2))
    return folder


def test_label_studio_ui_export_gives_annotators_by_id_and_reports_the_cancelled(
    workspace, upload, tmp_path, monkeypatch, capsys
):
    doc = [
        {
            "id": 1,
            "data": {"audio": "/data/upload/3/1a2b3c4d-yes_01.wav", "speaker": "jackson"},
            "annotations": [
                {"id": 11, "completed_by": 1, "result": [_choice("label", "yes")]},
                {"id": 12, "completed_by": 2, "result": [_choice("label", "no")]},
                {"id": 13, "completed_by": 4, "was_cancelled": True, "result": []},
            ],
            "predictions": [7],
        },
        {"id": 2, "data": {"audio": "/data/upload/3/9f8e7d6c-no_02.wav"}, "annotations": []},
    ]
    path = tmp_path / "project-3.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    monkeypatch.setenv("EARMARK_DATA_DIR", str(workspace.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", workspace.settings.database_url)

    assert cli(["import", str(path), "--project", "ls", "--audio-root", str(upload)]) == 0

    out = capsys.readouterr().out
    assert "read as labelstudio" in out
    assert "not imported: task 1, annotation 13: cancelled (skipped) by labelstudio-user-4" in out
    assert "1 predictions are only ids" in out
    with workspace.db.read() as s:
        got = set(
            s.execute(
                select(Clip.original_name, User.name, Annotation.label)
                .join(Clip, Clip.id == Annotation.clip_id)
                .join(User, User.id == Annotation.annotator_id)
            ).all()
        )
        accounts = dict(s.execute(select(User.name, User.password_hash)).all())
    assert got == {("yes_01.wav", "labelstudio-user-1", "yes"), ("yes_01.wav", "labelstudio-user-2", "no")}
    assert accounts == {"labelstudio-user-1": None, "labelstudio-user-2": None}  # cannot log in yet


def test_label_studio_snapshot_gives_annotators_by_email_and_predictions_as_a_run(
    workspace, upload, tmp_path
):
    doc = [
        {
            "id": 1,
            "data": {"audio": "/data/upload/3/1a2b3c4d-yes_01.wav"},
            "annotations": [
                {
                    "id": 11,
                    "completed_by": {"id": 1, "email": "ana@example.org"},
                    "result": [_choice("label", "yes")],
                },
                {
                    "id": 12,
                    "completed_by": {"id": 2, "email": "ben@example.org"},
                    "ground_truth": True,
                    "result": [_choice("label", "yes")],
                },
            ],
            "predictions": [{"model_version": "svm-3", "score": 0.8, "result": [_choice("label", "no")]}],
        }
    ]
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps(doc), encoding="utf-8")

    report = import_source(workspace, path, "ls", audio_root=upload)

    assert (report.n_imported, report.n_annotations, report.n_resolutions) == (1, 2, 1)
    with workspace.db.read() as s:
        assert set(s.scalars(select(User.name))) == {
            "labelstudio:ana@example.org",
            "labelstudio:ben@example.org",
        }
        run = s.execute(select(ModelRun.name, ModelRun.kind)).one()
        assert tuple(run) == ("svm-3", "external")
        assert s.scalar(select(Resolution.method)) == "imported"


def test_a_label_studio_path_escaping_the_audio_root_is_refused_and_writes_nothing(
    workspace, upload, tmp_path
):
    secret = write_wav(tmp_path / "secret.wav", speechlike(9))
    doc = [
        {"id": 1, "data": {"audio": "/data/local-files/?d=../../secret.wav"}},
        {"id": 2, "data": {"audio": str(secret)}},
        {"id": 3, "data": {"audio": "/data/upload/3/../../../secret.wav"}},
    ]
    path = tmp_path / "evil.json"
    path.write_text(json.dumps(doc), encoding="utf-8")

    with pytest.raises(ImportRefused, match=r"nothing in evil\.json can be imported: task 1: .*outside"):
        import_source(workspace, path, "ls", audio_root=upload)

    assert counts(workspace) == NOTHING


def test_an_escaping_task_beside_good_ones_is_listed_and_the_rest_imports(workspace, upload, tmp_path):
    write_wav(tmp_path / "secret.wav", speechlike(9))
    doc = [
        {"id": 1, "data": {"audio": "/data/upload/3/1a2b3c4d-yes_01.wav"}},
        {"id": 2, "data": {"audio": "/data/local-files/?d=../../secret.wav"}},
    ]
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(doc), encoding="utf-8")

    report = import_source(workspace, path, "ls", audio_root=upload)

    assert report.n_imported == 1
    assert [p.ref for p in report.rejected] == ["task 2"]
    with workspace.db.read() as s:
        assert list(s.scalars(select(Clip.sha256))) == [sha(upload / "3" / "1a2b3c4d-yes_01.wav")]


HOSTILE = {
    "duplicate_keys.json": (
        b'[{"id": 1, "data": {"audio": "/data/upload/3/1a2b3c4d-yes_01.wav", "audio": "x.wav"}}]',
        'the key "audio" appears twice',
    ),
    "deep.json": (b"[" * 100 + b"]" * 100, "nested deeper than"),
    "latin1.json": (b'[{"id": 1, "data": {"audio": "caf\xe9.wav"}}]', "not valid UTF-8"),
    "not_tasks.json": (b'{"tasks": []}', "not a Label Studio export"),
    "truncated.json": (b'[{"id": 1, "data": {"audio": ', "not valid JSON"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_label_studio_file_a_reader_refuses_writes_nothing(workspace, upload, tmp_path, name):
    data, message = HOSTILE[name]
    path = tmp_path / name
    path.write_bytes(data)

    with pytest.raises(FormatError, match=message):
        import_source(workspace, path, "ls", fmt="labelstudio", audio_root=upload)

    assert counts(workspace) == NOTHING


def test_other_readers_refusing_write_nothing_and_the_command_says_why(
    workspace, tmp_path, monkeypatch, capsys
):
    write_wav(tmp_path / "cv" / "clips" / "a.mp3.wav", speechlike(3))
    (tmp_path / "cv" / "train.tsv").write_text("client_id\tfile\ttext\nx\ta.mp3.wav\thello\n")
    (tmp_path / "manifest.json").write_text('{"duration": 1.0, "text": "no audio here"}\n')
    monkeypatch.setenv("EARMARK_DATA_DIR", str(workspace.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", workspace.settings.database_url)

    with pytest.raises(FormatError, match="no column 'path'"):
        import_source(workspace, tmp_path / "cv" / "train.tsv", "cv", fmt="commonvoice")
    with pytest.raises(FormatError, match="no line has an audio_filepath"):
        import_source(workspace, tmp_path / "manifest.json", "nemo", fmt="nemo")
    assert cli(["import", str(tmp_path / "manifest.json"), "--project", "n", "--format", "nemo"]) == 1
    assert "earmark: manifest.json is not a NeMo manifest" in capsys.readouterr().err
    assert cli(["import", str(tmp_path / "nowhere"), "--project", "n"]) == 1
    assert "does not exist" in capsys.readouterr().err

    assert counts(workspace) == NOTHING


def test_a_zip_escaping_its_folder_is_a_format_error_too(workspace, tmp_path):
    import io
    import zipfile

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, speechlike(4), 16000, format="WAV", subtype="PCM_16")
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
        zf.writestr("../outside.wav", buf.getvalue())

    with pytest.raises(FormatError, match="escapes") as caught:
        import_path(workspace, tmp_path / "evil.zip", "z")

    assert isinstance(caught.value, SourceError)
    assert counts(workspace) == NOTHING


# ---------------------------------------------------------------- other formats


def test_a_common_voice_release_folder_imports_its_splits(workspace, tmp_path):
    root = tmp_path / "cv-corpus" / "en"
    header = "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\n"
    files = {}
    for n, split in enumerate(("train", "dev", "test")):
        name = f"common_voice_en_{n}.wav"
        files[name] = sha(write_wav(root / "clips" / name, speechlike(20 + n)))
        (root / f"{split}.tsv").write_text(header + f"spk{n}\t{name}\tsay {split}\t2\t0\tthirties\t\tus\n")
    (root / "other.tsv").write_text(header)
    (root / "invalidated.tsv").write_text(header + "spk9\tcommon_voice_en_0.wav\twrong\t0\t3\t\t\t\n")

    report = import_source(workspace, root, "cv")

    assert (report.source_format, report.n_imported) == ("commonvoice", 3)
    with workspace.db.read() as s:
        rows = s.execute(
            select(Clip.sha256, Clip.split, Clip.meta, Resolution.transcript).join(Resolution)
        ).all()
    got = {sha_: (split, meta["speaker"], meta["accents"], text) for sha_, split, meta, text in rows}
    assert got == {
        files["common_voice_en_0.wav"]: ("train", "spk0", "us", "say train"),
        files["common_voice_en_1.wav"]: ("dev", "spk1", "us", "say dev"),
        files["common_voice_en_2.wav"]: ("test", "spk2", "us", "say test"),
    }


def test_a_nemo_manifest_with_absolute_paths_needs_the_audio_root(workspace, tmp_path):
    audio = tmp_path / "audio"
    a = write_wav(audio / "a.wav", speechlike(30))
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    line = {"audio_filepath": str(a), "duration": 0.6, "text": "hello", "speaker": "s1"}
    (manifests / "train_manifest.json").write_text(json.dumps(line) + "\n")

    with pytest.raises(ImportRefused, match="outside the import folder"):
        import_source(workspace, manifests / "train_manifest.json", "nemo")
    report = import_source(workspace, manifests / "train_manifest.json", "nemo", audio_root=audio)

    assert (report.source_format, report.n_imported) == ("nemo", 1)
    with workspace.db.read() as s:
        row = s.execute(select(Clip.split, Clip.meta, Resolution.transcript).join(Resolution)).one()
    assert tuple(row) == ("train", {"speaker": "s1"}, "hello")


def test_folder_options_on_another_format_are_refused(workspace, upload, tmp_path):
    (tmp_path / "e.json").write_text("[]")
    with pytest.raises(ImportRefused, match="pattern, metadata CSV or join applies to plain folders"):
        import_source(workspace, tmp_path / "e.json", "x", pattern=r"(?P<label>\w+)")
    with pytest.raises(FormatError, match="unknown format 'sphinx'"):
        import_source(workspace, tmp_path / "e.json", "x", fmt="sphinx")
    assert counts(workspace) == NOTHING


# ---------------------------------------------------------------- labels files for existing clips


@pytest.fixture
def clips(workspace, tmp_path) -> dict[str, str]:
    """A project of four clips imported from a folder; returns original name → sha256."""
    src = tmp_path / "audio"
    names = ["a/one.wav", "a/two.wav", "b/three.wav", "b/two.wav"]
    shas = {name: sha(write_wav(src / name, speechlike(40 + n))) for n, name in enumerate(names)}
    import_path(workspace, src, "voice")
    return shas


def annotations(ws) -> set[tuple]:
    """(clip name, annotator, label, transcript, tags) of every annotation."""
    with ws.db.read() as s:
        rows = s.execute(
            select(Clip.original_name, User.name, Annotation.label, Annotation.transcript, Annotation.tags)
            .join(Clip, Clip.id == Annotation.clip_id)
            .join(User, User.id == Annotation.annotator_id)
        ).all()
    return {(*r[:4], tuple(r[4])) for r in rows}


def test_labels_csv_applied_as_annotations_is_idempotent_and_reports_unknown_refs(workspace, clips, tmp_path):
    with workspace.db.write() as s:
        update_project(s, "voice", annotations_per_clip=2)
    path = tmp_path / "labels.csv"
    path.write_text(
        "file_name,annotator,label,tags\n"
        "a/one.wav,ann,yes,noise:car\n"
        "three.wav,,no,\n"
        "one.wav,bea,no,\n"
        "two.wav,ann,yes,\n"
        "missing.wav,ann,yes,\n",
        encoding="utf-8",
    )

    first = import_labels(workspace, path, "voice", annotator="cal", add_classes=True)

    assert (first.n_created, first.n_updated, first.n_unchanged) == (3, 0, 0)
    reasons = {p.ref: p.reason for p in first.problems}
    assert reasons == {
        "line 5": "2 clips are named 'two.wav'; name the clip by sha256 or clip_id; skipped",
        "line 6": "no clip named 'missing.wav' in this project; skipped",
    }
    assert first.users_created == ["ann", "bea", "cal"]
    expected = {
        ("a/one.wav", "ann", "yes", None, ("noise:car",)),
        ("b/three.wav", "cal", "no", None, ()),
        ("a/one.wav", "bea", "no", None, ()),
    }
    assert annotations(workspace) == expected

    again = import_labels(workspace, path, "voice", annotator="cal")

    assert (again.n_created, again.n_updated, again.n_unchanged) == (0, 0, 3)
    assert annotations(workspace) == expected
    with workspace.db.read() as s:
        counts_by_clip = dict(s.execute(select(Clip.original_name, Clip.annotation_count)).all())
        assert s.scalar(select(func.count()).where(AuditEvent.entity == "annotation")) == 3
        assert get_project(s, "voice").classes == ["no", "yes"]
    assert counts_by_clip == {"a/one.wav": 2, "a/two.wav": 0, "b/three.wav": 1, "b/two.wav": 0}

    path.write_text(
        f"sha256,annotator,label\n{clips['a/one.wav']},bea,maybe\n{'0' * 64},bea,no\n", encoding="utf-8"
    )
    changed = import_labels(workspace, path, "voice", add_classes=True)

    assert (changed.n_created, changed.n_updated) == (0, 1)
    assert [(p.ref, p.reason) for p in changed.problems] == [
        ("line 3", f"no clip with SHA-256 {'0' * 16}… in this project; skipped")
    ]
    assert ("a/one.wav", "bea", "maybe", None, ()) in annotations(workspace)
    with workspace.db.read() as s:
        old, new = s.execute(
            select(AuditEvent.old, AuditEvent.new).where(
                AuditEvent.action == "update", AuditEvent.entity == "annotation"
            )
        ).one()
    assert (old["label"], new["label"]) == ("no", "maybe")


def test_labels_beyond_k_are_reported_unless_the_project_lets_imports_raise_k(workspace, clips, tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("file_name,annotator,label\none.wav,ann,yes\none.wav,bea,no\n", encoding="utf-8")
    with workspace.db.write() as s:
        update_project(s, "voice", classes=["yes", "no"])

    capped = import_labels(workspace, path, "voice")

    assert capped.n_created == 1
    assert [p.ref for p in capped.problems] == ["line 3"]
    assert "already has its 1 annotation(s); bea's was not added" in capped.problems[0].reason

    with workspace.db.write() as s:
        settings = get_project(s, "voice").settings
        update_project(s, "voice", settings={**settings, "imports_raise_k": True})
    raised = import_labels(workspace, path, "voice")

    assert (raised.n_created, raised.n_unchanged, raised.n_k_raised) == (1, 1, 1)
    with workspace.db.read() as s:
        clip = s.execute(
            select(Clip.annotation_count, Clip.annotations_needed).where(Clip.original_name == "a/one.wav")
        ).one()
    assert tuple(clip) == (2, 2)


def test_labels_without_an_annotator_need_one_named(workspace, clips, tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("file_name,label\none.wav,yes\n", encoding="utf-8")
    before = counts(workspace)

    with pytest.raises(LabelImportError, match="name the one who made them"):
        import_labels(workspace, path, "voice")

    assert counts(workspace) == before


def test_labels_applied_as_resolutions_replace_final_labels_but_not_adjudicated_ones(
    workspace, clips, tmp_path
):
    with workspace.db.write() as s:
        three = s.scalar(select(Clip.id).where(Clip.original_name == "b/three.wav"))
        one = s.scalar(select(Clip.id).where(Clip.original_name == "a/one.wav"))
        s.add(
            Resolution(clip_id=three, project_id=get_project(s, "voice").id, label="up", method="adjudicated")
        )
    path = tmp_path / "final.jsonl"
    rows = [
        {"file_name": "a/one.wav", "label": "yes", "tags": ["noise:car"]},
        {"file_name": "a/two.wav", "transcript": "two"},
        {"file_name": "b/three.wav", "label": "down"},
        {"file_name": "a/one.wav", "annotator": "x", "label": "no"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    first = import_labels(workspace, path, "voice", as_="resolutions", add_classes=True)

    assert (first.n_created, first.n_updated, first.n_unchanged) == (2, 0, 0)
    assert {p.ref: p.reason for p in first.problems} == {
        "line 3": f"clip {three} was adjudicated by a reviewer; not replaced",
        "line 4": f"clip {one} was given a final label on line 1; skipped",
    }
    with workspace.db.read() as s:
        final = set(
            s.execute(
                select(Clip.original_name, Resolution.label, Resolution.transcript, Resolution.method).join(
                    Resolution
                )
            ).all()
        )
        n_events = s.scalar(select(func.count()).where(AuditEvent.entity == "resolution"))
        tags = set(s.execute(select(Clip.original_name, ClipTag.tag).join(ClipTag)).all())
    assert final == {
        ("a/one.wav", "yes", None, "imported"),
        ("a/two.wav", None, "two", "imported"),
        ("b/three.wav", "up", None, "adjudicated"),
    }
    assert n_events == 2
    assert tags == {("a/one.wav", "noise:car")}

    again = import_labels(workspace, path, "voice", as_="resolutions", add_classes=True)

    assert (again.n_created, again.n_updated, again.n_unchanged) == (0, 0, 2)
    with workspace.db.write() as s:
        report = apply_label_rows(
            s, "voice", [LabelRow("file_name", "two.wav", None, "two")], as_="resolutions", add_classes=True
        )
    assert report.problems[0].reason.startswith("2 clips are named 'two.wav'")


def test_cli_applies_a_labels_csv(workspace, clips, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EARMARK_DATA_DIR", str(workspace.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", workspace.settings.database_url)
    path = tmp_path / "labels.csv"
    path.write_text("file_name,label\none.wav,yes\nnope.wav,no\n", encoding="utf-8")

    args = ["--format", "csv", "--annotator", "ann", "--add-classes", "--json"]
    code = cli(["import", str(path), "--project", "voice", *args])

    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["n_created"], report["users_created"]) == (1, ["ann"])
    assert report["problems"] == [
        {"ref": "line 3", "reason": "no clip named 'nope.wav' in this project; skipped"}
    ]
    assert cli(["import", str(path), "--project", "voice", "--format", "csv"]) == 1
    assert "--annotator NAME" in capsys.readouterr().err
    assert cli(["import", str(path), "--project", "voice", "--annotator", "ann"]) == 1
    assert "apply to labels files" in capsys.readouterr().err
    assert cli(["import", str(path), "--project", "voice"]) == 1  # read as audio, the default
    assert "import it with --format csv" in capsys.readouterr().err
