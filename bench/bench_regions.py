"""Regions on long recordings: agreement at scale, DER against pyannote.metrics, peaks of a long file.

``python -m bench regions`` prints the figures and rewrites the ``regions`` section of BENCHMARKS.md.

Agreement: 1,000 recordings of 10 minutes, 3 annotators, 200 regions each per recording (600,000
regions, two classes), made with a fixed seed: one latent segmentation per recording, each annotator
moving its boundaries (σ = 80 ms), dropping 5% of regions and relabelling 5%. Target: frame Fleiss'
kappa (pooled and per recording), pairwise Cohen's kappa, pairwise boundary F1 (±200 ms) and unitizing
alpha together (``region_agreement``) in ≤ 2 s.

Baselines, measured in the same run on the same regions (a subset where the baseline is slow, with
ours timed on the same subset for the ratio):

- DER and JER: ``pyannote.metrics`` ``DiarizationErrorRate`` and ``JaccardErrorRate`` on
  ``pyannote.core`` annotations (built outside the timing), one call per recording and pair;
- boundaries: ``mir_eval.onset.f_measure`` per recording and pair, onsets and offsets;
- frame kappa: the frames materialised at 10 ms, then ``sklearn.metrics.cohen_kappa_score`` per pair
  and ``statsmodels`` ``fleiss_kappa``.

Peaks: a 30-minute 16 kHz mono 16-bit file. Ours streams it in 10 s blocks; the baseline reads it
whole with ``soundfile.read`` and takes min/max per bucket of the array (what a page does with a
short clip). Memory is the tracemalloc peak of one call.
"""

from __future__ import annotations

import gc
import itertools
import os
import statistics
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from analysis.region_agreement import (
    RegionAgreement,
    diarization_error,
    frame_cohen_kappa,
    frame_fleiss_kappa,
    jaccard_error,
    pairwise_boundary_agreement,
    region_agreement,
    unitizing_alpha,
)
from analysis.region_signal import file_energy_vad, waveform_peaks
from bench._report import machine, write_section

SEED = 0
N_RECORDINGS = 1000
N_RATERS = 3
N_REGIONS = 200
DURATION = 600.0
AGREEMENT_TARGET_S = 2.0
AGREEMENT_RUNS = 5
SUBSET = 25  # recordings for the slow baselines
PEAKS_MINUTES = 30
PEAKS_SR = 16000
SAMPLES_PER_PIXEL = 256


