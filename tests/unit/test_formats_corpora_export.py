"""Common Voice and LibriSpeech exports, read back by the rules of the readers people use.

The readers below restate, in a few lines each, what the reference readers do with the files:

* lhotse's ``prepare_commonvoice`` (``lhotse/recipes/commonvoice.py``): ``pd.read_csv(tsv, sep="\\t")``,
  the audio at ``<release>/clips/<path>``, ``speaker = client_id``, ``text = sentence.strip()``,
  ``gender`` unless empty, a row that fails (an empty sentence) logged and skipped;
* Hugging Face's Common Voice scripts: ``csv.DictReader(f, delimiter="\\t", quoting=csv.QUOTE_NONE)``
  (releases 7 on), or ``line.strip().split("\\t")`` zipped with the header (release 6), votes cast to
  ``int64`` (their later scripts also add ``.mp3`` to a ``path`` without it, so of an export they
  find only the clips stored as MP3, as the README says);
* lhotse's ``prepare_librispeech`` (``lhotse/recipes/librispeech.py``): every ``*.trans.txt`` under
  ``<corpus>/<part>``, each line ``recording_id, text = line.strip().split(maxsplit=1)``, the audio at
  ``<part>/<recording_id with - as />/../<recording_id>.flac``, ``speaker`` the id up to the first ``-``.

Expected values are the frame the test builds, never the writer's own output.
"""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from labeling.data.formats.base import FormatError
from labeling.data.formats.commonvoice import read_commonvoice
from labeling.data.formats.librispeech import read_librispeech
from labeling.data.formats.writers import verify_export, write_commonvoice, write_librispeech
from tests.audio import speechlike, write_wav

# original name, split, transcript, metadata
CLIPS = [
    (
        "spk/a.wav",
        "train",
        'Say "yes" twice.',
        {"speaker": "c0ffee", "gender": "female_feminine", "age": "twenties"},
    ),
    ("b.wav", "train", "tab\there, and\nnewline", {"speaker": "c0ffee", "accents": "Scottish English"}),
    ("c.wav", "dev", "  spaced  ", {"speaker": "beef01", "up_votes": "4", "locale": "en", "device": "phone"}),
    ("d.wav", "test", "last one", {"speaker": "beef01", "chapter": "77", "gender": "male"}),
    ("e.wav", None, "no split", {}),
    ("f.wav", "test", None, {"speaker": "beef01"}),
]


def _frame(tmp_path: Path) -> pd.DataFrame:
    rows = []
    for i, (name, split, text, meta) in enumerate(CLIPS):
        path = write_wav(tmp_path / "store" / f"{i}.wav", speechlike(i, seconds=0.3))
        rows.append(
            {
                "clip_id": i + 1,
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "original_name": name,
                "audio_path": str(path),
                "duration_s": 0.3,
                "sample_rate": 16000,
                "channels": 1,
                "split": split,
                "label": None,
                "transcript": text,
                "tags": [],
                "metadata": meta,
            }
        )
    return pd.DataFrame(rows)


def _flat(text: str | None) -> str:
    return re.sub(r"[\t\n]", " ", text or "")


# ---------------------------------------------------------------- Common Voice


def lhotse_commonvoice(release: Path, part: str) -> list[dict]:
    df = pd.read_csv(release / f"{part}.tsv", sep="\t")
    out = []
    for _, row in df.iterrows():
        audio = release / "clips" / row.path
        if not audio.is_file() or not isinstance(row.sentence, str):
            continue  # lhotse raises inside its try and skips the row
        out.append(
            {
                "audio": audio,
                "speaker": row.client_id,
                "text": row.sentence.strip(),
                "gender": row.gender if isinstance(row.gender, str) else None,
                "age": row.age if isinstance(row.age, str) else None,
            }
        )
    return out


