"""Imports stay within bounds: zip bombs and impossible names are refused with a message, memory does
not follow what a header claims, and one bad file never aborts the folder."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import func, select

from db.models import Clip
from labeling.data.formats.folder import SourceError
from labeling.data.importer import Limits, import_path
from tests.audio import speechlike, write_wav


def _count(ws) -> int:
    with ws.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(Clip)) or 0)


def _wav_bytes(seed: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, speechlike(seed), 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def test_a_zip_member_with_a_300_character_name_is_refused_with_a_message(sqlite_workspace, tmp_path):
    archive = tmp_path / "long.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.wav", _wav_bytes(1))
        zf.writestr("x" * 296 + ".wav", _wav_bytes(2))
    with pytest.raises(SourceError, match="longer than 255 bytes"):
        import_path(sqlite_workspace, archive, "zipped")
    assert _count(sqlite_workspace) == 0


def test_a_zip_bomb_is_refused_before_it_is_unpacked(sqlite_workspace, tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ok.wav", _wav_bytes(1))
        # 256 MiB of zeros deflate to a few hundred KiB: streamed in, never built in memory here.
        with zf.open("bomb.wav", "w", force_zip64=True) as dst:
            block = bytes(2**20)
            for _ in range(256):
                dst.write(block)
    assert archive.stat().st_size < 2**20
    with pytest.raises(SourceError, match="zip bomb") as refused:
        import_path(sqlite_workspace, archive, "zipped")
    assert "bomb.wav" in str(refused.value)
    assert _count(sqlite_workspace) == 0


def test_audio_that_compresses_like_audio_still_imports_from_a_zip(sqlite_workspace, tmp_path):
    archive = tmp_path / "clips.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i in range(3):
            zf.writestr(f"c{i}.wav", _wav_bytes(i))
        # Ten seconds of digital silence compresses enormously but is under the ratio-free size.
        buf = io.BytesIO()
        sf.write(buf, np.zeros(160_000, dtype=np.float32), 16000, format="WAV", subtype="PCM_16")
        zf.writestr("silence.wav", buf.getvalue())
    report = import_path(sqlite_workspace, archive, "zipped")
    assert report.n_imported == 4


def _lying_flac(path, *, sample_rate: int, channels: int, frames: int) -> None:
    """A real FLAC whose STREAMINFO header claims another rate, channel count and length."""
    buf = io.BytesIO()
    sf.write(buf, speechlike(5), 16000, format="FLAC", subtype="PCM_16")
    data = bytearray(buf.getvalue())
    assert data[:4] == b"fLaC"
    assert data[4] & 0x7F == 0  # STREAMINFO comes first
    packed = int.from_bytes(data[18:26], "big")
    bits = (packed >> 36) & 0x1F  # keep bits per sample
    packed = (sample_rate << 44) | ((channels - 1) << 41) | (bits << 36) | frames
    data[18:26] = packed.to_bytes(8, "big")
    path.write_bytes(bytes(data))


def test_a_lying_flac_header_is_a_per_file_refusal_not_the_end_of_the_folder(workspace, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_wav(src / "good.wav", speechlike(1))
    # 53 KB claiming 4 h x 384 kHz x 8 channels: 177 GB of samples if believed.
    _lying_flac(src / "liar.flac", sample_rate=384_000, channels=8, frames=4 * 3600 * 384_000)
    report = import_path(workspace, src, "liars")
    assert report.n_imported == 1
    reasons = {p.ref: p.reason for p in report.rejected}
    assert set(reasons) == {"liar.flac"}
    assert "GiB" in reasons["liar.flac"]


def test_the_decoded_size_limit_is_checked_from_the_header_and_named(sqlite_workspace, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_wav(src / "short.wav", speechlike(1, seconds=0.5))
    write_wav(src / "long.wav", speechlike(2, seconds=20.0))
    # 20 s at 16 kHz decode to 1.2 MiB of float32 samples; a limit of 1 MiB refuses it alone.
    report = import_path(sqlite_workspace, src, "limits", limits=Limits(max_decoded_bytes=2**20))
    assert report.n_imported == 1
    (problem,) = report.rejected
    assert problem.ref == "long.wav"
    assert "the limit is 1.0 MiB" in problem.reason
    assert "decoded" in problem.reason
