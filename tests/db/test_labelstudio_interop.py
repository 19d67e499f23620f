"""Earmark → Label Studio → Earmark with people whose names are not lower-case ASCII, by the README's
own steps, and Label Studio's other exports coming back in.

Label Studio cannot run here; :mod:`tests.labelstudio` pins the rules its source states (sign-up
lower-cases e-mails, import matches them exactly, local files are served under a storage; Label
Studio 1.23.2) and answers the README's API calls by them. The README's shell block is run as
written, but for the server's address and token.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from db.models import Annotation, Clip, Project, Resolution, User
from labeling.annotate.annotations import submit_annotation
from labeling.data.export import export_project
from labeling.data.importer import import_source
from labeling.data.projects import create_project, get_project
from labeling.platform.auth import add_user
from tests.audio import speechlike, write_wav
from tests.labelstudio import LabelStudioRules
from tests.unit.test_formats_interop import FIXTURES, MIN_EXPORT

README = Path(__file__).resolve().parents[2] / "README.md"
CLASSES = ["yes", "no"]
TAGS = {"noise": ["car", "people"], "channel": ["telephone"]}
CLIPS = ["a.wav", "b.wav", "c.wav"]
#: annotator → per clip (label, tags, unsure)
WORK = {
    "Zoë Ng": [("yes", ["noise:car"], False), ("no", [], True), ("yes", [], False)],
    "José": [("yes", [], True), ("no", ["channel:telephone"], False), ("no", [], False)],
    "maria": [("no", ["noise:people"], False), ("no", [], False), ("yes", [], True)],
}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def people(workspace, tmp_path: Path) -> dict[str, dict[str, tuple]]:
    """A project labelled by three people; returns sha256 → annotator → (label, tags, unsure)."""
    source = tmp_path / "source"
    shas = [_sha(write_wav(source / name, speechlike(40 + n))) for n, name in enumerate(CLIPS)]
    with workspace.db.write() as s:
        info = create_project(
            s,
            name="voice",
            task_kind="classification",
            classes=CLASSES,
            tag_groups=TAGS,
            annotations_per_clip=3,
        )
        users = {name: add_user(s, name=name, role="annotator").id for name in WORK}
    import_source(workspace, source, "voice")
    with workspace.db.write() as s:
        ids = dict(s.execute(select(Clip.sha256, Clip.id).where(Clip.project_id == info.id)).all())
        for name, work in WORK.items():
            for sha, (label, tags, unsure) in zip(shas, work, strict=True):
                result = submit_annotation(
                    s, info.id, users[name], ids[sha], label=label, tags=tags, unsure=unsure
                )
                assert result.status == "created"
    return {sha: {name: WORK[name][n] for name in WORK} for n, sha in enumerate(shas)}


def annotations(ws, project: str) -> dict[str, dict[str, tuple]]:
    with ws.db.read() as s:
        pid = get_project(s, project).id
        rows = s.execute(
            select(Clip.sha256, User.name, Annotation.label, Annotation.tags, Annotation.unsure)
            .join(Clip, Clip.id == Annotation.clip_id)
            .join(User, User.id == Annotation.annotator_id)
            .where(Annotation.project_id == pid)
        ).all()
    out: dict[str, dict[str, tuple]] = {}
    for sha, who, label, tags, unsure in rows:
        out.setdefault(sha, {})[who] = (label, sorted(tags or []), bool(unsure))
    return out


def _readme_block(containing: str) -> str:
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    (block,) = [b for b in blocks if containing in b]
    return block


def test_the_readme_steps_take_every_person_into_label_studio_and_back(workspace, people, tmp_path):
    out = tmp_path / "ls-export"
    export_project(workspace, "voice", fmt="labelstudio", out=out)
    steps = _readme_block("/api/users/")
    placeholder = "LS=http://localhost:8080 TOKEN=paste-your-token-here"
    assert placeholder in steps

    with LabelStudioRules(document_root=tmp_path) as ls:
        run = subprocess.run(
            [
                "bash",
                "-e",
                "-o",
                "pipefail",
                "-c",
                steps.replace(placeholder, f"LS={ls.url} TOKEN={ls.token}"),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (run.returncode, ls.refused) == (0, []), run.stderr
        assert all(set(u) >= {"email", "username"} for u in ls.created)
        (project,) = ls.projects.values()
        assert project["config"] == (out / "label_config.xml").read_text(encoding="utf-8")
        assert len(project["tasks"]) == len(CLIPS)  # the import Label Studio refused before
        snapshot = ls.snapshot()

    export = tmp_path / "from-label-studio.json"
    export.write_text(json.dumps(snapshot), encoding="utf-8")
    config = out / "label_config.xml"  # the Label Studio project's config, as --config names it
    report = import_source(workspace, export, "back", audio_root=tmp_path, reader_options={"config": config})

    assert report.rejected == []
    assert annotations(workspace, "back") == {
        sha: {who: (label, sorted(tags), unsure) for who, (label, tags, unsure) in work.items()}
        for sha, work in people.items()
    }  # every person by name, every label, tag and unsure
    with workspace.db.read() as s:
        back = get_project(s, "back")
        names = set(s.scalars(select(User.name)))
    assert back.classes == CLASSES
    assert back.tag_groups == TAGS  # the vocabulary came back, unused tags too
    assert not any(n.startswith("labelstudio") for n in names)


def test_the_readme_steps_stop_on_a_person_label_studio_does_not_have(workspace, people, tmp_path):
    out = tmp_path / "ls-export"
    export_project(workspace, "voice", fmt="labelstudio", out=out)
    users = json.loads((out / "labelstudio_users.json").read_text(encoding="utf-8"))
    (out / "labelstudio_users.json").write_text(json.dumps(users[1:]), encoding="utf-8")
    steps = _readme_block("/api/users/")

    with LabelStudioRules(document_root=tmp_path) as ls:
        run = subprocess.run(
            [
                "bash",
                "-e",
                "-o",
                "pipefail",
                "-c",
                steps.replace("LS=http://localhost:8080", f"LS={ls.url}").replace(
                    "TOKEN=paste-your-token-here", f"TOKEN={ls.token}"
                ),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode != 0
    assert ls.refused == [f"Unknown annotator's email {users[0]['email']}"]


# ---------------------------------------------------------------- Label Studio's other exports


def _asr_export(folder: Path) -> dict[str, str]:
    """An ASR_MANIFEST export as Label Studio's converter writes it (label_studio_sdk
    converter/audio.py: one line per annotation, uploaded audio copied to audio/ under its upload
    name, the annotator's e-mail or id as text). Returns upload name → sha256."""
    shas = {}
    for n, name in enumerate(["0f3a9c21-one.wav", "7b1e2d90-two.wav"]):
        shas[name] = _sha(write_wav(folder / "audio" / name, speechlike(70 + n)))
    lines = [
        {
            "audio_filepath": "audio/0f3a9c21-one.wav",
            "duration": 0.6,
            "text": " one",
            "annotator": "ana@example.org",
        },
        {"audio_filepath": "audio/0f3a9c21-one.wav", "duration": 0.6, "text": "won", "annotator": "3"},
        {
            "audio_filepath": "audio/0f3a9c21-one.wav",
            "duration": 0.6,
            "text": "one",
            "annotator": "%5ao%c3%ab%20%4eg@earmark.invalid",
        },
        {
            "audio_filepath": "audio/7b1e2d90-two.wav",
            "duration": 0.6,
            "text": "two",
            "annotator": "ana@example.org",
        },
        {
            "audio_filepath": "audio/7b1e2d90-two.wav",
            "duration": 0.6,
            "text": "too",
            "annotator": "ana@example.org",
        },
    ]
    with (folder / "manifest.json").open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(line) + "\n" for line in lines)
    (folder / "users.json").write_text(json.dumps([{"id": 3, "email": "ben@example.org"}]), encoding="utf-8")
    return shas


