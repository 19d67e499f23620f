"""Every writer's output read back gives the same clips, labels, tags, splits and metadata.

The export frame is built the way the export service will build it: content-addressed, read-only
audio in a store, one row per clip. Clip identity is the SHA-256 of the audio bytes (hashlib), so a
round trip must neither lose a clip nor change its bytes.
"""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf

from labeling.data.formats.audiofolder import read_audiofolder
from labeling.data.formats.base import ImportPlan
from labeling.data.formats.labelstudio import read_labelstudio
from labeling.data.formats.nemo import read_nemo
from labeling.data.formats.writers import WRITERS, write_labelstudio
from tests.audio import speechlike, write_wav

CLIPS = [
    # original_name, split, label, transcript, tags, metadata
    (
        "spk1/yes_1.wav",
        "train",
        "yes",
        'say "yes", twice',
        ["noise:car"],
        {"speaker": "s1", "accent": "scottish"},
    ),
    (
        "yes_1.wav",
        "dev",
        "-1",
        "=SUM(A1)",
        [],
        {"speaker": "s2", "label": "not the label", "split": "nor the split"},
    ),
    ("../../escape.wav", None, None, None, ["a;b", "[x]"], {}),
    (
        "CON.wav",
        "test",
        "=cmd|' /C calc'!A0",
        "line\nbreak, ünïcode",
        ["@x", "+y"],
        {"audio": "a", "text": "t"},
    ),
    ("yes_1.wav", "train", "'quoted", "+1 more", ["channel:low-bandwidth"], {"device": "@phone"}),
]


def _store_clip(store: Path, seed: int) -> tuple[str, Path]:
    data = write_wav(store.parent / "incoming" / f"{seed}.wav", speechlike(seed, seconds=0.3)).read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    path = store / sha[:2] / f"{sha}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)  # the store is read-only
    return sha, path


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def frame(store: Path) -> pd.DataFrame:
    rows = []
    for n, (name, split, label, transcript, tags, metadata) in enumerate(CLIPS, start=1):
        sha, path = _store_clip(store, n)
        info = sf.info(str(path))
        rows.append(
            {
                "clip_id": n,
                "sha256": sha,
                "original_name": name,
                "audio_path": str(path),
                "duration_s": info.duration,
                "sample_rate": info.samplerate,
                "channels": info.channels,
                "split": split,
                "label": label,
                "transcript": transcript,
                "tags": tags,
                "metadata": metadata,
            }
        )
    return pd.DataFrame(rows)


def _expected(frame: pd.DataFrame) -> dict[str, tuple]:
    return {
        row.sha256: (
            row.label if isinstance(row.label, str) else None,
            row.transcript if isinstance(row.transcript, str) else None,
            tuple(row.tags),
            row.split if isinstance(row.split, str) else None,
            dict(row.metadata),
        )
        for row in frame.itertuples()
    }


def _got(plan: ImportPlan) -> dict[str, tuple]:
    out = {}
    for item in plan.items:
        sha = hashlib.sha256(item.path.read_bytes()).hexdigest()
        assert sha not in out, "a clip came back twice"
        out[sha] = (item.label, item.transcript, item.tags, item.split, item.metadata)
    return out


def _read_back(fmt: str, out: Path, audio_root: Path | None) -> ImportPlan:
    if fmt in ("csv", "jsonl", "audiofolder"):
        return read_audiofolder(out, audio_root=audio_root)
    if fmt == "labelstudio":
        return read_labelstudio(out / "tasks.json", audio_root=audio_root or out)
    plan = ImportPlan(source_format="nemo")
    for manifest in sorted(out.glob("*_manifest.json")):
        part = read_nemo(manifest, audio_root=audio_root)
        plan.items += part.items
        plan.problems += part.problems
    return plan


#: Kaldi data directories carry transcripts, speakers and splits only: tested on their own. lhotse
#: manifests and WebDataset shards are for trainers and are read with those libraries' own rules, and the
#: per-annotation table goes back through the labels import (tests/db/test_trainer_manifests.py). Common
#: Voice and LibriSpeech layouts carry transcripts, speakers and splits only, and always hold the audio
#: (tests/unit/test_formats_corpora_export.py).
TABLE_AND_TASK_FORMATS = sorted(
    set(WRITERS) - {"kaldi", "lhotse", "webdataset", "annotations", "commonvoice", "librispeech"}
)


@pytest.mark.parametrize("fmt", TABLE_AND_TASK_FORMATS)
def test_copied_exports_read_back_the_same(fmt: str, frame: pd.DataFrame, tmp_path: Path) -> None:
    out = tmp_path / f"export-{fmt}"

    WRITERS[fmt](frame, out, copy_audio=True)
    plan = _read_back(fmt, out, None)

    assert plan.problems == []
    assert _got(plan) == _expected(frame)
    # the files are named after the original names, made safe and kept apart where two meet in one
    # folder, and the clips come back with their original names all the same
    assert sorted(i.name for i in plan.items) == sorted(frame.original_name)


