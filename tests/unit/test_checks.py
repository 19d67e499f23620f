"""Data checks and their fixes on plain tables and signals; references from scipy and soundfile."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from scipy.stats import median_abs_deviation

from analysis.checks import (
    data_check_findings,
    findings_summary,
    fit_silence,
    modified_z,
    near_duplicate_pairs,
    normalize_loudness,
    pcm_hash,
)
from analysis.quality import audio_quality

SR = 8000


def burst(seed: int, *, lead: float = 0.2, speech: float = 0.4, trail: float = 0.2, amp: float = 0.3):
    rng = np.random.default_rng(seed)
    t = np.arange(int(speech * SR)) / SR
    tone = amp * np.sin(2 * np.pi * rng.uniform(150, 400) * t)
    return np.concatenate([np.zeros(int(lead * SR)), tone, np.zeros(int(trail * SR))])


def clip_table(rows):
    cols = [
        "clip_id",
        "duration_s",
        "sample_rate",
        "rms_dbfs",
        "leading_silence_ms",
        "trailing_silence_ms",
        "clipped_fraction",
    ]
    return pd.DataFrame(rows, columns=cols)


def test_each_check_names_the_clips_that_break_it():
    clips = clip_table(
        [
            (1, 0.82, 8000, -22.0, 100.0, 100.0, 0.0),
            (2, 0.8, 8000, -23.0, 10.0, 900.0, 0.0),  # silences
            (3, 0.78, 8000, -40.0, 100.0, 100.0, 0.0),  # quiet
            (4, 0.8, 16000, -23.0, 100.0, 100.0, 0.02),  # rate, clipping
            (5, 9.0, 8000, -23.0, 100.0, 100.0, 0.0),  # long
            (6, 0.75, 8000, -23.0, 100.0, 100.0, 0.0),
            (7, 0.85, 8000, -23.0, 100.0, 100.0, 0.0),
        ]
    )
    found = data_check_findings(clips, rules={"loudness_dbfs": {"target": -23.0, "tolerance": 3.0}})
    by_check = findings_summary(found).set_index("check")["clip_ids"].to_dict()
    assert by_check["leading_silence"] == [2]
    assert by_check["trailing_silence"] == [2]
    assert by_check["loudness"] == [3]
    assert by_check["clipping"] == [4]
    assert by_check["sample_rate"] == [4]
    assert by_check["duration"] == [5]
    assert by_check["exact_duplicate"] == []


def test_modified_z_uses_the_median_absolute_deviation():
    x = pd.Series([1.0, 1.1, 0.9, 1.05, 0.95, 5.0])
    expected = 0.6745 * (x - np.median(x)) / median_abs_deviation(x)
    assert np.allclose(modified_z(x), expected)


def test_same_audio_in_two_containers_has_one_pcm_hash():
    y = np.round(burst(1) * 32767).astype(np.int16)
    decoded = {}
    for fmt in ("WAV", "FLAC"):
        buf = io.BytesIO()
        sf.write(buf, y, SR, format=fmt, subtype="PCM_16")
        decoded[fmt] = sf.read(io.BytesIO(buf.getvalue()), dtype="float32")[0]
    assert pcm_hash(decoded["WAV"]) == pcm_hash(decoded["FLAC"])
    assert pcm_hash(decoded["WAV"]) != pcm_hash(burst(2))
    clips = clip_table([(i, 0.8, 8000, -23.0, 100.0, 100.0, 0.0) for i in (1, 2, 3)])
    hashes = pd.Series(
        [pcm_hash(decoded["WAV"]), pcm_hash(decoded["FLAC"]), pcm_hash(burst(2))], index=[1, 2, 3]
    )
    found = data_check_findings(clips, pcm_hashes=hashes)
    dupes = found[found["check"] == "exact_duplicate"]
    assert dupes["clip_id"].tolist() == [1, 2]
    assert len(set(dupes["group"])) == 1


def test_a_louder_copy_is_a_near_duplicate_and_other_clips_are_not():
    rng = np.random.default_rng(0)
    feats = pd.DataFrame(
        rng.normal(size=(30, 20)), columns=[f"mfcc_mean_{i:02d}" for i in range(20)], index=range(100, 130)
    )
    copy = feats.loc[[105]].copy()
    copy["mfcc_mean_00"] += 15.0  # gain only moves c0
    copy.index = [200]
    pairs = near_duplicate_pairs(pd.concat([feats, copy]))
    assert pairs[["clip_a", "clip_b"]].values.tolist() == [[105, 200]]


def test_fit_silence_trims_and_pads_to_the_margins_as_the_quality_check_measures():
    for lead, trail in ((0.0, 1.2), (0.9, 0.01)):
        y = burst(3, lead=lead, trail=trail)
        fixed, info = fit_silence(y, SR, min_ms=50, max_ms=500)
        q = audio_quality(fixed, SR)
        assert 50 <= q.leading_silence_ms <= 500
        assert 50 <= q.trailing_silence_ms <= 500
        assert info["leading_ms_before"] == pytest.approx(audio_quality(y, SR).leading_silence_ms)
    # The speech itself is untouched: the loudest stretch survives sample for sample.
    y = burst(4, lead=0.9, trail=0.9)
    fixed, _ = fit_silence(y, SR, min_ms=50, max_ms=500)
    assert np.max(np.abs(fixed)) == np.max(np.abs(y))
    assert len(fixed) < len(y)


def test_normalize_loudness_hits_the_target_unless_the_peak_forbids_it():
    y = burst(5, amp=0.01)
    out, info = normalize_loudness(y, target_dbfs=-23.0)
    assert 20 * np.log10(np.sqrt(np.mean(out**2))) == pytest.approx(-23.0, abs=1e-6)
    assert not info["peak_limited"]
    spiky = y.copy()
    spiky[100] = 0.9
    out, info = normalize_loudness(spiky, target_dbfs=-10.0)
    assert info["peak_limited"]
    assert np.max(np.abs(out)) == pytest.approx(10 ** (-1 / 20))


def test_a_derived_clip_is_not_a_near_duplicate_of_its_original():
    rng = np.random.default_rng(1)
    feats = pd.DataFrame(
        rng.normal(size=(20, 20)), columns=[f"mfcc_mean_{i:02d}" for i in range(20)], index=range(1, 21)
    )
    copy = feats.loc[[5]].set_axis([21])
    clips = clip_table([(i, 0.8, 8000, -23.0, 100.0, 100.0, 0.0) for i in range(1, 22)])
    found = data_check_findings(clips, features=pd.concat([feats, copy]))
    assert found[found["check"] == "near_duplicate"]["clip_id"].tolist() == [5, 21]
    derived = clips.assign(parent_clip_id=[pd.NA] * 20 + [5])
    found = data_check_findings(derived, features=pd.concat([feats, copy]))
    assert found[found["check"] == "near_duplicate"].empty
