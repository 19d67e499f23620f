"""Common Voice and LibriSpeech: imported, exported, imported again, with every field kept.

Expected values are what the test writes into the source release and tree.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import select

from db.models import Clip, Resolution
from labeling.data.export import export_project
from labeling.data.formats.writers import verify_export
from labeling.data.importer import import_source
from labeling.data.projects import get_project
from tests.audio import speechlike, write_wav

CV_HEADER = (
    "client_id\tpath\tsentence_id\tsentence\tsentence_domain\tup_votes\tdown_votes\tage\tgender\t"
    "accents\tvariant\tlocale\tsegment"
)
CV_ROWS = {
    "train": [
        'aa11\tcommon_voice_en_1.wav\ts1\tSay "yes" twice.\t\t2\t0\ttwenties\tfemale_feminine\t'
        "Scottish English\t\ten\t",
        "aa11\tcommon_voice_en_2.wav\ts2\tNo way.\t\t3\t1\t\t\t\t\ten\t",
    ],
    "dev": ["bb22\tcommon_voice_en_3.wav\ts3\t Leading space\t\t2\t0\tteens\tmale_masculine\t\t\ten\t"],
    "test": ["cc33\tcommon_voice_en_4.wav\ts4\tLast.\t\t5\t0\t\t\t\t\ten\tBenchmark"],
}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def state(ws, project: str) -> dict[str, tuple]:
    """sha256 → (transcript, split, metadata) as stored."""
    with ws.db.read() as s:
        pid = get_project(s, project).id
        rows = s.execute(
            select(Clip.sha256, Resolution.transcript, Clip.split, Clip.meta)
            .outerjoin(Resolution, Resolution.clip_id == Clip.id)
            .where(Clip.project_id == pid)
        ).all()
    return {sha: (text, split, dict(meta)) for sha, text, split, meta in rows}


def test_common_voice_imported_exported_and_imported_again_keeps_every_field(workspace, tmp_path):
    release = tmp_path / "cv-corpus" / "en"
    for n in range(1, 5):
        write_wav(release / "clips" / f"common_voice_en_{n}.wav", speechlike(300 + n))
    for part, rows in CV_ROWS.items():
        (release / f"{part}.tsv").write_text("\n".join([CV_HEADER, *rows]) + "\n", encoding="utf-8")
    first = import_source(workspace, release, "cv")
    assert first.source_format == "commonvoice"
    assert first.n_imported == 4
    before = state(workspace, "cv")
    assert before[_sha(release / "clips" / "common_voice_en_1.wav")] == (
        'Say "yes" twice.',
        "train",
        {
            "speaker": "aa11",
            "sentence_id": "s1",
            "up_votes": "2",
            "down_votes": "0",
            "age": "twenties",
            "gender": "female_feminine",
            "accents": "Scottish English",
            "locale": "en",
        },
    )

    out = tmp_path / "export"
    report = export_project(workspace, "cv", fmt="commonvoice", out=out)
    assert report.n_clips == 4
    assert verify_export(out) == []
    again = import_source(workspace, out, "cv-again")

    assert again.source_format == "commonvoice"
    assert again.rejected == []
    assert state(workspace, "cv-again") == before


def test_librispeech_imported_exported_and_imported_again_keeps_every_field(workspace, tmp_path):
    corpus = tmp_path / "LibriSpeech"
    (corpus / "SPEAKERS.TXT").parent.mkdir(parents=True)
    (corpus / "SPEAKERS.TXT").write_text(
        "; ID |SEX| SUBSET | MINUTES | NAME\n19 | F | train-clean-100 | 25.19 | Kara Shallenberg\n"
        "84 | M | dev-clean | 8.02 | Christie Nowak\n",
        encoding="utf-8",
    )
    lines = {
        ("train-clean-100", "19", "198"): ["NORTHANGER ABBEY", "CHAPTER ONE"],
        ("dev-clean", "84", "121123"): ["GO DO YOU HEAR"],
    }
    seed = 400
    for (subset, speaker, chapter), texts in lines.items():
        folder = corpus / subset / speaker / chapter
        rows = []
        for n, text in enumerate(texts):
            utt = f"{speaker}-{chapter}-{n:04d}"
            seed += 1
            write_wav(folder / f"{utt}.flac", speechlike(seed))
            rows.append(f"{utt} {text}\n")
        (folder / f"{speaker}-{chapter}.trans.txt").write_text("".join(rows), encoding="utf-8")
    first = import_source(workspace, corpus, "ls")
    assert first.source_format == "librispeech"
    assert first.n_imported == 3
    before = state(workspace, "ls")
    flac = corpus / "train-clean-100" / "19" / "198" / "19-198-0001.flac"
    assert before[_sha(flac)] == (
        "CHAPTER ONE",
        "train",
        {"speaker": "19", "chapter": "198", "subset": "train-clean-100", "gender": "f"},
    )

    out = tmp_path / "export"
    export_project(workspace, "ls", fmt="librispeech", out=out)
    assert verify_export(out) == []
    assert _sha(out / "train-clean-100" / "19" / "198" / "19-198-0001.flac") == _sha(flac)  # FLAC as it was
    again = import_source(workspace, out, "ls-again")

    assert again.source_format == "librispeech"
    assert again.rejected == []
    assert state(workspace, "ls-again") == before
