"""The manifests speech trainers read, exported from a project and read the way their own tools read
them; every field compared with what the project's source says (hashlib and soundfile for the audio,
never the code under test).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf

from labeling.cli import main as cli
from labeling.data.export import export_project
from labeling.data.formats.writers import verify_export, write_lhotse
from tests.audio import speechlike, write_wav
from tests.db.test_interop import CLASSES, CLIPS, TAGS, voice  # noqa: F401  (the project fixture)

# ---------------------------------------------------------------- lhotse, as its reader reads
#
# lhotse itself needs torch, so its reading rules are restated here from its source (lhotse 1.x):
# * lhotse/serialization.py: ``load_manifest`` opens ``*.jsonl.gz`` with gzip in text mode and
#   decodes every line with ``json.loads``; it tries RecordingSet, then SupervisionSet, each through
#   ``from_dicts`` (``deserialize_item`` says the same: a line with ``sources`` is a Recording, one
#   without ``type`` a SupervisionSegment); ``deserialize_custom_field`` tries to read any dict
#   inside ``custom`` as an array or recording.
# * lhotse/audio/recording.py: ``Recording(**data)`` with fields id, sources, sampling_rate,
#   num_samples, duration, channel_ids, transforms (any other key is a TypeError); each source is an
#   ``AudioSource`` (lhotse/audio/source.py) of type, channels, source, video.
# * lhotse/supervision.py: ``SupervisionSegment(**data)`` with fields id, recording_id, start,
#   duration, channel, text, language, speaker, gender, custom, alignment.
# * lhotse/qa.py ``validate_recording``: duration > 0 and duration == num_samples / sampling_rate.

RECORDING_FIELDS = {"id", "sources", "sampling_rate", "num_samples", "duration", "channel_ids", "transforms"}
SOURCE_FIELDS = {"type", "channels", "source", "video"}
SUPERVISION_FIELDS = {
    "id",
    "recording_id",
    "start",
    "duration",
    "channel",
    "text",
    "language",
    "speaker",
    "gender",
    "custom",
    "alignment",
}


@dataclass
class Manifest:
    kind: str
    items: dict[str, dict[str, Any]] = field(default_factory=dict)


def load_manifest(path: Path) -> Manifest:
    """Read a ``.jsonl.gz`` manifest as ``lhotse.load_manifest`` does; fail where lhotse fails."""
    with gzip.open(path, "rt") as f:
        lines = [json.loads(line) for line in f]
    assert lines, f"{path}: lhotse refuses an empty manifest"
    kind = "recordings" if "sources" in lines[0] else "supervisions"
    items = {}
    for line in lines:
        if kind == "recordings":
            assert set(line) <= RECORDING_FIELDS, set(line) - RECORDING_FIELDS
            assert {"id", "sources", "sampling_rate", "num_samples", "duration"} <= set(line)
            for source in line["sources"]:
                assert set(source) <= SOURCE_FIELDS
                assert {"type", "channels", "source"} <= set(source)
            assert line["duration"] > 0
            assert math.isclose(line["num_samples"] / line["sampling_rate"], line["duration"])
        else:
            assert "sources" not in line
            assert "type" not in line
            assert set(line) <= SUPERVISION_FIELDS, set(line) - SUPERVISION_FIELDS
            assert {"id", "recording_id", "start", "duration"} <= set(line)
            custom = line.get("custom") or {}
            assert not any(isinstance(v, dict) for v in custom.values())  # nothing lhotse would decode
        assert line["id"] not in items, f"{path}: id {line['id']} twice"
        items[line["id"]] = line
    return Manifest(kind, items)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("copy_audio", [True, False])
def test_lhotse_manifests_hold_every_field(workspace, voice, tmp_path, monkeypatch, copy_audio):  # noqa: F811
    out = tmp_path / "lhotse"
    export_project(workspace, "voice", fmt="lhotse", out=out, copy_audio=copy_audio)
    assert verify_export(out) == []
    monkeypatch.chdir(out)  # lhotse opens relative sources from where it runs

    seen = {}
    for split in ("train", "dev", "test"):
        recordings = load_manifest(out / split / "recordings.jsonl.gz")
        supervisions = load_manifest(out / split / "supervisions.jsonl.gz")
        assert (recordings.kind, supervisions.kind) == ("recordings", "supervisions")
        assert set(recordings.items) == {s["recording_id"] for s in supervisions.items.values()}
        for sup in supervisions.items.values():
            rec = recordings.items[sup["recording_id"]]
            (source,) = rec["sources"]
            audio = Path(source["source"])
            assert audio.is_absolute() != copy_audio
            info = sf.info(str(audio))
            sha = _sha(audio)
            want = voice[sha]
            seen[sha] = split
            assert source["type"] == "file"
            assert source["channels"] == list(range(info.channels))
            assert (rec["sampling_rate"], rec["num_samples"]) == (info.samplerate, info.frames)
            assert (sup["start"], sup["duration"], sup["channel"]) == (0.0, rec["duration"], 0)
            assert sup["text"] == want["transcript"]  # byte for byte
            assert sup.get("speaker") == want["metadata"].get("speaker")
            assert sup.get("gender") == want["metadata"].get("gender")
            custom = dict(sup["custom"])
            assert custom.pop("label") == want["label"]
            assert sorted(custom.pop("tags", [])) == want["tags"]
            assert custom.pop("split") == want["split"] == split
            assert custom.pop("original_name") == want["name"]
            assert custom.pop("sha256") == sha
            assert str(custom.pop("clip_id")) == rec["id"]
            others = {k: v for k, v in want["metadata"].items() if k not in ("speaker", "gender")}
            assert custom == others  # every other metadata key, nothing else
    assert len(seen) == len(CLIPS)
    assert not (out / "unassigned").exists()


def test_lhotse_keeps_every_channel_and_the_exact_sample_count(tmp_path: Path) -> None:
    import numpy as np

    stereo = write_wav(
        tmp_path / "store" / "a.wav", np.stack([speechlike(1), speechlike(2)], axis=1), sr=22050
    )
    odd = write_wav(tmp_path / "store" / "b.wav", speechlike(3, seconds=0.3337, sr=8000), sr=8000)
    rows = []
    for n, path in enumerate([stereo, odd]):
        info = sf.info(str(path))
        rows.append(
            {
                "clip_id": n + 1,
                "sha256": _sha(path),
                "original_name": path.name,
                "audio_path": str(path),
                "duration_s": info.duration,
                "sample_rate": info.samplerate,
                "channels": info.channels,
                "split": None,
                "label": None,
                "transcript": None,
                "tags": [],
                "metadata": {"language": "en", "label": "a metadata key named label"},
            }
        )
    import pandas as pd

    out = tmp_path / "out"
    write_lhotse(pd.DataFrame(rows), out, copy_audio=True)
    recordings = load_manifest(out / "unassigned" / "recordings.jsonl.gz")
    supervisions = load_manifest(out / "unassigned" / "supervisions.jsonl.gz")
    for n, path in enumerate([stereo, odd]):
        info = sf.info(str(path))
        rec, sup = recordings.items[str(n + 1)], supervisions.items[str(n + 1)]
        assert rec["num_samples"] == info.frames
        assert rec["sources"][0]["channels"] == list(range(info.channels))
        assert sup["channel"] == (0 if info.channels == 1 else list(range(info.channels)))
        assert "text" not in sup
        assert sup["language"] == "en"
        assert sup["custom"]["metadata.label"] == "a metadata key named label"
        assert "label" not in sup["custom"]


def test_the_cli_offers_lhotse(workspace, voice, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("EARMARK_DATA_DIR", str(workspace.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", workspace.settings.database_url)
    out = tmp_path / "cli-lhotse"
    assert cli(["export", "--project", "voice", "--format", "lhotse", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "lhotse"
    assert report["n_clips"] == len(CLIPS)


# ---------------------------------------------------------------- WebDataset, with its own reader


def _read_shards(out: Path) -> dict[str, list[dict[str, Any]]]:
    """Split → samples, as the ``webdataset`` package reads the shards (in shard order)."""
    wds = pytest.importorskip("webdataset")
    by_split: dict[str, list[dict[str, Any]]] = {}
    for split in ("train", "dev", "test", "unassigned"):
        shards = sorted(str(p) for p in out.glob(f"{split}-*.tar"))
        if shards:
            by_split[split] = list(wds.WebDataset(shards, shardshuffle=False, nodesplitter=None))
    return by_split


def test_webdataset_shards_hold_every_field(workspace, voice, tmp_path):  # noqa: F811
    out = tmp_path / "wds"
    export_project(workspace, "voice", fmt="webdataset", out=out)
    assert verify_export(out) == []

    seen = set()
    for split, samples in _read_shards(out).items():
        for sample in samples:
            (audio_ext,) = [k for k in sample if not k.startswith("__") and k != "json"]
            sha = hashlib.sha256(sample[audio_ext]).hexdigest()
            want = voice[sha]
            record = json.loads(sample["json"])
            assert audio_ext == Path(want["name"]).suffix.lstrip(".")
            assert record.pop("sha256") == sha
            assert record.pop("original_name") == want["name"]
            assert record.pop("split") == want["split"] == split
            assert record.pop("label") == want["label"]
            assert record.pop("transcript") == want["transcript"]  # byte for byte
            assert sorted(record.pop("tags")) == want["tags"]
            assert record.pop("metadata") == want["metadata"]
            assert sample["__key__"] == f"{record.pop('clip_id'):08d}"
            info = sf.info(io.BytesIO(sample[audio_ext]))
            assert record.pop("sample_rate") == info.samplerate
            assert record.pop("channels") == info.channels
            assert record.pop("duration_s") == pytest.approx(info.duration)
            assert record == {}
            seen.add(sha)
    assert seen == set(voice)


def test_webdataset_shards_stay_under_the_shard_size(workspace, tmp_path):
    source = tmp_path / "many"
    sizes = {}
    for n in range(12):
        path = write_wav(source / f"c{n:02d}.wav", speechlike(n, seconds=0.2 + 0.05 * n))
        sizes[_sha(path)] = path.stat().st_size
    from labeling.data.importer import import_source
    from labeling.data.projects import create_project

    with workspace.db.write() as s:
        create_project(s, name="many", task_kind="classification", classes=["a"])
    assert import_source(workspace, source, "many").n_imported == 12
    limit = 40_000
    out = tmp_path / "wds"
    export_project(workspace, "many", fmt="webdataset", out=out, shard_size=limit)

    shards = sorted(out.glob("*.tar"))
    assert len(shards) > 3
    for split in ("train", "dev", "test", "unassigned"):
        names = sorted(p.name for p in out.glob(f"{split}-*.tar"))
        assert names == [f"{split}-{n:06d}.tar" for n in range(len(names))]
    for shard in shards:
        with tarfile.open(shard) as tar:
            members = tar.getnames()
        assert shard.stat().st_size <= limit or len(members) == 2  # one clip larger than a shard
    read = _read_shards(out)
    samples = [s for split in read.values() for s in split]
    assert sorted(hashlib.sha256(s["wav"]).hexdigest() for s in samples) == sorted(sizes)
    for split_samples in read.values():
        keys = [s["__key__"] for s in split_samples]
        assert keys == sorted(keys)  # shard by shard, in clip order


def test_webdataset_refuses_referenced_audio_and_a_tiny_shard(workspace, voice, tmp_path):  # noqa: F811
    from labeling.data.export import ExportError

    with pytest.raises(ExportError, match="hold the audio itself"):
        export_project(workspace, "voice", fmt="webdataset", out=tmp_path / "a", copy_audio=False)
    with pytest.raises(ExportError, match="at least"):
        export_project(workspace, "voice", fmt="webdataset", out=tmp_path / "b", shard_size=100)
    with pytest.raises(ExportError, match="WebDataset shards only"):
        export_project(workspace, "voice", fmt="csv", out=tmp_path / "c", shard_size=10**6)
    assert not any(tmp_path.glob("[abc]"))


# ---------------------------------------------------------------- one row per annotation


def _annotations(ws, project: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(sha256, annotator) → the annotation as the database holds it."""
    from sqlalchemy import select

    from db.models import Annotation, Clip, User
    from labeling.data.projects import get_project

    with ws.db.read() as s:
        pid = get_project(s, project).id
        q = (
            select(
                Clip.sha256,
                User.name,
                Annotation.label,
                Annotation.transcript,
                Annotation.tags,
                Annotation.unsure,
                Annotation.time_spent_ms,
                Annotation.convention_version,
                Annotation.created_at,
                Annotation.updated_at,
                Annotation.cannot_label_reason,
            )
            .join(Clip, Clip.id == Annotation.clip_id)
            .join(User, User.id == Annotation.annotator_id)
            .where(Annotation.project_id == pid)
        )
        rows = s.execute(q).all()
        return {
            (sha, who): {
                "label": label,
                "transcript": transcript,
                "tags": sorted(tags or []),
                "unsure": unsure,
                "time_spent_ms": spent,
                "convention_version": convention,
                "created_at": _utc(created),
                "updated_at": _utc(updated),
                "cannot_label_reason": reason,
            }
            for sha, who, label, transcript, tags, unsure, spent, convention, created, updated, reason in rows
        }


