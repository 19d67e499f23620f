"""Reading Label Studio exports of an audio classification + transcription project.

The fixtures follow Label Studio's documented export shapes ("Label Studio JSON format of annotated
tasks", the JSON_MIN and CSV exports of its converter): a UI export (``completed_by`` a user id,
predictions as ids), a snapshot (``completed_by`` an object with an email, full predictions), the
flat JSON_MIN records and the CSV with lists written as JSON text.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from labeling.data.formats.base import FormatError
from labeling.data.formats.labelstudio import read_labelstudio, read_labelstudio_csv
from tests.audio import speechlike, write_wav


def _choices(name: str, *values: str) -> dict:
    return {
        "id": f"{name[:3]}{len(values)}",
        "from_name": name,
        "to_name": "audio",
        "type": "choices",
        "origin": "manual",
        "value": {"choices": list(values)},
    }


def _text(text: str) -> dict:
    return {
        "id": "txt1",
        "from_name": "transcription",
        "to_name": "audio",
        "type": "textarea",
        "origin": "manual",
        "value": {"text": [text]},
    }


def _annotation(ann_id: int, completed_by, result: list, *, cancelled: bool = False, **extra) -> dict:
    return {
        "id": ann_id,
        "completed_by": completed_by,
        "result": result,
        "was_cancelled": cancelled,
        "ground_truth": False,
        "created_at": f"2025-03-0{ann_id % 9 + 1}T10:00:00.000000Z",
        "updated_at": f"2025-03-0{ann_id % 9 + 1}T10:00:00.000000Z",
        "draft_created_at": None,
        "lead_time": 4.2,
        "prediction": {},
        "result_count": 0,
        "unique_id": f"uid-{ann_id}",
        "import_id": None,
        "last_action": None,
        "task": 1,
        "project": 3,
        "updated_by": completed_by,
        "parent_prediction": None,
        "parent_annotation": None,
        "last_created_by": None,
        **extra,
    }


@pytest.fixture
def upload_dir(tmp_path: Path) -> Path:
    """Label Studio's media/upload/<project> folder: names carry an 8-hex-digit prefix."""
    folder = tmp_path / "media" / "upload" / "3"
    write_wav(folder / "1a2b3c4d-yes_01.wav", speechlike(1))
    write_wav(folder / "9f8e7d6c-no_02.wav", speechlike(2))
    write_wav(folder / "0badc0de-up_03.wav", speechlike(3))
    return tmp_path / "media" / "upload"


def ui_export() -> list[dict]:
    """Export → JSON from the project page: user ids and prediction ids."""
    return [
        {
            "id": 1,
            "annotations": [
                _annotation(
                    11,
                    1,
                    [_choices("label", "yes"), _choices("noise", "car"), _text("yes")],
                ),
                _annotation(12, 2, [_choices("label", "no"), _text("no")]),
                _annotation(13, 4, [], cancelled=True),
            ],
            "file_upload": "1a2b3c4d-yes_01.wav",
            "drafts": [],
            "predictions": [7, 8],
            "data": {"audio": "/data/upload/3/1a2b3c4d-yes_01.wav", "speaker": "jackson"},
            "meta": {},
            "created_at": "2025-03-01T09:00:00.000000Z",
            "updated_at": "2025-03-02T09:00:00.000000Z",
            "inner_id": 1,
            "total_annotations": 2,
            "cancelled_annotations": 1,
            "total_predictions": 2,
            "comment_count": 0,
            "unresolved_comment_count": 0,
            "last_comment_updated_at": None,
            "project": 3,
            "updated_by": 2,
            "comment_authors": [],
        },
        {
            "id": 2,
            "annotations": [_annotation(21, 1, [_choices("label", "no"), _choices("tags", "noisy", "far")])],
            "predictions": [9],
            "data": {"audio": "/data/upload/3/9f8e7d6c-no_02.wav", "speaker": "theo"},
            "project": 3,
        },
    ]


def snapshot_export() -> list[dict]:
    """A snapshot (export API or Enterprise UI): user objects and full predictions."""
    alice = {"id": 1, "email": "alice@example.org", "first_name": "Alice", "last_name": ""}
    bob = {"id": 2, "email": "bob@example.org", "first_name": "Bob", "last_name": ""}
    return [
        {
            "id": 1,
            "data": {"audio": "/data/upload/3/1a2b3c4d-yes_01.wav"},
            "annotations": [
                _annotation(11, alice, [_choices("label", "yes"), _text("yes")]),
                _annotation(12, bob, [_choices("label", "yes"), _text("yes please")], ground_truth=True),
            ],
            "predictions": [
                {
                    "id": 7,
                    "model_version": "svm-2025-03",
                    "created_ago": "3 hours",
                    "score": 0.82,
                    "result": [_choices("label", "yes")],
                    "cluster": None,
                    "neighbors": None,
                    "mislabeling": 0.0,
                    "created_at": "2025-03-01T09:00:00.000000Z",
                    "updated_at": "2025-03-01T09:00:00.000000Z",
                    "task": 1,
                    "project": 3,
                },
                {"id": 8, "model_version": "asr-v1", "score": 0.5, "result": [_text("yes")], "task": 1},
            ],
        }
    ]


