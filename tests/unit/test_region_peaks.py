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