def _utc(stamp):  # SQLite hands back naive UTC times, PostgreSQL aware ones
    from datetime import UTC

    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def test_the_per_annotator_table_has_every_annotation_and_imports_back(workspace, voice, tmp_path):  # noqa: F811
    import csv
    from datetime import UTC, datetime

    from sqlalchemy import update

    from db.models import Annotation
    from labeling.data.importer import import_source
    from labeling.data.labels_import import import_labels
    from labeling.data.projects import create_project

    with workspace.db.write() as s:  # some annotations with time spent, a convention, a doubt, a refusal
        s.execute(update(Annotation).where(Annotation.id % 2 == 0).values(time_spent_ms=1234, unsure=True))
        s.execute(
            update(Annotation).where(Annotation.id % 3 == 0).values(convention_version=2, tags=["noise:car"])
        )
        s.execute(
            update(Annotation)
            .where(Annotation.id % 5 == 0)
            .values(label=None, transcript=None, cannot_label_reason="=only noise, no speech")
        )
        s.execute(
            update(Annotation)
            .where(Annotation.id % 4 == 1)
            .values(
                created_at=datetime(2026, 3, 1, 9, 30, 15, 250000, tzinfo=UTC),
                updated_at=datetime(2026, 3, 2, 17, 0, 1, tzinfo=UTC),
            )
        )
    stored = _annotations(workspace, "voice")
    assert len(stored) == sum(len(c["annotations"]) for c in voice.values())

    out = tmp_path / "ann"
    report = export_project(workspace, "voice", fmt="annotations", out=out)
    assert report.audio == "none"
    table = out / "annotations.csv"
    assert sorted(p.name for p in out.iterdir()) == ["MANIFEST.json", "annotations.csv"]
    # as a spreadsheet or R reads it: the escaped cells are the only change
    with table.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(stored)
    for row in rows:
        want = stored[(row["sha256"], row["annotator"])]
        assert row["file_name"] == voice[row["sha256"]]["name"].replace("-2+3", "'-2+3")
        assert row["split"] == voice[row["sha256"]]["split"]
        assert row["label"] == (want["label"] or "")
        assert sorted(t for t in row["tags"].split(";") if t) == want["tags"]
        assert row["unsure"] == ("true" if want["unsure"] else "false")
        assert row["time_spent_ms"] == ("" if want["time_spent_ms"] is None else str(want["time_spent_ms"]))
        assert row["convention_version"] == (
            "" if want["convention_version"] is None else str(want["convention_version"])
        )
        assert datetime.fromisoformat(row["created_at"].replace("Z", "+00:00")) == want["created_at"]
        assert datetime.fromisoformat(row["updated_at"].replace("Z", "+00:00")) == want["updated_at"]
        reason = want["cannot_label_reason"]
        assert row["cannot_label_reason"] == ("'" + reason if reason else "")  # neutralised formula

    # export → import: the same clips in a new project, then the table as annotations
    clips = tmp_path / "clips"
    export_project(workspace, "voice", fmt="jsonl", out=clips)
    with workspace.db.write() as s:
        create_project(
            s, name="again", task_kind="both", classes=CLASSES, tag_groups=TAGS, annotations_per_clip=3
        )
    import_source(workspace, clips, "again")
    applied = import_labels(workspace, table, "again", as_="annotations")
    assert applied.problems == []
    assert any(v["cannot_label_reason"] for v in stored.values())
    assert _annotations(workspace, "again") == stored  # every column, the times to the microsecond

    again = import_labels(workspace, table, "again", as_="annotations")
    assert (again.n_created, again.n_updated, again.n_unchanged) == (0, 0, len(stored))