def _write(path: Path, doc) -> Path:
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return path


def test_ui_export_gives_each_annotator_an_annotation(tmp_path: Path, upload_dir: Path) -> None:
    plan = read_labelstudio(_write(tmp_path / "project-3.json", ui_export()), audio_root=upload_dir)

    assert plan.source_format == "labelstudio"
    by_name = {i.name: i for i in plan.items}
    assert set(by_name) == {"yes_01.wav", "no_02.wav"}
    first = by_name["yes_01.wav"]
    assert first.path == (upload_dir / "3" / "1a2b3c4d-yes_01.wav").resolve()
    assert first.metadata == {"speaker": "jackson"}
    assert first.label is None  # annotations are not a final label
    got = {(a.annotator, a.label, a.transcript, a.tags) for a in first.annotations}
    assert got == {
        ("labelstudio-user-1", "yes", "yes", ("noise:car",)),
        ("labelstudio-user-2", "no", "no", ()),
    }
    assert by_name["no_02.wav"].annotations[0].tags == ("noisy", "far")


def test_ui_export_reports_cancelled_annotations_and_prediction_ids(tmp_path: Path, upload_dir: Path) -> None:
    plan = read_labelstudio(_write(tmp_path / "project-3.json", ui_export()), audio_root=upload_dir)

    reasons = [p.reason for p in plan.problems]
    cancelled = [p for p in plan.problems if "cancelled" in p.reason]
    assert len(cancelled) == 1
    assert "annotation 13" in cancelled[0].ref
    assert "labelstudio-user-4" in cancelled[0].reason
    ids = [r for r in reasons if "predictions are only ids" in r]
    assert ids == [ids[0]]
    assert ids[0].startswith("3 predictions")


def test_user_names_map_label_studio_ids_to_annotators(tmp_path: Path, upload_dir: Path) -> None:
    plan = read_labelstudio(
        _write(tmp_path / "e.json", ui_export()), audio_root=upload_dir, user_names={1: "ana", 2: "ben"}
    )

    assert {a.annotator for i in plan.items for a in i.annotations} == {"ana", "ben"}


def test_snapshot_export_reads_emails_predictions_and_ground_truth(tmp_path: Path, upload_dir: Path) -> None:
    plan = read_labelstudio(_write(tmp_path / "snapshot.json", snapshot_export()), audio_root=upload_dir)

    (item,) = plan.items
    assert {a.annotator for a in item.annotations} == {
        "labelstudio:alice@example.org",
        "labelstudio:bob@example.org",
    }
    assert (item.label, item.transcript) == ("yes", "yes please")  # bob's ground truth
    preds = {(p.model, p.label, p.transcript, p.confidence) for p in item.predictions}
    assert preds == {("svm-2025-03", "yes", None, 0.82), ("asr-v1", None, "yes", 0.5)}
    assert plan.problems == []


def test_upload_files_are_found_by_their_name_without_the_prefix(tmp_path: Path) -> None:
    originals = tmp_path / "recordings"
    write_wav(originals / "yes_01.wav", speechlike(1))
    doc = [{"id": 5, "data": {"audio": "/data/upload/3/1a2b3c4d-yes_01.wav"}, "annotations": []}]

    plan = read_labelstudio(_write(tmp_path / "e.json", doc), audio_root=originals)

    assert [i.path for i in plan.items] == [(originals / "yes_01.wav").resolve()]