@pytest.mark.parametrize("how", ["folder", "manifest", "named labelstudio"])
def test_label_studio_asr_manifest_imports_one_annotation_per_line(workspace, tmp_path, how):
    folder = tmp_path / "asr"
    shas = _asr_export(folder)
    path = folder if how == "folder" else folder / "manifest.json"
    fmt = "labelstudio" if how == "named labelstudio" else "auto"

    report = import_source(workspace, path, "asr", fmt=fmt, reader_options={"users": folder / "users.json"})

    assert (report.n_imported, report.n_annotations, report.n_resolutions) == (2, 4, 0)
    assert [p.ref for p in report.rejected] == ["manifest.json line 5"]  # ana again, first kept
    with workspace.db.read() as s:
        pid = get_project(s, "asr").id
        got = s.execute(
            select(Clip.sha256, Clip.original_name, Clip.meta, User.name, Annotation.transcript)
            .join(Clip, Clip.id == Annotation.clip_id)
            .join(User, User.id == Annotation.annotator_id)
            .where(Annotation.project_id == pid)
        ).all()
        assert s.scalar(select(Resolution.clip_id)) is None  # nobody's answer became the final one
    assert sorted((sha, name, dict(meta), who, text) for sha, name, meta, who, text in got) == sorted(
        [
            (shas["0f3a9c21-one.wav"], "one.wav", {}, "labelstudio:ana@example.org", " one"),
            (shas["0f3a9c21-one.wav"], "one.wav", {}, "labelstudio:ben@example.org", "won"),
            (shas["0f3a9c21-one.wav"], "one.wav", {}, "Zoë Ng", "one"),
            (shas["7b1e2d90-two.wav"], "two.wav", {}, "labelstudio:ana@example.org", "two"),
        ]
    )


def test_time_regions_of_a_json_min_export_are_counted_not_stored_as_metadata(workspace, tmp_path):
    folder = tmp_path / "ls"
    shutil.copytree(FIXTURES / "labelstudio", folder)
    upload = folder / "upload"
    for n, name in enumerate(
        ["0f3a9c21-0_jackson_0.wav", "7b1e2d90-3_theo_1.wav", "c4d5e6f7-1_nicolas_2.wav"]
    ):
        write_wav(upload / name, speechlike(300 + n))
    records = json.loads((folder / MIN_EXPORT).read_text(encoding="utf-8"))
    records[0]["speech"] = [
        {"start": 0.1, "end": 0.4, "labels": ["speech"]},
        {"start": 0.5, "end": 0.6, "labels": ["noise"]},
    ]
    (folder / MIN_EXPORT).write_text(json.dumps(records), encoding="utf-8")

    report = import_source(workspace, folder / MIN_EXPORT, "digits", audio_root=upload)

    assert {p.ref: p.reason for p in report.rejected}["time regions of 'speech'"].startswith("2 not imported")
    with workspace.db.read() as s:
        assert not any("speech" in meta for meta in s.scalars(select(Clip.meta)))
        # --config brings the tag vocabulary along with the classes
        project = s.scalar(select(Project).where(Project.name == "digits"))
        assert project.tag_groups == {"noise": ["clean", "car", "people"]}
        assert project.classes == [str(d) for d in range(10)]
