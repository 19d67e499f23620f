"""Data checks on real FSDD recordings and on copies made faulty on purpose; fixes make new clips."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly
from sqlalchemy import select

from analysis.quality import audio_quality
from db.models import AuditEvent, Clip, Resolution
from labeling.data.checks import CheckError, fix_clips, run_data_checks
from labeling.data.conventions import save_convention
from labeling.data.importer import import_path
from labeling.data.versions import create_version, version_frame

pytestmark = pytest.mark.fsdd
PATTERN = r"(?P<label>\d)_(?P<speaker>[a-z]+)_(?P<index>[a-z0-9]+)\.(wav|flac)"
SOURCES = [f"{d}_jackson_{i}.wav" for d in range(4) for i in range(10, 13)]


@pytest.fixture
def faulty(sqlite_workspace, fsdd_dir, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        (src / name).write_bytes((fsdd_dir / "recordings" / name).read_bytes())
    y, sr = sf.read(fsdd_dir / "recordings" / "5_jackson_20.wav", dtype="int16")
    x = y.astype(np.float64) / 32768
    # Long trailing silence and a very quiet take of the same digit by the same speaker.
    sf.write(src / "5_jackson_long.wav", np.concatenate([x, np.zeros(int(1.5 * sr))]), sr, subtype="PCM_16")
    sf.write(src / "5_jackson_quiet.wav", 0.03 * x, sr, subtype="PCM_16")
    # The same samples in another container: a byte hash cannot tell, the decoded audio can.
    z, _ = sf.read(fsdd_dir / "recordings" / "0_jackson_10.wav", dtype="int16")
    sf.write(src / "0_jackson_copy.flac", z, sr, subtype="PCM_16")
    # A louder copy of a recording: a near duplicate.
    w, _ = sf.read(fsdd_dir / "recordings" / "1_jackson_11.wav", dtype="float64")
    sf.write(src / "1_jackson_louder.wav", w * min(1.6, 0.95 / np.max(np.abs(w))), sr, subtype="PCM_16")
    # Another sample rate.
    sf.write(src / "2_jackson_wide.wav", resample_poly(x, 2, 1), 2 * sr, subtype="PCM_16")
    ws = sqlite_workspace
    import_path(ws, src, "fsdd", pattern=PATTERN)
    with ws.db.write() as s:
        pid = s.scalar(select(Clip.project_id).limit(1))
        save_convention(
            s,
            pid,
            text="Say the digit.",
            rules={
                "silence_margin_ms": {"min": 0, "max": 400},
                "loudness_dbfs": {"target": -25, "tolerance": 8},
            },
        )
        ids = {c.original_name: c.id for c in s.scalars(select(Clip))}
    return ws, ids


def test_checks_find_the_planted_problems(faulty):
    ws, ids = faulty
    report = run_data_checks(ws, "fsdd")
    assert report.rules_source.startswith("convention")
    found = report.summary.set_index("check")["clip_ids"].to_dict()
    assert ids["5_jackson_long.wav"] in found["trailing_silence"]
    assert ids["5_jackson_quiet.wav"] in found["loudness"]
    assert found["sample_rate"] == [ids["2_jackson_wide.wav"]]
    assert found["exact_duplicate"] == sorted([ids["0_jackson_10.wav"], ids["0_jackson_copy.flac"]])
    assert found["near_duplicate"] == sorted([ids["1_jackson_11.wav"], ids["1_jackson_louder.wav"]])
    # Real recordings of one speaker are not near duplicates of each other.
    real = {ids[n] for n in SOURCES} - {ids["1_jackson_11.wav"], ids["0_jackson_10.wav"]}
    assert not real & set(found["near_duplicate"])


def test_fixes_make_new_clips_that_pass_and_replace_the_originals(faulty):
    ws, ids = faulty
    long_id, quiet_id = ids["5_jackson_long.wav"], ids["5_jackson_quiet.wav"]
    with ws.db.read() as s:
        original_key = s.get(Clip, long_id).storage_key
    original_bytes = ws.store.path(original_key).read_bytes()
    report = fix_clips(ws, "fsdd", [long_id, quiet_id])
    assert set(report.fixed) == {long_id, quiet_id}
    with ws.db.read() as s:
        for old, new in report.fixed.items():
            clip, parent = s.get(Clip, new), s.get(Clip, old)
            assert clip.parent_clip_id == old
            assert clip.derivation["kind"] == "fix"
            assert parent.deleted_at is not None
            # The final label moved to the copy with the rest of the clip's workflow.
            assert s.get(Resolution, new).label == "5"
            assert s.get(Resolution, old) is None
            assert clip.split == parent.split
            y, sr = sf.read(ws.store.path(clip.storage_key))
            q = audio_quality(y, sr)
            assert q.trailing_silence_ms <= 400
            assert abs(q.rms_dbfs - -25) <= 8
        superseded = s.scalars(
            select(AuditEvent.new).where(AuditEvent.entity == "clip", AuditEvent.entity_id == str(long_id))
        ).all()
    assert any(e and e.get("superseded_by") == report.fixed[long_id] for e in superseded)
    assert ws.store.path(original_key).read_bytes() == original_bytes  # the original is never changed
    after = run_data_checks(ws, "fsdd", near_duplicates=False).summary.set_index("check")["clip_ids"]
    assert not set(report.fixed.values()) & set(after["trailing_silence"] + after["loudness"])
    with ws.db.write() as s:
        v = create_version(s, "fsdd", name="fixed")
        held = set(version_frame(s, v.id)["clip_id"])
    assert set(report.fixed.values()) <= held
    assert not set(report.fixed) & held


def test_a_clip_within_the_rules_is_left_alone_and_unknown_clips_are_refused(faulty):
    ws, ids = faulty
    report = fix_clips(ws, "fsdd", [ids["3_jackson_10.wav"]], actions=["loudness"])
    assert report.unchanged == [ids["3_jackson_10.wav"]]
    assert report.fixed == {}
    with pytest.raises(CheckError, match="not live clips"):
        fix_clips(ws, "fsdd", [999_999])
    with pytest.raises(CheckError, match="fixes are"):
        fix_clips(ws, "fsdd", [ids["3_jackson_10.wav"]], actions=["denoise"])