def test_local_files_references_resolve_by_their_path_or_its_tail(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_wav(root / "speech" / "my clip.wav", speechlike(4))
    doc = [
        {"id": 1, "data": {"audio": "/data/local-files/?d=speech%2Fmy%20clip.wav"}},
        {
            "id": 2,
            "data": {"audio": "http://localhost:8080/data/local-files/?d=home/me/data/speech/my%20clip.wav"},
        },
    ]

    plan = read_labelstudio(_write(tmp_path / "e.json", doc), audio_root=root)

    assert [i.name for i in plan.items] == ["speech/my clip.wav"]
    # the second task names the same file: reported, not imported twice
    assert [p.ref for p in plan.problems] == ["task 2"]
    assert "already imported" in plan.problems[0].reason


def test_remote_urls_are_reported_not_fetched(tmp_path: Path) -> None:
    doc = [
        {"id": 1, "data": {"audio": "https://example.com/audio/clip.wav"}},
        {"id": 2, "data": {"audio": "s3://bucket/clip.wav"}},
    ]

    plan = read_labelstudio(_write(tmp_path / "e.json", doc))

    assert plan.items == []
    assert "remote URL not fetched" in plan.problems[0].reason
    assert "--audio-root" in plan.problems[0].reason
    assert "s3://" in plan.problems[1].reason


def test_json_min_export_groups_annotations_by_task(tmp_path: Path, upload_dir: Path) -> None:
    records = [
        {
            "audio": "/data/upload/3/1a2b3c4d-yes_01.wav",
            "speaker": "jackson",
            "id": 1,
            "label": "yes",
            "transcription": "yes",
            "tags": {"choices": ["noisy", "far"]},
            "annotator": 1,
            "annotation_id": 11,
            "created_at": "2025-03-01T10:00:00.000000Z",
            "updated_at": "2025-03-01T10:00:00.000000Z",
            "lead_time": 3.1,
        },
        {
            "audio": "/data/upload/3/1a2b3c4d-yes_01.wav",
            "speaker": "jackson",
            "id": 1,
            "label": "no",
            "annotator": "bob@example.org",
            "annotation_id": 12,
            "lead_time": 2.0,
        },
    ]

    plan = read_labelstudio(_write(tmp_path / "min.json", records), audio_root=upload_dir)

    assert plan.source_format == "labelstudio_min"
    (item,) = plan.items
    assert item.metadata == {"speaker": "jackson"}
    got = {(a.annotator, a.label, a.transcript, a.tags) for a in item.annotations}
    assert got == {
        ("labelstudio-user-1", "yes", "yes", ("noisy", "far")),
        ("labelstudio:bob@example.org", "no", None, ()),
    }


def test_csv_export_reads_json_cells(tmp_path: Path, upload_dir: Path) -> None:
    path = tmp_path / "project-3.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "annotation_id",
                "annotator",
                "audio",
                "created_at",
                "id",
                "label",
                "lead_time",
                "tags",
                "transcription",
            ]
        )
        writer.writerow(
            [
                11,
                1,
                "/data/upload/3/1a2b3c4d-yes_01.wav",
                "2025-03-01",
                1,
                "yes",
                3.1,
                '{"choices": ["a", "b"]}',
                "yes",
            ]
        )
        writer.writerow(
            [21, "bob@example.org", "/data/upload/3/9f8e7d6c-no_02.wav", "2025-03-01", 2, "no", 1, "", ""]
        )

    plan = read_labelstudio_csv(path, audio_root=upload_dir)

    assert plan.source_format == "labelstudio_csv"
    got = {(i.name, a.annotator, a.label, a.transcript, a.tags) for i in plan.items for a in i.annotations}
    assert got == {
        ("yes_01.wav", "labelstudio-user-1", "yes", "yes", ("a", "b")),
        ("no_02.wav", "labelstudio:bob@example.org", "no", None, ()),
    }
    assert read_labelstudio(path, audio_root=upload_dir).items == plan.items


def test_region_results_and_a_repeated_annotator_are_reported(tmp_path: Path, upload_dir: Path) -> None:
    segment = {
        "id": "seg1",
        "from_name": "speaker",
        "to_name": "audio",
        "type": "labels",
        "value": {"start": 0.1, "end": 0.4, "labels": ["A"]},
    }
    doc = [
        {
            "id": 1,
            "data": {"audio": "/data/upload/3/1a2b3c4d-yes_01.wav"},
            "annotations": [
                _annotation(1, 1, [_choices("label", "no"), segment]),
                _annotation(2, 1, [_choices("label", "yes")]),
            ],
        }
    ]

    plan = read_labelstudio(_write(tmp_path / "e.json", doc), audio_root=upload_dir)

    (item,) = plan.items
    assert [(a.annotator, a.label) for a in item.annotations] == [
        ("labelstudio-user-1", "yes")
    ]  # the later one
    reasons = " | ".join(p.reason for p in plan.problems)
    assert "more than once" in reasons
    # a time region is counted, and never read as the whole clip's label
    assert {p.ref: p.reason for p in plan.problems}["time regions of 'speaker'"].startswith("1 not imported")


def test_a_folder_or_missing_file_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="is a folder"):
        read_labelstudio(tmp_path)
    with pytest.raises(FormatError, match="does not exist"):
        read_labelstudio(tmp_path / "nope.json")
    _write(tmp_path / "obj.json", {"tasks": 3})
    with pytest.raises(FormatError, match="not a Label Studio export"):
        read_labelstudio(tmp_path / "obj.json")


def test_a_task_without_audio_is_a_problem(tmp_path: Path) -> None:
    plan = read_labelstudio(_write(tmp_path / "e.json", [{"id": 4, "data": {"text": "hello"}}]))

    assert plan.items == []
    assert plan.problems[0].ref == "task 4"
