"""The region editor's waveform: peaks match a plain min/max over the samples and are computed once."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import labeling.data.region_peaks as region_peaks
from labeling.data.region_peaks import MAX_BUCKETS, peaks_file, recording_peaks, samples_per_bucket
from tests.audio import write_wav


def test_peaks_are_the_min_and_max_of_each_bucket_and_are_read_back_from_the_cache(tmp_path, monkeypatch):
    rng = np.random.default_rng(7)
    path = write_wav(tmp_path / "long.wav", (0.5 * rng.standard_normal(16000 * 45)).astype(np.float32))
    samples, _ = sf.read(str(path), dtype="float32")
    spp = samples_per_bucket(len(samples))
    assert len(samples) / spp <= MAX_BUCKETS
    padded = np.pad(samples, (0, -len(samples) % spp), constant_values=np.nan)
    expected_min = np.nanmin(padded.reshape(-1, spp), axis=1)
    expected_max = np.nanmax(padded.reshape(-1, spp), axis=1)

    first = recording_peaks(path, storage_key="ab/long.wav", cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(first.min, expected_min)
    np.testing.assert_array_equal(first.max, expected_max)
    assert peaks_file(tmp_path / "cache", "ab/long.wav", spp).is_file()

    def never(*args, **kwargs):
        raise AssertionError("the peaks were computed again")

    monkeypatch.setattr(region_peaks, "waveform_peaks", never)
    again = recording_peaks(path, storage_key="ab/long.wav", cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(again.min, first.min)
    np.testing.assert_array_equal(again.max, first.max)
    assert (again.sr, again.n_samples, again.seconds_per_pixel) == (16000, len(samples), spp / 16000)


@pytest.mark.parametrize(("n", "spp"), [(100, 32), (16000 * 60 * 30, 1440)])
def test_a_long_recording_gets_coarser_buckets(n, spp):
    assert samples_per_bucket(n) == spp


def test_the_loudness_track_is_the_peak_to_peak_over_each_hop_and_half_a_hop_either_side(tmp_path):
    rng = np.random.default_rng(11)
    y = (0.3 * rng.standard_normal(16000 * 3 + 37)).astype(np.float32)
    y[16000:24000] = 0.0  # half a second of digital silence from 1 s
    path = write_wav(tmp_path / "rec.wav", y)
    samples, _ = sf.read(str(path), dtype="float32")
    recording_peaks(path, storage_key="cd/rec.wav", cache_dir=tmp_path / "cache")
    track = np.frombuffer(region_peaks.loudness_file(tmp_path / "cache", "cd/rec.wav").read_bytes(), np.uint8)
    hop = 80  # 5 ms at 16 kHz
    assert len(track) == -(-len(samples) // hop)
    for i in (0, 1, 7, 200, 250, 300, len(track) - 1):
        part = samples[max(0, i * hop - hop // 2) : min(len(samples), (i + 1) * hop + hop // 2)]
        assert track[i] == round((part.max() - part.min()) / 2 * 255)
    # Inside the silence (the window wholly in it) it is 0; 5 ms before its start it is not.
    assert track[201:299].max() == 0
    assert track[199] > 0


def test_file_bytes_read_just_the_ranges_asked_for(tmp_path):
    from labeling.data.region_audio import FileBytes

    path = tmp_path / "blob.bin"
    data = bytes(range(256)) * 10
    path.write_bytes(data)
    blob = FileBytes(path)
    assert len(blob) == len(data)
    assert blob[100:200] == data[100:200]
    assert blob[-5:] == data[-5:]
    assert blob[2555] == data[2555]
    assert blob.encode() == data