def regions(n_recordings: int = N_RECORDINGS, seed: int = SEED) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    # One latent segmentation per recording: 200 regions in 200 equal slots, a pause in each slot.
    slot = DURATION / N_REGIONS
    base_start = np.arange(N_REGIONS) * slot
    for rec in range(n_recordings):
        start = base_start + rng.uniform(0.0, 0.3, N_REGIONS) * slot
        end = start + rng.uniform(0.4, 0.65, N_REGIONS) * slot
        label = rng.choice(np.array(["A", "B"]), N_REGIONS)
        for r in range(N_RATERS):
            keep = rng.random(N_REGIONS) >= 0.05
            s = np.clip(start + rng.normal(0, 0.08, N_REGIONS), 0, DURATION)
            e = np.clip(end + rng.normal(0, 0.08, N_REGIONS), 0, DURATION)
            lab = np.where(rng.random(N_REGIONS) < 0.05, rng.choice(np.array(["A", "B"]), N_REGIONS), label)
            ok = keep & (e > s)
            parts.append(
                pd.DataFrame(
                    {
                        "recording_id": rec,
                        "annotator": f"annotator_{r}",
                        "start": s[ok],
                        "end": e[ok],
                        "label": lab[ok],
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    result = fn()  # warm-up, and the value to check
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def timed_cpu(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall and median CPU seconds of ``repeat`` runs after a warm-up (CPU time is what other
    work on a shared machine disturbs least)."""
    fn()
    wall, cpu = [], []
    for _ in range(repeat):
        gc.collect()
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def partial_overlap(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The same regions with the third annotator's left out of every other recording, and who
    annotated which: annotators who overlap only partly, as ``annotated`` takes them."""
    part = frame[~((frame["annotator"] == f"annotator_{N_RATERS - 1}") & (frame["recording_id"] % 2 == 0))]
    return part, part[["recording_id", "annotator"]].drop_duplicates()


def peak_memory(fn: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def pyannote_der(frame: pd.DataFrame) -> Callable[[], tuple[float, float]]:
    from pyannote.core import Annotation, Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate, JaccardErrorRate

    def annotation(part: pd.DataFrame) -> Annotation:
        out = Annotation()
        for i, (s, e, lab) in enumerate(zip(part["start"], part["end"], part["label"], strict=True)):
            out[Segment(s, e), i] = lab
        return out

    jobs = []
    for _rec, part in frame.groupby("recording_id"):
        by_rater = {r: annotation(p) for r, p in part.groupby("annotator")}
        for a, b in itertools.combinations(sorted(by_rater), 2):
            jobs.append((by_rater[a], by_rater[b]))
    uem = Timeline([Segment(0, DURATION)])

    def run() -> tuple[float, float]:
        der, jer = DiarizationErrorRate(), JaccardErrorRate()
        for ref, hyp in jobs:
            der(ref, hyp, uem=uem)
            jer(ref, hyp, uem=uem)
        return abs(der), abs(jer)

    return run


def ours_der(frame: pd.DataFrame) -> Callable[[], tuple[float, float]]:
    names = sorted(frame["annotator"].unique())
    pairs = [
        (frame[frame.annotator == a], frame[frame.annotator == b])
        for a, b in itertools.combinations(names, 2)
    ]

    def run() -> tuple[float, float]:
        totals = []
        for ref, hyp in pairs:
            der = diarization_error(ref, hyp, durations=DURATION).loc["total"]
            jer = jaccard_error(ref, hyp, durations=DURATION).loc["total"]
            totals.append((der, jer))
        error = sum(d["missed"] + d["false_alarm"] + d["confusion"] for d, _ in totals)
        total = sum(d["total"] for d, _ in totals)
        return error / total, sum(j["error"] for _, j in totals) / sum(j["speakers"] for _, j in totals)

    return run


def mir_eval_boundaries(frame: pd.DataFrame) -> Callable[[], float]:
    import mir_eval

    jobs = []
    for _rec, part in frame.groupby("recording_id"):
        by_rater = {r: p for r, p in part.groupby("annotator")}
        for a, b in itertools.combinations(sorted(by_rater), 2):
            jobs.append((by_rater[a], by_rater[b]))

    def run() -> float:
        matched = 0
        for ref, est in jobs:
            for col in ("start", "end"):
                _f, p, _r = mir_eval.onset.f_measure(
                    np.sort(ref[col].to_numpy()), np.sort(est[col].to_numpy()), window=0.2
                )
                matched += round(p * len(est))
        return matched

    return run


def materialised_kappas(frame: pd.DataFrame) -> Callable[[], tuple[list[float], float]]:
    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    n_frames = round(DURATION / 0.01)
    centres = (np.arange(n_frames) + 0.5) * 0.01

    def frames_of(part: pd.DataFrame) -> np.ndarray:
        codes = np.zeros(n_frames, dtype=np.int64)
        for s, e, lab in zip(part["start"], part["end"], part["label"], strict=True):
            bit = 1 if lab == "A" else 2
            lo, hi = np.searchsorted(centres, s, "left"), np.searchsorted(centres, e, "left")
            codes[lo:hi] |= bit
        return codes

    def run() -> tuple[list[float], float]:
        columns = {r: [] for r in sorted(frame["annotator"].unique())}
        for _rec, part in frame.groupby("recording_id"):
            for r, p in part.groupby("annotator"):
                columns[r].append(frames_of(p))
        matrix = np.column_stack([np.concatenate(v) for v in columns.values()])
        cohen = [
            cohen_kappa_score(matrix[:, i], matrix[:, j])
            for i, j in itertools.combinations(range(matrix.shape[1]), 2)
        ]
        table, _ = aggregate_raters(matrix)
        return cohen, fleiss_kappa(table)

    return run


def long_file(directory: Path) -> Path:
    path = directory / "thirty-minutes.wav"
    rng = np.random.default_rng(SEED)
    with sf.SoundFile(path, "w", samplerate=PEAKS_SR, channels=1, subtype="PCM_16") as f:
        for minute in range(PEAKS_MINUTES):
            t = np.arange(PEAKS_SR * 60) / PEAKS_SR
            speech = (np.sin(2 * np.pi * 0.5 * t) > 0.2) * np.sin(2 * np.pi * 180 * t) * 0.3
            f.write((speech + rng.standard_normal(len(t)) * 0.003 * (1 + minute % 3)).astype(np.float32))
    return path


def whole_file_peaks(path: Path) -> tuple[np.ndarray, np.ndarray]:
    y, _sr = sf.read(path, dtype="float32")
    pad = (-len(y)) % SAMPLES_PER_PIXEL
    blocks = np.pad(y, (0, pad), mode="edge").reshape(-1, SAMPLES_PER_PIXEL)
    return blocks.min(axis=1), blocks.max(axis=1)


def main() -> None:
    started = time.perf_counter()
    load_start = os.getloadavg()[0]
    frame = regions()
    n_regions = len(frame)

    agree_s, result = timed(lambda: region_agreement(frame, durations=DURATION), repeat=AGREEMENT_RUNS)
    agree_wall_cpu = timed_cpu(lambda: region_agreement(frame, durations=DURATION), repeat=AGREEMENT_RUNS)
    part, annotated = partial_overlap(frame)
    partial_wall, partial_cpu = timed_cpu(
        lambda: region_agreement(part, durations=DURATION, annotated=annotated), repeat=AGREEMENT_RUNS
    )
    parts_s = {
        name: timed(fn, repeat=3)[0]
        for name, fn in {
            "frame Fleiss' kappa": lambda: frame_fleiss_kappa(frame, durations=DURATION),
            "frame Cohen's kappa, 3 pairs": lambda: frame_cohen_kappa(frame, durations=DURATION),
            "boundary F1, 3 pairs": lambda: pairwise_boundary_agreement(frame, tolerance=0.2),
            "unitizing alpha": lambda: unitizing_alpha(frame, durations=DURATION),
        }.items()
    }
    assert isinstance(result, RegionAgreement)
    one_by_one_s = sum(parts_s.values())

    subset = frame[frame["recording_id"] < SUBSET]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base_der_s, base_der = timed(pyannote_der(subset), repeat=3)
    our_der_s, our_der = timed(ours_der(subset), repeat=3)
    assert np.allclose(base_der, our_der, atol=1e-9), (base_der, our_der)
    full_der_s, full_der = timed(ours_der(frame), repeat=1)

    base_bnd_s, base_matched = timed(mir_eval_boundaries(subset), repeat=3)

    def our_boundaries() -> int:
        table = pairwise_boundary_agreement(subset, tolerance=0.2)
        return int(table.loc[table["kind"] != "region", "matched"].sum())

    our_bnd_s, our_matched = timed(our_boundaries, repeat=3)
    assert base_matched == our_matched, (base_matched, our_matched)

    kappa_subset = frame[frame["recording_id"] < SUBSET]
    base_kappa_s, (base_cohen, base_fleiss) = timed(materialised_kappas(kappa_subset), repeat=3)  # type: ignore[misc]

    def our_kappas() -> tuple[list[float], float]:
        cohen = frame_cohen_kappa(kappa_subset, durations=DURATION)["kappa"].tolist()
        return cohen, frame_fleiss_kappa(kappa_subset, durations=DURATION)

    our_kappa_s, (our_cohen, our_fleiss) = timed(our_kappas, repeat=3)  # type: ignore[misc]
    assert np.allclose(base_cohen, our_cohen, atol=1e-9)
    assert abs(base_fleiss - our_fleiss) < 1e-9

    with tempfile.TemporaryDirectory() as tmp:
        path = long_file(Path(tmp))
        peaks_s, peaks = timed(lambda: waveform_peaks(path, samples_per_pixel=SAMPLES_PER_PIXEL), repeat=5)
        base_peaks_s, (lo, hi) = timed(lambda: whole_file_peaks(path), repeat=5)  # type: ignore[misc]
        assert np.array_equal(peaks.min, lo)
        assert np.array_equal(peaks.max, hi)
        peaks_mem = peak_memory(lambda: waveform_peaks(path, samples_per_pixel=SAMPLES_PER_PIXEL))
        base_peaks_mem = peak_memory(lambda: whole_file_peaks(path))
        vad_s, vad = timed(lambda: file_energy_vad(path), repeat=3)
        size_mb = path.stat().st_size / 2**20

    met = "met" if agree_s <= AGREEMENT_TARGET_S else "**missed**"
    mib = 2**20
    lines = [
        "## Regions on long recordings (`bench/bench_regions.py`)",
        "",
        f"{machine()}; bench took {time.perf_counter() - started:.0f} s; load average "
        f"{load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (other work shared the cores).",
        "",
        f"{N_RECORDINGS:,} recordings of {DURATION / 60:.0f} min × {N_RATERS} annotators × ~{N_REGIONS} regions "
        f"({n_regions:,} regions, two classes). Median of {AGREEMENT_RUNS} runs for `region_agreement`, "
        "3 for the rest.",
        "",
        "| what | ours | note |",
        "|---|---:|---|",
        f"| `region_agreement`: frame Fleiss' κ, per-recording κ, pairwise Cohen's κ, boundary F1, uα | **{agree_s:.2f} s** | target ≤ {AGREEMENT_TARGET_S:.0f} s: {met}; CPU {agree_wall_cpu[1]:.2f} s |",
        f"| the same with the third annotator on every other recording only (`annotated`: pairs on shared recordings, κ and uα per recording's annotators) | {partial_wall:.2f} s | CPU {partial_cpu:.2f} s |",
        *[f"| {name} | {seconds:.2f} s | |" for name, seconds in parts_s.items()],
        f"| baseline: the four above one by one (each merges and codes the regions itself) | {one_by_one_s:.2f} s "
        f"| `region_agreement` takes {agree_s / one_by_one_s:.2f} of it |",
        f"| DER + JER, 3 pairs | {full_der_s:.2f} s | DER {full_der[0]:.4f}, JER {full_der[1]:.4f} |",  # type: ignore[index]
        "",
        f"Values: Fleiss' κ {result.fleiss_kappa:.4f}, uα {result.unitizing.alpha:.4f}, mean onset F1 "
        f"{result.boundaries.loc[result.boundaries['kind'] == 'onset', 'f1'].mean():.4f}.",
        "",
        f"Against the reference libraries on the first {SUBSET} recordings (same regions, same results):",
        "",
        "| measure | ours | baseline | baseline time | speed-up | agreement |",
        "|---|---:|---|---:|---:|---|",
        f"| DER + JER, 3 pairs × {SUBSET} recordings | {our_der_s * 1000:.0f} ms | pyannote.metrics 4.2 | {base_der_s * 1000:.0f} ms "
        f"| {base_der_s / our_der_s:.1f}× | DER {our_der[0]:.6f} both, JER within 1e-9 |",  # type: ignore[index]
        f"| onset + offset matches, ±200 ms | {our_bnd_s * 1000:.0f} ms | mir_eval.onset.f_measure per recording | {base_bnd_s * 1000:.0f} ms "
        f"| {base_bnd_s / our_bnd_s:.1f}× | {our_matched:,} matches both |",
        f"| frame Cohen's κ (3 pairs) + Fleiss' κ, 10 ms | {our_kappa_s * 1000:.0f} ms | frames materialised + sklearn + statsmodels | {base_kappa_s * 1000:.0f} ms "
        f"| {base_kappa_s / our_kappa_s:.1f}× | equal within 1e-9 |",
        "",
        f"Peaks of a {PEAKS_MINUTES}-minute {PEAKS_SR // 1000} kHz file ({size_mb:.0f} MiB), {SAMPLES_PER_PIXEL} samples per pixel "
        f"({len(peaks.min):,} buckets; median of 5):",  # type: ignore[attr-defined]
        "",
        "| | time | peak memory (tracemalloc) |",
        "|---|---:|---:|",
        f"| `waveform_peaks` (10 s blocks) | {peaks_s:.2f} s | {peaks_mem / mib:.1f} MiB |",
        f"| baseline: `soundfile.read` whole + min/max | {base_peaks_s:.2f} s | {base_peaks_mem / mib:.1f} MiB |",
        f"| **ours / baseline** | **{peaks_s / base_peaks_s:.2f}** | **{peaks_mem / base_peaks_mem:.3f}** |",
        "",
        f"`file_energy_vad` on the same file, in blocks: {vad_s:.2f} s, {len(vad)} regions proposed.",  # type: ignore[arg-type]
    ]
    markdown = "\n".join(lines)
    print(markdown)
    write_section("regions", markdown)


if __name__ == "__main__":
    main()