@pytest.mark.parametrize("fmt", sorted(set(TABLE_AND_TASK_FORMATS) - {"audiofolder"}))
def test_referencing_exports_read_back_the_same(
    fmt: str, frame: pd.DataFrame, store: Path, tmp_path: Path
) -> None:
    out = tmp_path / f"export-{fmt}"

    written = WRITERS[fmt](frame, out, copy_audio=False)
    plan = _read_back(fmt, out, store)

    assert not any(p.suffix == ".wav" for p in written)
    assert plan.problems == []
    assert _got(plan) == _expected(frame)
    assert {i.path for i in plan.items} == {Path(p).resolve() for p in frame.audio_path}
    assert sorted(i.name for i in plan.items) == sorted(frame.original_name)


def _ui_export(audio_dir: Path) -> list[dict]:
    """A Label Studio export with two annotators per task, a cancelled one and full predictions."""
    for n in (1, 2):
        write_wav(audio_dir / f"{n:08x}-clip{n}.wav", speechlike(10 + n))

    def choice(name: str, *values: str) -> dict:
        return {"from_name": name, "to_name": "audio", "type": "choices", "value": {"choices": list(values)}}

    def text(value: str) -> dict:
        return {
            "from_name": "transcription",
            "to_name": "audio",
            "type": "textarea",
            "value": {"text": [value]},
        }

    return [
        {
            "id": n,
            "data": {"audio": f"/data/upload/7/{n:08x}-clip{n}.wav", "speaker": f"s{n}"},
            "annotations": [
                {
                    "id": 10 * n,
                    "completed_by": 1,
                    "result": [choice("label", "yes"), text("yes"), choice("tags", "far")],
                },
                {
                    "id": 10 * n + 1,
                    "completed_by": 2,
                    "result": [choice("label", "no"), choice("noise", "car")],
                },
                {"id": 10 * n + 2, "completed_by": 3, "was_cancelled": True, "result": []},
            ],
            "predictions": [
                {"model_version": "svm-1", "score": 0.25 * n, "result": [choice("label", "yes")]}
            ],
        }
        for n in (1, 2)
    ]


def _frames_from(plan: ImportPlan) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """What the importer stores and the export service hands back: the clip rows and long tables."""
    clips, annotations, predictions = [], [], []
    for n, item in enumerate(plan.items, start=1):
        clips.append(
            {
                "clip_id": n,
                "sha256": hashlib.sha256(item.path.read_bytes()).hexdigest(),
                "original_name": item.name,
                "audio_path": str(item.path),
                "split": item.split,
                "label": item.label,
                "transcript": item.transcript,
                "tags": list(item.tags),
                "metadata": item.metadata,
            }
        )
        annotations += [
            {
                "clip_id": n,
                "annotator": a.annotator,
                "label": a.label,
                "transcript": a.transcript,
                "tags": list(a.tags),
            }
            for a in item.annotations
        ]
        predictions += [
            {
                "clip_id": n,
                "model": p.model,
                "label": p.label,
                "transcript": p.transcript,
                "confidence": p.confidence,
            }
            for p in item.predictions
        ]
    return pd.DataFrame(clips), pd.DataFrame(annotations), pd.DataFrame(predictions)


def _labels(plan: ImportPlan) -> dict[str, tuple]:
    return {
        hashlib.sha256(i.path.read_bytes()).hexdigest(): (
            i.label,
            i.metadata,
            sorted((a.annotator, a.label, a.transcript, a.tags) for a in i.annotations),
            sorted((p.model, p.label, p.confidence) for p in i.predictions),
        )
        for i in plan.items
    }


def test_label_studio_export_read_written_and_read_again_keeps_the_labels(tmp_path: Path) -> None:
    audio = tmp_path / "upload"
    source = tmp_path / "project-7.json"
    source.write_text(json.dumps(_ui_export(audio)), encoding="utf-8")
    first = read_labelstudio(source, audio_root=audio)
    clips, annotations, predictions = _frames_from(first)
    annotators = sorted(annotations.annotator.unique())

    out = tmp_path / "again"
    write_labelstudio(
        clips,
        out,
        copy_audio=True,
        annotations=annotations,
        predictions=predictions,
        user_ids={name: k for k, name in enumerate(annotators, start=1)},
    )
    second = read_labelstudio(
        out / "tasks.json", audio_root=out, user_names={k: name for k, name in enumerate(annotators, start=1)}
    )

    assert annotators == ["labelstudio-user-1", "labelstudio-user-2"]
    assert _labels(second) == _labels(first)
    assert second.problems == []
