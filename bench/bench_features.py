"""Feature extraction on the 2,000 FSDD clips: real-time factor per core, on two cores, and from cache.

Targets: at least 400× real time on one core, 700× on two, and a cached re-run of 2,000 clips in under a
second. Baselines, measured in the same run on the same clips:

- *one librosa call per feature*: ``librosa.load(sr=8000)`` then ``librosa.feature.mfcc``,
  ``delta``, ``spectral_centroid``, ``spectral_bandwidth``, ``spectral_rolloff``,
  ``zero_crossing_rate``, ``rms`` and ``librosa.yin`` on the same frames, each recomputing its
  own STFT or framing: the same measures, written the obvious way.
- *tutorial MFCC loop*: ``librosa.load(path)`` (resampling to librosa's default 22,050 Hz) then
  ``librosa.feature.mfcc``: fewer features, the loop most projects start from.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from analysis.features import FeatureSettings, feature_frame
from bench._report import machine, median_seconds, write_section

FSDD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fsdd"
SETTINGS = FeatureSettings(sample_rate=8000)


def one_call_per_feature(paths: list[Path]) -> None:
    for path in paths:
        y, sr = librosa.load(path, sr=8000)
        mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20, n_fft=256, hop_length=80, n_mels=40)
        delta = librosa.feature.delta(mfcc, mode="nearest")
        np.concatenate([mfcc.mean(1), mfcc.std(1), delta.mean(1), delta.std(1)])
        for measure in (
            librosa.feature.spectral_centroid,
            librosa.feature.spectral_bandwidth,
            librosa.feature.spectral_rolloff,
        ):
            measure(y=y, sr=sr, n_fft=256, hop_length=80).mean()
        librosa.feature.zero_crossing_rate(y, frame_length=256, hop_length=80).mean()
        librosa.feature.rms(y=y, frame_length=256, hop_length=80).mean()
        np.median(librosa.yin(y, fmin=60, fmax=500, sr=sr, frame_length=512))


def tutorial_mfcc_loop(paths: list[Path]) -> None:
    for path in paths:
        y, sr = librosa.load(path)
        librosa.feature.mfcc(y=y, sr=sr).mean(axis=1)


def main() -> None:
    if not (FSDD / "recordings").is_dir():
        print(f"skipped: no FSDD recordings beside the project ({FSDD})")
        return
    paths = sorted((FSDD / "recordings").glob("*.wav"))
    by_key = {p.stem: p for p in paths}
    audio_s = sum(sf.info(p).duration for p in paths)

    serial = median_seconds(lambda: feature_frame(by_key, settings=SETTINGS, n_jobs=1), repeat=3)
    parallel = median_seconds(lambda: feature_frame(by_key, settings=SETTINGS, n_jobs=2), repeat=3)
    with tempfile.TemporaryDirectory() as cache:
        fresh = feature_frame(by_key, settings=SETTINGS, cache_dir=Path(cache), n_jobs=2)
        cached = median_seconds(
            lambda: feature_frame(by_key, settings=SETTINGS, cache_dir=Path(cache)), repeat=5
        )
        again = feature_frame(by_key, settings=SETTINGS, cache_dir=Path(cache))
        assert again.equals(fresh), "cached features differ from computed ones"
    per_feature = median_seconds(lambda: one_call_per_feature(paths), repeat=3, warmup=0)
    tutorial = median_seconds(lambda: tutorial_mfcc_loop(paths), repeat=3, warmup=0)

    def rt(seconds: float) -> str:
        return f"{audio_s / seconds:,.0f}×"

    def ok(passed: bool) -> str:
        return "met" if passed else "**missed**"

    rows = [
        ("`feature_frame`, 1 process", serial, f"≥ 400× real time: {ok(audio_s / serial >= 400)}"),
        ("`feature_frame`, 2 processes", parallel, f"≥ 700× real time: {ok(audio_s / parallel >= 700)}"),
        ("`feature_frame`, cached re-run", cached, f"< 1 s: {ok(cached < 1)}"),
        ("baseline: one librosa call per feature", per_feature, "same measures"),
        ("baseline: tutorial `librosa.load` + `mfcc` loop", tutorial, "MFCC only, 22.05 kHz"),
    ]
    lines = [
        "## Audio features (`analysis/features.py`)",
        "",
        f"{len(paths):,} FSDD clips, {audio_s:,.0f} s of 8 kHz audio, "
        f"{len(fresh.columns)} features per clip; {machine()}. Median of 3 runs (cached: 5).",
        "",
        "| what | wall time | real-time factor | note |",
        "|---|---:|---:|---|",
        *[f"| {name} | {secs:.3f} s | {rt(secs)} | {note} |" for name, secs, note in rows],
        "",
        f"One process is {per_feature / serial:.1f}× faster than one librosa call per feature and "
        f"{tutorial / serial:.1f}× faster than the tutorial MFCC loop while computing more; two processes "
        f"are {serial / parallel:.2f}× one. The cached re-run reads {len(paths):,} vectors in "
        f"{cached * 1000:.0f} ms.",
    ]
    markdown = "\n".join(lines)
    print(markdown)
    write_section("features", markdown)


if __name__ == "__main__":
    main()
