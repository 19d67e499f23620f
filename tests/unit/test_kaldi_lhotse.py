"""The Kaldi export read the way lhotse reads a Kaldi data directory, untranscribed clips included.

lhotse pulls in PyTorch, so it is not installed for the tests; :func:`lhotse_reads` follows its
reader, ``load_kaldi_data_dir`` in ``lhotse/kaldi.py`` (lhotse-speech/lhotse; the issue was seen
with lhotse 1.33.0), rule for rule:

* every table file (``wav.scp``, ``utt2spk``, ``text``, ``spk2gender``…) is read by
  ``load_kaldi_text_mapping`` as ``dict(line.strip().split(maxsplit=1) for line in f)``: each line
  must be a key and a value, so a ``text`` line holding only an utterance id is a ValueError
  ("dictionary update sequence element #N has length 1");
* a missing optional file reads as "None for every key", but a file that exists is a plain dict: an
  utterance missing from ``text``, or a speaker missing from ``spk2gender``, is a KeyError;
* without ``segments`` each recording is one supervision, ``utt2spk`` must have as many lines as
  ``wav.scp`` (an assertion), and the duration comes from the audio file (``soundfile.info``) when
  there is no ``reco2dur``; ``wav.scp`` paths are opened as written, relative to where it runs.

Kaldi's ``utils/validate_data_dir.sh`` rules are checked beside them: the utterances of ``text`` are
those of ``utt2spk``, and the speakers of ``spk2gender`` those of ``spk2utt``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd
import soundfile as sf

from labeling.data.formats.kaldi import read_kaldi
from labeling.data.formats.writers import write_kaldi
from tests.audio import speechlike, write_wav
from tests.unit.test_formats_writers import _frame


def _mapping(path: Path, *, must_exist: bool = False) -> dict[str, str] | None:
    """lhotse's load_kaldi_text_mapping; None stands for its "None for every key" default."""
    if path.is_file():
        with path.open() as f:
            return dict(line.strip().split(maxsplit=1) for line in f)
    assert not must_exist, f"No such file: {path}"
    return None


def _get(mapping: dict[str, str] | None, key: str) -> str | None:
    return None if mapping is None else mapping[key]


def lhotse_reads(data_dir: Path, run_from: Path) -> list[dict]:
    """The supervisions lhotse's ``load_kaldi_data_dir`` makes of a data directory without
    ``segments``, each with the SHA-256 of its recording's audio."""
    recordings = _mapping(data_dir / "wav.scp", must_exist=True)
    assert recordings is not None
    speakers = _mapping(data_dir / "utt2spk")
    assert speakers is not None
    assert len(speakers) == len(recordings)
    texts = _mapping(data_dir / "text")
    genders = _mapping(data_dir / "spk2gender")
    languages = _mapping(data_dir / "utt2lang")
    out = []
    cwd = Path.cwd()
    os.chdir(run_from)
    try:
        for rec_id, speaker in speakers.items():
            audio = Path(recordings[rec_id])
            duration = sf.info(str(audio)).duration
            out.append(
                {
                    "id": rec_id,
                    "sha256": hashlib.sha256(audio.read_bytes()).hexdigest(),
                    "duration": duration,
                    "text": _get(texts, rec_id),
                    "language": _get(languages, rec_id),
                    "speaker": speaker,
                    "gender": _get(genders, speaker),
                }
            )
    finally:
        os.chdir(cwd)
    return out


def _validates(data_dir: Path) -> None:
    """The parts of Kaldi's validate_data_dir.sh the export can get wrong."""

    def keys(name: str) -> list[str]:
        return [line.split()[0] for line in (data_dir / name).read_text(encoding="utf-8").splitlines()]

    if (data_dir / "text").exists():
        assert keys("text") == keys("utt2spk")
    if (data_dir / "spk2gender").exists():
        assert keys("spk2gender") == keys("spk2utt")


def _project(tmp_path: Path) -> pd.DataFrame:
    """Eight clips in two splits: some transcribed, some not; some speakers with a gender, one
    without, one clip whose speaker is not known."""
    frame = _frame(tmp_path, n=8)
    for i, path in enumerate(frame["audio_path"]):  # audio of its own for each clip
        write_wav(Path(path), speechlike(500 + i))
        frame.loc[i, "sha256"] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    frame["split"] = ["train"] * 5 + ["test"] * 3
    frame["transcript"] = ["one", None, "three  spaced", None, "five", "six", "seven", None]
    frame["metadata"] = [
        {"speaker": "amy", "gender": "f"},
        {"speaker": "amy", "gender": "f"},
        {"speaker": "bob", "gender": "m"},
        {"speaker": "cy"},
        {},
        {"speaker": "dee", "gender": "female"},
        {"speaker": "dee", "gender": "female"},
        {"speaker": "eve", "gender": "f"},
    ]
    return frame


def _transcript(row) -> str | None:
    return row.transcript if isinstance(row.transcript, str) else None


def test_every_clip_of_the_kaldi_export_reads_in_lhotse(tmp_path: Path) -> None:
    frame = _project(tmp_path)
    out = tmp_path / "kaldi"
    write_kaldi(frame, out, copy_audio=True)

    read = []
    for data_dir in sorted((out / "data").iterdir()):
        _validates(data_dir)
        read += [dict(s, folder=data_dir.name) for s in lhotse_reads(data_dir, run_from=out)]

    by_sha = {s["sha256"]: s for s in read}
    assert sorted(by_sha) == sorted(frame["sha256"])  # every clip, once
    for row in frame.itertuples():
        got = by_sha[row.sha256]
        transcript = _transcript(row)
        assert got["text"] == transcript
        assert got["speaker"].startswith(row.metadata.get("speaker", "utt-"))
        assert got["duration"] == sf.info(row.audio_path).duration
        assert got["folder"] == row.split + ("" if transcript else "_untranscribed")
    genders = {s["speaker"]: s["gender"] for s in read}
    # a directory all of whose speakers have one gives the gender; one with an unknown speaker
    # (cy, and an anonymous clip) cannot, since lhotse and Kaldi want spk2gender whole
    assert genders["dee"] == "f"
    assert genders["eve"] == "f"
    assert genders["amy"] is None


def test_untranscribed_directories_import_back_into_their_split(tmp_path: Path) -> None:
    frame = _project(tmp_path)
    out = tmp_path / "kaldi"
    write_kaldi(frame, out, copy_audio=True)

    plan = read_kaldi(out)

    assert plan.problems == []
    got = {
        hashlib.sha256(i.path.read_bytes()).hexdigest(): (i.split, i.transcript, i.name) for i in plan.items
    }
    assert got == {r.sha256: (r.split, _transcript(r), r.original_name) for r in frame.itertuples()}
