"""The waveform the region editor draws: :func:`recording_peaks`, computed once per recording.

A long recording is never sent to the browser whole, nor read whole:
:func:`analysis.region_signal.waveform_peaks` streams it in blocks into min/max buckets, and the
result is kept in the cache folder under the recording's storage key. Keys are content hashes, so a
cached file never goes stale; the bucket size is part of the file name, so a change of
:data:`MAX_BUCKETS` computes afresh instead of reading old peaks.

The same read gives the loudness track the editor snaps edges on (one byte per 5 ms hop, see
:func:`analysis.region_signal.loudness_track`), kept beside the peaks as raw bytes
(:func:`loudness_file`): the browser fetches the few bytes around an edge by range requests, so
snapping is as fine on a three-hour recording as on a three-minute one.
"""

from __future__ import annotations

import io
import math
import os
import re
from pathlib import Path

import numpy as np
import soundfile as sf

from analysis.region_signal import Peaks, waveform_peaks

#: About this many buckets per recording: fine enough to zoom into, small enough to send on every rerun.
MAX_BUCKETS = 20_000
#: Never finer than this many samples per bucket (a short recording needs no more).
MIN_SAMPLES_PER_BUCKET = 32


def samples_per_bucket(n_samples: int) -> int:
    """The bucket size for a recording of ``n_samples``: at most :data:`MAX_BUCKETS` buckets."""
    return max(MIN_SAMPLES_PER_BUCKET, math.ceil(n_samples / MAX_BUCKETS))


def peaks_file(cache_dir: Path, storage_key: str, samples_per_pixel: int) -> Path:
    """Where the peaks of the recording stored under ``storage_key`` are kept."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", storage_key)
    return Path(cache_dir) / "peaks" / f"{safe}.{samples_per_pixel}.npz"


def loudness_file(cache_dir: Path, storage_key: str) -> Path:
    """Where the loudness track of the recording stored under ``storage_key`` is kept (one byte a hop)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", storage_key)
    return Path(cache_dir) / "peaks" / f"{safe}.loudness-5ms.u8"


def _write_aside(path: Path, data: bytes) -> None:
    part = path.with_name(f"{path.name}.{os.getpid()}.part")
    part.write_bytes(data)  # written aside and renamed: a reader never sees half a file
    part.replace(path)


def recording_peaks(audio_path: Path, *, storage_key: str, cache_dir: Path) -> Peaks:
    """The min/max peaks of a recording's audio, from the cache or computed and cached, with its
    loudness track written to :func:`loudness_file` (the returned peaks carry it when computed).

    Raises
    ------
    OSError, soundfile.LibsndfileError
        When the audio cannot be read (the page says the audio is missing before it asks).
    """
    spp = samples_per_bucket(sf.info(str(audio_path)).frames)
    cached = peaks_file(cache_dir, storage_key, spp)
    loud = loudness_file(cache_dir, storage_key)
    if cached.is_file() and loud.is_file():
        with np.load(cached) as z:
            return Peaks(int(z["sr"]), spp, int(z["n_samples"]), z["min"], z["max"])
    peaks = waveform_peaks(audio_path, samples_per_pixel=spp, loudness=True)
    cached.parent.mkdir(parents=True, exist_ok=True)
    assert peaks.loudness is not None
    _write_aside(loud, peaks.loudness.tobytes())
    buffer = io.BytesIO()
    np.savez(buffer, sr=peaks.sr, n_samples=peaks.n_samples, min=peaks.min, max=peaks.max)
    _write_aside(cached, buffer.getvalue())
    return peaks
