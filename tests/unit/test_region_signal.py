"""Signal helpers for long recordings: the energy VAD on real speech, boundary snapping, streamed peaks.

The VAD test lays real FSDD digits end to end with pauses of known length (quiet noise at -60 dBFS),
so the true speech regions are known to the sample.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from analysis.region_agreement import boundary_agreement
from analysis.region_signal import (
    default_threshold_db,
    energy_vad,
    file_energy_vad,
    file_frame_levels_db,
    file_snap_boundary,
    frame_levels_db,
    snap_boundary,
    waveform_peaks,
)
from analysis.regions import RegionError


def digits_with_pauses(fsdd_dir, *, seed: int, n: int = 12) -> tuple[np.ndarray, int, pd.DataFrame]:
    files = sorted((fsdd_dir / "recordings").glob("*.wav"))
    rng = np.random.default_rng(seed)
    sr = 8000
    parts, truth, t = [], [], 0.0
    for path in rng.choice(files, n, replace=False):
        y, file_sr = sf.read(path)
        assert file_sr == sr
        pause = round(rng.uniform(0.4, 1.5) * sr)
        parts += [rng.standard_normal(pause) * 10 ** (-60 / 20), y]
        t += pause / sr
        truth.append((t, t + len(y) / sr))
        t += len(y) / sr
    parts.append(rng.standard_normal(sr // 2) * 10 ** (-60 / 20))
    return np.concatenate(parts), sr, pd.DataFrame(truth, columns=["start", "end"])


@pytest.mark.fsdd
@pytest.mark.parametrize("seed", [0, 1])
def test_energy_vad_finds_each_spoken_digit_between_known_pauses(fsdd_dir, seed):
    y, sr, truth = digits_with_pauses(fsdd_dir, seed=seed)
    found = energy_vad(y, sr)
    assert len(found) == len(truth)
    # Every digit found once, both ends within 200 ms: the clips keep a little of their own silence.
    table = boundary_agreement(truth, found, tolerance=0.2).set_index("kind")
    assert table.loc["region", "f1"] == 1.0
    # Most ends are much closer than that.
    assert np.median(np.abs(found["start"].to_numpy() - truth["start"].to_numpy())) < 0.02
    assert (found["label"] == "speech").all()


@pytest.mark.fsdd
def test_the_file_vad_reads_in_blocks_and_finds_the_same_regions(fsdd_dir, tmp_path):
    y, sr, _truth = digits_with_pauses(fsdd_dir, seed=3)
    path = tmp_path / "long.wav"
    sf.write(path, y, sr, subtype="FLOAT")
    levels, step = file_frame_levels_db(path, block_seconds=1.0)
    np.testing.assert_allclose(levels, frame_levels_db(y, sr), atol=1e-4)
    assert step == pytest.approx(0.01)
    pd.testing.assert_frame_equal(file_energy_vad(path, block_seconds=1.0), energy_vad(y, sr))


def test_vad_bridges_short_pauses_and_drops_blips():
    sr = 16000
    rng = np.random.default_rng(0)

    def tone(seconds: float) -> np.ndarray:
        return 0.3 * np.sin(2 * np.pi * 220 * np.arange(round(seconds * sr)) / sr)

    def quiet(seconds: float) -> np.ndarray:
        return rng.standard_normal(round(seconds * sr)) * 1e-4

    y = np.concatenate([quiet(1.0), tone(0.5), quiet(0.1), tone(0.5), quiet(1.0), tone(0.05), quiet(1.0)])
    found = energy_vad(y, sr, min_silence=0.25, min_speech=0.1)
    assert found[["start", "end"]].to_numpy().ravel().tolist() == pytest.approx([1.0, 2.1], abs=0.011)
    apart = energy_vad(y, sr, min_silence=0.05, min_speech=0.02)
    assert len(apart) == 3
    assert default_threshold_db(frame_levels_db(y, sr)) < -20


def test_snap_moves_to_the_nearest_zero_crossing():
    sr = 16000
    t = np.arange(sr) / sr
    y = np.sin(2 * np.pi * 100 * t + 0.3)  # crossings every 5 ms, shifted by 0.3 rad
    crossings = (np.arange(1, 200) * np.pi - 0.3) / (2 * np.pi * 100)
    for when in (0.0123, 0.2501, 0.7777):
        nearest = crossings[np.argmin(np.abs(crossings - when))]
        snapped = snap_boundary(y, sr, when, window=0.004)
        assert abs(snapped - nearest) <= 1 / sr
    # No crossing within 0.3 ms of 0.0111 s: the boundary stays where it was dragged (on a sample).
    assert snap_boundary(y, sr, 0.0111, window=0.0003) == pytest.approx(0.0111, abs=0.5 / sr)
    with pytest.raises(RegionError, match="outside"):
        snap_boundary(y, sr, 1.5)


def test_snap_finds_the_quiet_gap_between_two_bursts(tmp_path):
    sr = 16000
    rng = np.random.default_rng(1)
    y = rng.standard_normal(sr) * 0.3
    y[8000:8160] *= 0.01  # a 10 ms dip centred on 0.505 s
    snapped = snap_boundary(y, sr, 0.51, window=0.03, to="energy_minimum", frame_ms=5)
    assert snapped == pytest.approx(0.505, abs=0.003)
    path = tmp_path / "bursts.wav"
    sf.write(path, y, sr, subtype="FLOAT")
    from_file = file_snap_boundary(path, 0.51, window=0.03, to="energy_minimum")
    assert from_file == pytest.approx(snapped, abs=1e-12)
    assert file_snap_boundary(path, 0.51, window=0.004) == pytest.approx(
        snap_boundary(y, sr, 0.51, window=0.004)
    )


def test_peaks_equal_min_max_of_the_whole_signal_per_bucket(tmp_path):
    sr = 16000
    rng = np.random.default_rng(2)
    y = (rng.standard_normal((sr * 7 + 123, 2)) * 0.2).astype(np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(path, y, sr, subtype="FLOAT")
    peaks = waveform_peaks(path, samples_per_pixel=256, block_seconds=0.5)
    np.testing.assert_array_equal(peaks.min, [y[i : i + 256].min() for i in range(0, len(y), 256)])
    np.testing.assert_array_equal(peaks.max, [y[i : i + 256].max() for i in range(0, len(y), 256)])
    assert peaks.n_samples == len(y)
    coarse = peaks.coarsen(4)
    np.testing.assert_array_equal(coarse.max, [y[i : i + 1024].max() for i in range(0, len(y), 1024)])
    assert coarse.seconds_per_pixel == pytest.approx(1024 / sr)
    view = peaks.window(2.0, 3.0)
    assert len(view.min) == 63
    np.testing.assert_array_equal(view.max, peaks.max[125:188])
    assert list(peaks.frame().columns) == ["time_s", "min", "max"]


def test_peaks_of_a_long_recording_never_hold_it_whole(tmp_path):
    sr = 16000
    minutes = 10
    path = tmp_path / "long.wav"
    rng = np.random.default_rng(3)
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        for _ in range(minutes):
            f.write((rng.standard_normal(sr * 60) * 0.1).astype(np.float32))
    decoded_bytes = sr * 60 * minutes * 4
    tracemalloc.start()
    try:
        peaks = waveform_peaks(path, samples_per_pixel=512, block_seconds=10.0)
        _current, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(peaks.min) == sr * 60 * minutes // 512
    assert peak_bytes < decoded_bytes / 8