def hf_commonvoice(release: Path, part: str) -> list[dict]:
    with (release / f"{part}.tsv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    for row in rows:
        row["up_votes"], row["down_votes"] = int(row["up_votes"]), int(row["down_votes"])
    return rows


def hf6_commonvoice(release: Path, part: str) -> list[dict]:
    lines = (release / f"{part}.tsv").read_bytes().splitlines()
    header = lines[0].decode("utf-8").strip().split("\t")
    return [dict(zip(header, line.decode("utf-8").strip().split("\t"), strict=False)) for line in lines[1:]]


def test_commonvoice_layout_reads_back_by_huggingface_rules(tmp_path: Path) -> None:
    frame = _frame(tmp_path)
    out = tmp_path / "cv"
    write_commonvoice(frame, out)
    assert verify_export(out) == []
    assert sorted(p.name for p in out.iterdir()) == [
        "MANIFEST.json",
        "clips",
        "dev.tsv",
        "test.tsv",
        "train.tsv",
        "validated.tsv",
    ]

    validated = hf_commonvoice(out, "validated")
    assert [r["sentence"] for r in validated] == [_flat(t) for _, _, t, _ in CLIPS]
    assert [r["client_id"] for r in validated] == [m.get("speaker", "unknown") for *_, m in CLIPS]
    for row, (_, _, _, meta) in zip(validated, CLIPS, strict=True):
        assert (out / "clips" / row["path"]).is_file()
        assert "/" not in row["path"]  # Hugging Face's scripts match clips by their file name
        assert row["up_votes"] == int(meta.get("up_votes", 0))
        assert row["down_votes"] == 0
        for column in ("age", "gender", "accents", "locale", "segment", "variant"):
            assert row[column] == meta.get(column, "")
    stored = {hashlib.sha256((out / "clips" / r["path"]).read_bytes()).hexdigest() for r in validated}
    assert stored == set(frame["sha256"])
    for part, split in (("train", "train"), ("dev", "dev"), ("test", "test")):
        assert [r["sentence"] for r in hf_commonvoice(out, part)] == [
            _flat(t) for _, s, t, _ in CLIPS if s == split
        ]
    # Release 6's script splits each stripped line on tabs (empty cells at the end fall off, and it
    # fills them in): the columns still line up, since the first cell is never empty.
    for old, row in zip(hf6_commonvoice(out, "validated"), validated, strict=True):
        assert old == {k: str(row[k]) for k in old}
        assert all(row[k] == "" for k in row.keys() - old.keys())


def test_commonvoice_layout_reads_back_by_lhotse_rules(tmp_path: Path) -> None:
    out = tmp_path / "cv"
    write_commonvoice(_frame(tmp_path), out)

    train = lhotse_commonvoice(out, "train")
    assert [(r["speaker"], r["text"], r["gender"], r["age"]) for r in train] == [
        ("c0ffee", 'Say "yes" twice.', "female_feminine", "twenties"),
        ("c0ffee", "tab here, and newline", None, None),
    ]
    # The clip without a transcript is in test.tsv with an empty sentence; lhotse leaves it out.
    assert [r["text"] for r in lhotse_commonvoice(out, "test")] == ["last one"]
    audio = train[0]["audio"]
    samples, rate = sf.read(audio, dtype="int16")
    expected, _ = sf.read(tmp_path / "store" / "0.wav", dtype="int16")
    assert rate == 16000
    assert np.array_equal(samples, expected)


def test_commonvoice_export_imports_back_with_every_field(tmp_path: Path) -> None:
    frame = _frame(tmp_path)
    out = tmp_path / "cv"
    write_commonvoice(frame, out)

    by_sha = {}
    for part in ("train", "dev", "test", "validated"):
        plan = read_commonvoice(out / f"{part}.tsv")
        assert plan.problems == []
        for item in plan.items:
            sha = hashlib.sha256(item.path.read_bytes()).hexdigest()
            by_sha.setdefault(sha, item)
    assert set(by_sha) == set(frame["sha256"])
    for sha, (_, split, text, meta) in zip(frame["sha256"], CLIPS, strict=True):
        item = by_sha[sha]
        assert item.transcript == (_flat(text) or None)
        assert item.split == split
        cv_keys = {"gender", "age", "accents", "up_votes", "locale"}  # "device" has no column
        want = {k: v for k, v in meta.items() if k in cv_keys}
        want |= {"speaker": meta.get("speaker", "unknown"), "up_votes": want.get("up_votes", "0")}
        want["down_votes"] = "0"
        assert item.metadata == want


def test_commonvoice_export_needs_the_audio_copied(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="audio copied"):
        write_commonvoice(_frame(tmp_path), tmp_path / "cv", copy_audio=False)
    assert not (tmp_path / "cv").exists()


# ---------------------------------------------------------------- LibriSpeech


def lhotse_librispeech(corpus: Path, part: str) -> list[dict]:
    part_path = corpus / part
    out = []
    for trans in sorted(part_path.rglob("*.trans.txt")):
        with trans.open() as f:
            for line in f:
                recording_id, text = line.strip().split(maxsplit=1)
                audio = part_path / Path(recording_id.replace("-", "/")).parent / f"{recording_id}.flac"
                if not audio.is_file():
                    continue
                out.append(
                    {
                        "id": recording_id,
                        "audio": audio,
                        "speaker": re.sub(r"-.*", "", recording_id),
                        "text": text.strip(),
                    }
                )
    return out


def test_librispeech_tree_reads_back_by_lhotse_rules(tmp_path: Path) -> None:
    frame = _frame(tmp_path)
    out = tmp_path / "ls"
    write_librispeech(frame, out)
    assert verify_export(out) == []
    assert sorted(p.name for p in out.iterdir()) == [
        "MANIFEST.json",
        "SPEAKERS.TXT",
        "dev",
        "test",
        "train",
        "unassigned",
    ]

    train = lhotse_librispeech(out, "train")
    assert [(r["id"], r["speaker"], r["text"]) for r in train] == [
        ("c0ffee-0-0000", "c0ffee", 'SAY "YES" TWICE.'),
        ("c0ffee-0-0001", "c0ffee", "TAB HERE, AND NEWLINE"),
    ]
    assert [(r["id"], r["text"]) for r in lhotse_librispeech(out, "dev")] == [("beef01-0-0000", "SPACED")]
    # d.wav has chapter 77; f.wav, in the same split without chapter or transcript, has audio only.
    assert [(r["id"], r["text"]) for r in lhotse_librispeech(out, "test")] == [("beef01-77-0000", "LAST ONE")]
    assert (out / "test" / "beef01" / "0" / "beef01-0-0000.flac").is_file()
    assert [(r["id"], r["text"]) for r in lhotse_librispeech(out, "unassigned")] == [
        ("unknown-0-0000", "NO SPLIT")
    ]
    for record in train:
        assert sf.info(record["audio"]).format == "FLAC"
    samples, rate = sf.read(train[0]["audio"], dtype="int16")
    expected, _ = sf.read(tmp_path / "store" / "0.wav", dtype="int16")
    assert rate == 16000
    assert np.array_equal(samples, expected)  # FLAC: not a sample lost


def test_librispeech_export_imports_back_with_every_field(tmp_path: Path) -> None:
    frame = _frame(tmp_path)
    out = tmp_path / "ls"
    write_librispeech(frame, out)

    plan = read_librispeech(out)
    assert plan.problems == []
    assert [w.ref for w in plan.warnings] == ["test/beef01/0/beef01-0-0000.flac"]  # no transcript
    got = {}
    for item in plan.items:
        samples, _ = sf.read(item.path, dtype="int16")
        got[hashlib.sha256(samples.tobytes()).hexdigest()] = item
    sexes = {"female_feminine": "f", "male": "m"}
    for i, (_, split, text, meta) in enumerate(CLIPS):
        samples, _ = sf.read(tmp_path / "store" / f"{i}.wav", dtype="int16")
        item = got[hashlib.sha256(samples.tobytes()).hexdigest()]
        assert item.transcript == (" ".join(text.upper().split()) if text else None)
        assert item.split == split
        speaker = meta.get("speaker", "unknown")
        assert item.metadata["speaker"] == speaker
        assert item.metadata["chapter"] == meta.get("chapter", "0")
        assert item.metadata["subset"] == (split or "unassigned")
        genders = {m["gender"] for *_, m in CLIPS if m.get("speaker") == speaker and "gender" in m}
        assert item.metadata.get("gender") == (sexes[genders.pop()] if genders else None)


def test_librispeech_speakers_that_would_merge_are_refused(tmp_path: Path) -> None:
    frame = _frame(tmp_path)
    frame["metadata"] = [{"speaker": "a-b"}, {"speaker": "a b"}, *frame["metadata"][2:]]
    with pytest.raises(FormatError, match="both become 'a_b'"):
        write_librispeech(frame, tmp_path / "ls")
    assert not (tmp_path / "ls").exists()
    assert list(tmp_path.glob(".ls*")) == []


def test_an_exported_release_folder_imports_every_clip_once(tmp_path: Path) -> None:
    from labeling.data.importer import read_source, source_format

    frame = _frame(tmp_path)
    out = tmp_path / "cv"
    write_commonvoice(frame, out)

    assert source_format(out) == "commonvoice"
    plan = read_source(out, "commonvoice")
    # the split TSVs first, then the clip only validated.tsv lists (it has no split), each clip once
    assert [(i.name, i.split) for i in plan.items] == [
        ("spk_a.wav", "train"),
        ("b.wav", "train"),
        ("c.wav", "dev"),
        ("d.wav", "test"),
        ("f.wav", "test"),
        ("e.wav", None),
    ]


def test_a_release_folder_reads_its_split_tsvs_alone(tmp_path: Path) -> None:
    from labeling.data.importer import read_source

    out = tmp_path / "cv"
    write_commonvoice(_frame(tmp_path), out)
    (out / "MANIFEST.json").unlink()  # as Mozilla ships it: validated.tsv holds far more than the splits

    assert [i.name for i in read_source(out, "commonvoice").items] == [
        "spk_a.wav",
        "b.wav",
        "c.wav",
        "d.wav",
        "f.wav",
    ]
