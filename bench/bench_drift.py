"""Drift detection on FSDD: false alarms without drift, detection of real shifts, and speed at scale.

Targets (all on the shared FSDD speakers with fixed seeds, references of 1,200 clips):

- false alarms of :func:`analysis.drift.drift_report` at most 5% (at most 23 in 500) over at least 500
  identically distributed batches (fresh random reference/batch splits) at 50 and at 200 clips, and no
  fixed reference above 10%; a reference compared with itself never drifts;
- detection at least 95% at 50 clips for a speaker left out of the reference, pitch +-2 semitones,
  white, babble and car noise at 10 dB SNR, a telephone channel (300-3,400 Hz and mu-law) and a -10 dB
  gain; at 200 clips also a 30% mix of the left-out speaker and pitch +1 semitone, and at least 75% for
  a label prior shift (digits 0-2 three times as common);
- concept drift with 50 labels: at most 5% false alarms, at least 95% detection of the left-out speaker;
- the resampling control: the batch's clips resampled 8 -> 16 -> 8 kHz (soxr) and written back as
  16-bit PCM, which changes nothing audible, drifts no more often than the no-drift batches (at most
  5%); the plain WADA estimator on the same batches is reported beside it;
- a 10,000-clip batch against a 100,000-clip reference in at most 2 s once measures are computed;
- the check of a 50-clip batch in at most 0.5 s of CPU (``time.process_time``) against the cached
  reference summary, and per-call CPU and wall for 50 and 1,000 clips with and without the cache;
- median pitch at most 1.5 ms per 1 s 8 kHz clip, against the full-rate YIN it replaces (timed in the
  same run), with the per-clip difference between them and each one's error against librosa's pyin.

Baseline, on the very same batches: Evidently's documented default drift rule (per column: for a
reference of more than 1,000 rows the Wasserstein distance over the reference std for numeric columns
and the Jensen-Shannon distance for categorical ones, drift at >= 0.1; for smaller references KS,
chi-squared or a two-proportion z-test at p < 0.05; dataset drift when >= 50% of columns drift), in
both of its variants, on the same columns.

Measures of every clip under every condition are cached in ``bench/.cache/drift`` (first run a few
minutes on two cores; later runs only do the statistics), and so are pyin's pitches. Run as
``python -m bench.bench_drift``.

``python -m bench.bench_drift --app`` times the check as the app runs it instead (its own section):
``run_drift_check`` on batches of 50 and 1,000 FSDD clips against a 1,000-clip reference, with the
reference's stored summary removed before each call (cold: the baseline, what every check did before
the summary was kept) and read back (warm), target ≤ 0.5 s CPU for 50 clips warm; and the
``earmark drift --json`` command in a fresh interpreter.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import soxr
from scipy import stats
from scipy.spatial.distance import jensenshannon
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold

from analysis import augment
from analysis.drift import (
    MEASURES,
    clip_measures,
    concept_drift,
    digital_silence,
    drift_report,
    reference_summary,
    speech_snr,
    wada_snr,
)
from analysis.features import FeatureSettings, decode, extract_features
from analysis.model import DEFAULT_PARAMS, build_pipeline
from analysis.pitch import median_pitch, median_pitch_full_rate, yin_frames
from analysis.quality import audio_quality
from bench._report import machine, median_seconds, write_section

FSDD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fsdd"
CACHE = Path(__file__).resolve().parent / ".cache" / "drift"
SETTINGS = FeatureSettings(sample_rate=8000)
N_REFERENCE = 1200
N_NULL = 500  # identically distributed batches per size
N_SHIFT = 100  # batches per shift and size
N_FIXED_REFERENCES = 10
N_PER_FIXED = 100
CHUNK = 50
LOW_CONFIDENCE = 0.6
CONDITIONS = [
    "clean",
    "pitch_up2",
    "pitch_down2",
    "pitch_up1",
    "white10",
    "babble10",
    "car10",
    "telephone",
    "gain_minus10",
    "resampled",
]
INPUT_COLUMNS = [n for n, s in MEASURES.items() if s.family == "input"]
OUTPUT_COLUMNS = ["predicted", "confidence", "low_confidence"]


# ---------------------------------------------------------------------------------------------------
# Measures of every clip under every condition (cached)


def _seed(name: str, condition: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{name}/{condition}".encode()).digest()[:4], "little")


def _transform(
    y: np.ndarray, sr: int, condition: str, babble_sources: list[np.ndarray], seed: int
) -> np.ndarray:
    y = y.astype(np.float64)
    if condition == "clean":
        return y
    if condition.startswith("pitch_"):
        steps = {"pitch_up2": 2.0, "pitch_down2": -2.0, "pitch_up1": 1.0}[condition]
        return augment.pitch_shift(y, sr=sr, n_steps=steps)
    if condition == "white10":
        noise = np.random.default_rng(seed).standard_normal(len(y))
        return augment.mix_at_snr(y, noise, snr_db=10.0, random_state=seed)
    if condition == "babble10":
        noise = augment.babble_noise(babble_sources, n_samples=len(y), random_state=seed)
        return augment.mix_at_snr(y, noise, snr_db=10.0, random_state=seed)
    if condition == "car10":
        noise = augment.car_noise(len(y), sr=sr, random_state=seed)
        return augment.mix_at_snr(y, noise, snr_db=10.0, random_state=seed)
    if condition == "telephone":
        return augment.telephone_channel(y, sr=sr)
    if condition == "gain_minus10":
        return y * 10 ** (-10 / 20)
    if condition == "resampled":  # 8 -> 16 -> 8 kHz and back to 16-bit PCM: nothing audible changes
        back = soxr.resample(soxr.resample(y, sr, 2 * sr), 2 * sr, sr)
        return np.round(np.clip(back, -1.0, 1.0) * 32767) / 32767
    raise ValueError(condition)


def _measure_chunk(args: tuple[list[str], str, dict[str, list[str]]]) -> list[dict[str, float]]:
    paths, condition, babble_paths = args
    # librosa's phase vocoder warns that its default FFT is longer than some half-second digits.
    warnings.filterwarnings("ignore", message="n_fft=", category=UserWarning)
    sources = {spk: [decode(p)[0].astype(np.float64) for p in ps] for spk, ps in babble_paths.items()}
    rows = []
    for path in paths:
        name = Path(path).stem
        speaker = name.split("_")[1]
        y, sr = decode(path)
        others = [c for spk, clips in sources.items() if spk != speaker for c in clips]
        x = _transform(y, sr, condition, others, _seed(name, condition))
        x = np.clip(x, -1.0, 1.0)
        q = audio_quality(x, sr)
        m = clip_measures(x, sr)
        feats = extract_features(x.astype(np.float32), sr, settings=SETTINGS)
        rows.append(
            {
                "clip": name,
                "duration_s": len(x) / sr,
                "rms_dbfs": q.rms_dbfs,
                "peak_dbfs": q.peak_dbfs,
                "leading_silence_ms": q.leading_silence_ms,
                "trailing_silence_ms": q.trailing_silence_ms,
                "clipped_fraction": q.clipped_fraction,
                "snr_db": m["wada_snr_db"],
                "wada_at_end": m["wada_at_end"],
                "snr_plain_db": wada_snr(x)[0],
                "pitch_hz": m["pitch_hz"],
                "centroid_hz": m["centroid_hz"],
                "low_band_db": m["low_band_db"],
                "speaking_rate": m["speaking_rate"],
                **{f"f:{k}": v for k, v in feats.items()},
            }
        )
    return rows


def measures(paths: list[Path]) -> tuple[str, dict[str, pd.DataFrame]]:
    """Measures and model features of every clip under every condition, from cache when possible, and
    the cache key (the clips, the feature settings and the source of the measuring code)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    listing = "\n".join(f"{p.name}:{p.stat().st_size}" for p in paths)
    measuring = (
        clip_measures, speech_snr, digital_silence, wada_snr, median_pitch, yin_frames, audio_quality, _transform
    )  # fmt: skip
    code = "".join(inspect.getsource(f) for f in measuring)
    key = hashlib.sha256(f"{code}\n{SETTINGS.fingerprint()}\n{listing}".encode()).hexdigest()[:12]
    rng = np.random.default_rng(0)
    by_speaker: dict[str, list[str]] = {}
    for p in paths:
        by_speaker.setdefault(p.stem.split("_")[1], []).append(str(p))
    babble = {spk: list(rng.choice(ps, 12, replace=False)) for spk, ps in sorted(by_speaker.items())}
    out = {}
    for condition in CONDITIONS:
        file = CACHE / f"{condition}-{key}.parquet"
        if file.exists():
            out[condition] = pd.read_parquet(file)
            continue
        start = time.perf_counter()
        chunks = [[str(p) for p in paths[i : i + 100]] for i in range(0, len(paths), 100)]
        with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
            rows = [
                r for part in pool.map(_measure_chunk, [(c, condition, babble) for c in chunks]) for r in part
            ]
        frame = pd.DataFrame(rows).set_index("clip").loc[[p.stem for p in paths]]
        frame.to_parquet(file)
        out[condition] = frame
        print(
            f"  measured {condition}: {len(frame)} clips in {time.perf_counter() - start:.0f} s", flush=True
        )
    return key, out


# ---------------------------------------------------------------------------------------------------
# The model's outputs: out-of-fold, so that the reference's correctness is honest


def _outputs(model, X: pd.DataFrame, digits: np.ndarray) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    proba = model.predict_proba(X)
    classes = model.classes_
    predicted = classes[np.argmax(proba, axis=1)]
    confidence = proba.max(axis=1)
    return pd.DataFrame(
        {
            "predicted": predicted.astype(str),
            "confidence": confidence,
            "low_confidence": confidence < LOW_CONFIDENCE,
            "correct": predicted == digits,
        },
        index=X.index,
    )


def model_outputs(
    data: dict[str, pd.DataFrame], digits: pd.Series, speakers: pd.Series
) -> dict[str, pd.DataFrame]:
    """Outputs per condition of a model trained on all four speakers (5-fold, out of fold), and for each
    speaker ``s`` outputs ``loso:s`` of a model that never heard ``s`` (out of fold on the others)."""
    feats = {c: f[[col for col in f.columns if col.startswith("f:")]] for c, f in data.items()}
    y = digits.to_numpy()
    base = clone(build_pipeline(**DEFAULT_PARAMS))
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    parts: dict[str, list[pd.DataFrame]] = {c: [] for c in CONDITIONS}
    for train, test in folds.split(feats["clean"], y):
        model = clone(base).fit(feats["clean"].iloc[train], y[train])
        for c in CONDITIONS:
            parts[c].append(_outputs(model, feats[c].iloc[test], y[test]))
    out = {c: pd.concat(p).loc[feats["clean"].index] for c, p in parts.items()}
    for spk in sorted(speakers.unique()):
        inside = (speakers != spk).to_numpy()
        X_in, y_in = feats["clean"][inside], y[inside]
        oof = []
        for train, test in folds.split(X_in, y_in):
            model = clone(base).fit(X_in.iloc[train], y_in[train])
            oof.append(_outputs(model, X_in.iloc[test], y_in[test]))
        model = clone(base).fit(X_in, y_in)
        oof.append(_outputs(model, feats["clean"][~inside], y[~inside]))
        out[f"loso:{spk}"] = pd.concat(oof).loc[feats["clean"].index]
    return out


# ---------------------------------------------------------------------------------------------------
# Evidently's default rule


def evidently_rule(reference: pd.DataFrame, batch: pd.DataFrame, columns: list[str], *, large: bool) -> bool:
    """Evidently's documented default: per-column drift, dataset drift when >= 50% of columns drift.

    ``large`` (a reference of more than 1,000 rows): Wasserstein distance / reference std >= 0.1 for
    numeric columns with more than 5 distinct values, Jensen-Shannon distance >= 0.1 otherwise. Else
    KS (numeric), chi-squared (categorical) or a two-proportion z-test (binary) at p < 0.05.
    """
    drifted = 0
    for col in columns:
        ref, bat = reference[col], batch[col]
        numeric = pd.api.types.is_numeric_dtype(ref) and not pd.api.types.is_bool_dtype(ref)
        n_unique = ref.nunique()
        if numeric and n_unique > 5:
            r, b = ref.dropna().to_numpy(float), bat.dropna().to_numpy(float)
            if large:
                std = r.std() or 1e-3
                hit = stats.wasserstein_distance(r, b) / std >= 0.1
            else:
                hit = stats.ks_2samp(r, b).pvalue < 0.05
        else:
            cats = sorted(set(ref.astype(str)) | set(bat.astype(str)))
            rc = ref.astype(str).value_counts().reindex(cats, fill_value=0).to_numpy(float)
            bc = bat.astype(str).value_counts().reindex(cats, fill_value=0).to_numpy(float)
            if large:
                hit = jensenshannon(rc / rc.sum(), bc / bc.sum()) >= 0.1
            elif len(cats) <= 2:
                p1, p2 = rc[0] / rc.sum(), bc[0] / bc.sum()
                pooled = (rc[0] + bc[0]) / (rc.sum() + bc.sum())
                se = math.sqrt(pooled * (1 - pooled) * (1 / rc.sum() + 1 / bc.sum()))
                hit = se > 0 and 2 * stats.norm.sf(abs(p1 - p2) / se) < 0.05
            else:
                keep = (rc + bc) > 0
                hit = stats.chi2_contingency(np.vstack([rc[keep], bc[keep]])).pvalue < 0.05
        drifted += bool(hit)
    return drifted >= 0.5 * len(columns)


# ---------------------------------------------------------------------------------------------------
# Scenarios


@dataclass
class Tally:
    ours: int = 0
    concept: int = 0
    evidently_large: int = 0
    evidently_small: int = 0
    n: int = 0
    n_concept: int = 0
    channel: int = 0
    pitch: int = 0
    plain: int = 0  # drifted with the plain WADA SNR in place of speech_snr
    led_by: Counter[str] = field(default_factory=Counter)
    loudness_shift: list[float] = field(default_factory=list)  # Hodges-Lehmann, dB
    loudness_medians: list[float] = field(default_factory=list)  # difference of medians, dB
    example: str = ""

    def leader(self) -> str:
        if not self.led_by:
            return "—"
        name, count = self.led_by.most_common(1)[0]
        label = MEASURES[name].label if name in MEASURES else "MMD only"
        return f"{label} ({count}/{self.ours})"

    def add(self, other: Tally) -> None:
        for name in (
            "ours",
            "concept",
            "evidently_large",
            "evidently_small",
            "n",
            "n_concept",
            "channel",
            "pitch",
            "plain",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.led_by.update(other.led_by)
        self.loudness_shift += other.loudness_shift
        self.loudness_medians += other.loudness_medians
        self.example = self.example or other.example

    def rate(self, field: str) -> float:
        denom = self.n_concept if field == "concept" else self.n
        return getattr(self, field) / denom if denom else math.nan


COLUMNS = INPUT_COLUMNS + OUTPUT_COLUMNS


def _frame(
    data: dict[str, pd.DataFrame], outputs: dict[str, pd.DataFrame], cond: str, out_key: str
) -> pd.DataFrame:
    frame = data[cond][[*INPUT_COLUMNS, "snr_plain_db"]].copy()
    return frame.join(outputs[out_key])


@dataclass(frozen=True)
class Scenario:
    """A family of batches: ``kind`` is ``same`` (reference and batch from the same clips, the batch
    under ``condition`` and optionally re-weighted to the label prior shift), ``left_out`` (the batch,
    or ``share`` of it, from a speaker the reference and the model never saw) or ``fixed`` (one
    reference, drawn with ``reference_seed``, against batches from its complement)."""

    name: str
    size: int
    target: str
    kind: str = "same"
    condition: str = "clean"
    share: float = 1.0
    prior_shift: bool = False
    n_batches: int = N_SHIFT
    concept_labels: int | None = None
    reference_seed: int = 0
    plain: bool = False  # also check with the plain WADA SNR


_STATE: dict[str, object] = {}  # frames for the scenario workers, inherited when the pool forks


def _draw(sc: Scenario, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    frames = _STATE["frames"]
    speakers: np.ndarray = _STATE["speakers"]  # type: ignore[assignment]
    n = len(speakers)
    if sc.kind == "left_out":
        loso = _STATE["loso"]
        spk = sorted(loso)[int(rng.integers(len(loso)))]  # type: ignore[arg-type]
        frame = loso[spk]  # type: ignore[index]
        inside = rng.permutation(np.flatnonzero(speakers != spk))
        outside = np.flatnonzero(speakers == spk)
        ref_idx, rest = inside[:N_REFERENCE], inside[N_REFERENCE:]
        k = round(sc.share * sc.size)
        picked = np.concatenate(
            [rng.choice(outside, k, replace=False), rng.choice(rest, sc.size - k, replace=False)]
        )
        return frame.iloc[ref_idx], frame.iloc[rng.permutation(picked)]
    if sc.kind == "fixed":
        order = np.random.default_rng(sc.reference_seed).permutation(n)
    else:
        order = rng.permutation(n)
    ref_idx, rest = order[:N_REFERENCE], order[N_REFERENCE:]
    p = None
    if sc.prior_shift:
        digits: np.ndarray = _STATE["digits"]  # type: ignore[assignment]
        weights = np.where(digits[rest] <= 2, 3.0, 1.0)
        p = weights / weights.sum()
    bat_idx = rng.choice(rest, sc.size, replace=False, p=p)
    return frames["clean"].iloc[ref_idx], frames[sc.condition].iloc[bat_idx]  # type: ignore[index]


def run_scenario(args: tuple[int, Scenario, int, int]) -> tuple[int, Tally]:
    """``n_batches`` batches of scenario ``sc`` drawn from ``seed``; returns the scenario's number."""
    number, sc, seed, n_batches = args
    rng = np.random.default_rng(seed)
    tally = Tally()
    for i in range(n_batches):
        ref, bat = _draw(sc, rng)
        ref_in, bat_in = (
            ref.drop(columns=["correct", "snr_plain_db"]),
            bat.drop(columns=["correct", "snr_plain_db"]),
        )
        report = drift_report(ref_in, bat_in, random_state=seed + i)
        tally.n += 1
        tally.ours += report.drift
        if sc.plain:
            plain = drift_report(
                ref_in.assign(snr_db=ref["snr_plain_db"]),
                bat_in.assign(snr_db=bat["snr_plain_db"]),
                random_state=seed + i,
            )
            tally.plain += plain.drift
        loudness = next(m for m in report.measures if m.name == "rms_dbfs")
        tally.loudness_shift.append(loudness.effect)
        tally.loudness_medians.append(float(bat_in["rms_dbfs"].median() - ref_in["rms_dbfs"].median()))
        if report.drift:
            first = report.measures[0]
            tally.led_by[first.name if first.drift else "mmd"] += 1
            tally.channel += any("channel changed" in r for r in report.reasons)
            tally.pitch += any(m.name == "pitch_hz" and m.drift for m in report.measures)
            tally.example = tally.example or "; ".join(report.reasons)
        tally.evidently_large += evidently_rule(ref, bat, COLUMNS, large=True)
        tally.evidently_small += evidently_rule(ref, bat, COLUMNS, large=False)
        if sc.concept_labels:
            labelled = bat["correct"].iloc[: sc.concept_labels]
            tally.concept += concept_drift(ref["correct"], labelled).drift
            tally.n_concept += 1
    return number, tally


SCENARIOS = [
    *[
        Scenario(
            "no drift (fresh split each batch)", size, "≤ 5%", n_batches=N_NULL, concept_labels=50, plain=True
        )
        for size in (50, 200)
    ],
    *[
        Scenario(
            "resampled 8→16→8 kHz (no drift)",
            size,
            "≤ 5%",
            condition="resampled",
            n_batches=N_NULL,
            plain=True,
        )
        for size in (50, 200)
    ],
    Scenario("left-out speaker", 50, "≥ 95%", kind="left_out", concept_labels=50),
    Scenario("pitch +2 semitones", 50, "≥ 95%", condition="pitch_up2"),
    Scenario("pitch −2 semitones", 50, "≥ 95%", condition="pitch_down2"),
    Scenario("white noise 10 dB", 50, "≥ 95%", condition="white10"),
    Scenario("babble 10 dB", 50, "≥ 95%", condition="babble10"),
    Scenario("car noise 10 dB", 50, "≥ 95%", condition="car10"),
    Scenario("telephone channel", 50, "≥ 95%", condition="telephone"),
    Scenario("gain −10 dB", 50, "≥ 95%", condition="gain_minus10"),
    Scenario("pitch +1 semitone", 50, "—", condition="pitch_up1"),
    Scenario("30% left-out speaker", 50, "—", kind="left_out", share=0.3),
    Scenario("label prior shift (0–2 ×3)", 50, "—", prior_shift=True),
    Scenario("left-out speaker", 200, "≥ 95%", kind="left_out", concept_labels=50),
    Scenario("30% left-out speaker", 200, "≥ 95%", kind="left_out", share=0.3),
    Scenario("pitch +1 semitone", 200, "≥ 95%", condition="pitch_up1"),
    Scenario("label prior shift (0–2 ×3)", 200, "≥ 75%", prior_shift=True),
    Scenario("white noise 10 dB", 200, "≥ 95%", condition="white10"),
    Scenario("telephone channel", 200, "≥ 95%", condition="telephone"),
    Scenario("gain −10 dB", 200, "≥ 95%", condition="gain_minus10"),
]
FIXED = [
    Scenario(
        f"fixed reference {r}", size, "≤ 10%", kind="fixed", n_batches=N_PER_FIXED, reference_seed=50_000 + r
    )
    for size in (50, 200)
    for r in range(N_FIXED_REFERENCES)
]


def main() -> None:
    if not (FSDD / "recordings").is_dir():
        print(f"skipped: no FSDD recordings beside the project ({FSDD})")
        return
    paths = sorted((FSDD / "recordings").glob("*.wav"))
    start = time.perf_counter()
    key, data = measures(paths)
    index = data["clean"].index
    digits = pd.Series([int(k.split("_")[0]) for k in index], index=index)
    speakers = pd.Series([k.split("_")[1] for k in index], index=index)
    outputs_file = CACHE / f"outputs-{key}.pkl"
    if outputs_file.exists():
        outputs = pd.read_pickle(outputs_file)
    else:
        outputs = model_outputs(data, digits, speakers)
        pd.to_pickle(outputs, outputs_file)
    print(f"  measures and model outputs ready in {time.perf_counter() - start:.0f} s", flush=True)
    frames = {c: _frame(data, outputs, c, c) for c in CONDITIONS}
    _STATE.update(
        frames=frames,
        loso={s: _frame(data, outputs, "clean", f"loso:{s}") for s in sorted(speakers.unique())},
        speakers=speakers.to_numpy(),
        digits=digits.to_numpy(),
    )
    n = len(index)

    # Scenarios in chunks of at most 50 batches, so that both workers stay busy to the end.
    everything = SCENARIOS + FIXED
    jobs = [
        (i, sc, 1_000_000 * i + 1000 * start, min(CHUNK, sc.n_batches - start))
        for i, sc in enumerate(everything)
        for start in range(0, sc.n_batches, CHUNK)
    ]
    tallies = [Tally() for _ in everything]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        for done, (number, tally) in enumerate(pool.map(run_scenario, jobs), start=1):
            tallies[number].add(tally)
            if done % 10 == 0 or done == len(jobs):
                print(
                    f"  {done}/{len(jobs)} chunks of batches ({time.perf_counter() - t0:.0f} s)", flush=True
                )
    rows = [(sc, t) for sc, t in zip(everything, tallies, strict=True) if sc.kind != "fixed"]
    fixed_rates: dict[int, list[float]] = {50: [], 200: []}
    for sc, t in zip(everything, tallies, strict=True):
        if sc.kind == "fixed":
            fixed_rates[sc.size].append(t.rate("ours"))
    for sc, tally in rows:
        print(
            f"  {sc.name} @ {sc.size}: ours {tally.rate('ours'):.1%}, Evidently "
            f"{tally.rate('evidently_large'):.1%} / {tally.rate('evidently_small'):.1%}, concept "
            f"{tally.rate('concept'):.1%}",
            flush=True,
        )
    print(f"  fixed references: worst {max(fixed_rates[50]):.1%} / {max(fixed_rates[200]):.1%}", flush=True)

    check_rng = np.random.default_rng(7)
    clean = frames["clean"].drop(columns="correct")
    self_checks = [
        drift_report(f, f, random_state=k).drift
        for k, size in enumerate([50, 50, 200, 200, 1200, 1200, 2000])
        for f in [clean.iloc[check_rng.permutation(n)[:size]]]
    ]

    # Speed: 10,000 clips against 100,000, rows resampled from the real clean measures.
    rng = np.random.default_rng(3)
    big_ref = clean.iloc[rng.integers(0, n, 100_000)].reset_index(drop=True)
    big_bat = clean.iloc[rng.integers(0, n, 10_000)].reset_index(drop=True)
    ours_s = median_seconds(lambda: drift_report(big_ref, big_bat), repeat=5)
    evid_s = median_seconds(lambda: evidently_rule(big_ref, big_bat, COLUMNS, large=True), repeat=5)
    big_drift = drift_report(big_ref, big_bat).drift

    print("  timing checks with and without the cached reference", flush=True)
    checks = check_cpu(frames["clean"].drop(columns="snr_plain_db"))
    start_up = import_cpu()
    print("  timing and comparing pitch estimators", flush=True)
    pitch = pitch_bench(paths)
    reasons = reason_examples(frames, speakers.to_numpy())

    write_section(
        "drift",
        _markdown(
            rows,
            fixed_rates,
            self_checks,
            ours_s,
            evid_s,
            big_drift,
            outputs,
            speakers,
            checks,
            start_up,
            pitch,
            reasons,
        ),
    )


# ---------------------------------------------------------------------------------------------------
# The cost of a check, with and without the cached reference


def _cpu_and_wall(fn, *, repeat: int = 5) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Median CPU seconds (``time.process_time``, all threads) and wall seconds of ``fn()``."""
    fn()
    cpu, wall = [], []
    for _ in range(repeat):
        c, w = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return statistics.median(cpu), statistics.median(wall)


def check_cpu(clean: pd.DataFrame) -> list[dict[str, object]]:
    """Per-call CPU and wall of a check of 50 and 1,000 clips against references of 1,200 and 100,000
    clips: from the reference's per-clip measures as stored (one JSON object per clip, parsed into a
    frame and summarised on every call), from the reference frame already in memory (summarised on
    every call), and from its cached summary (read back from its bytes on every call, as a service
    keeping it in a file or a table would)."""
    from analysis.drift import ReferenceSummary

    rng = np.random.default_rng(17)
    rows: list[dict[str, object]] = []
    for n_ref in (N_REFERENCE, 100_000):
        replace = n_ref > len(clean)
        ref = clean.iloc[rng.choice(len(clean), n_ref, replace=replace)].reset_index(drop=True)
        stored = [json.dumps(r) for r in json.loads(ref.to_json(orient="records"))]
        build_cpu, build_wall = _cpu_and_wall(lambda ref=ref: reference_summary(ref), repeat=3)
        blob = reference_summary(ref).to_bytes()

        def from_stored(stored=stored):  # type: ignore[no-untyped-def]
            return pd.DataFrame.from_records([json.loads(r) for r in stored])

        for n_bat in (50, 1000):
            bat = clean.iloc[rng.choice(len(clean), n_bat, replace=True)].reset_index(drop=True)
            stored_cpu, stored_wall = _cpu_and_wall(
                lambda bat=bat, from_stored=from_stored: drift_report(from_stored(), bat), repeat=3
            )
            frame_cpu, frame_wall = _cpu_and_wall(lambda ref=ref, bat=bat: drift_report(ref, bat))
            cached_cpu, cached_wall = _cpu_and_wall(
                lambda bat=bat, blob=blob: drift_report(ReferenceSummary.from_bytes(blob), bat)
            )
            same = (
                drift_report(ref, bat).to_dict()
                == drift_report(ReferenceSummary.from_bytes(blob), bat).to_dict()
            )
            rows.append(
                {
                    "reference": n_ref,
                    "batch": n_bat,
                    "stored_cpu": stored_cpu,
                    "stored_wall": stored_wall,
                    "frame_cpu": frame_cpu,
                    "frame_wall": frame_wall,
                    "cached_cpu": cached_cpu,
                    "cached_wall": cached_wall,
                    "build_cpu": build_cpu,
                    "build_wall": build_wall,
                    "bytes": len(blob),
                    "same": same,
                }
            )
    return rows


def import_cpu(repeat: int = 3) -> float:
    """Median CPU seconds of a fresh interpreter importing the drift module (what a one-shot command
    pays before its first check)."""
    times = []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(
            [sys.executable, "-c", "import analysis.drift"], check=True, cwd=Path(__file__).parents[1]
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        times.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return statistics.median(times)


# ---------------------------------------------------------------------------------------------------
# Pitch: the fast estimator against the full-rate YIN it replaces, and both against pyin

N_PYIN = 200


def _pyin_medians(paths: list[Path]) -> dict[str, float | None]:
    """librosa.pyin's median F0 over its voiced frames (60-400 Hz, the frames of the full-rate YIN),
    cached: pyin takes a few seconds per clip on this machine."""
    import librosa

    listing = "\n".join(f"{p.name}:{p.stat().st_size}" for p in paths)
    key = hashlib.sha256(f"{librosa.__version__}\n{listing}".encode()).hexdigest()[:12]
    file = CACHE / f"pyin-{key}.json"
    if file.exists():
        return dict(json.loads(file.read_text()))
    out: dict[str, float | None] = {}
    for p in paths:
        y, sr = decode(p)
        f0, voiced, _ = librosa.pyin(
            y.astype(np.float64), fmin=60, fmax=400, sr=sr, frame_length=512, hop_length=80
        )
        out[p.stem] = float(np.median(f0[voiced])) if voiced.any() else None
    CACHE.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(out))
    return out


def pitch_bench(paths: list[Path]) -> dict[str, float]:
    clips = {p.stem: decode(p)[0].astype(np.float64) for p in paths}
    names = list(clips)
    fast = np.array([median_pitch(clips[k], 8000) for k in names])
    full = np.array([median_pitch_full_rate(clips[k], 8000) for k in names])
    diff = np.abs(fast - full)
    # pyin on every tenth clip.
    subset = paths[:: max(1, len(paths) // N_PYIN)][:N_PYIN]
    pyin = _pyin_medians(subset)
    idx = {k: i for i, k in enumerate(names)}
    known = [(idx[k], v) for k, v in pyin.items() if v is not None]
    rows, ref = np.array([i for i, _ in known]), np.array([v for _, v in known])
    # Speed on 1 s clips: three consecutive digits cut to one second.
    values = list(clips.values())
    seconds = [np.concatenate(values[i : i + 3])[:8000] for i in range(0, 600, 3)]

    def per_clip(fn) -> float:  # type: ignore[no-untyped-def]
        runs = []
        for _ in range(5):
            start = time.process_time()
            for y in seconds:
                fn(y, 8000)
            runs.append((time.process_time() - start) / len(seconds))
        return 1000 * statistics.median(runs)

    full_ms, fast_ms = per_clip(median_pitch_full_rate), per_clip(median_pitch)
    measures_ms = per_clip(clip_measures)
    return {
        "n": len(names),
        "median_diff": float(np.median(diff)),
        "p90_diff": float(np.percentile(diff, 90)),
        "within_5": float(np.mean(diff <= 5)),
        "n_pyin": len(known),
        "fast_vs_pyin": float(np.median(np.abs(fast[rows] - ref))),
        "full_vs_pyin": float(np.median(np.abs(full[rows] - ref))),
        "fast_vs_pyin_p90": float(np.percentile(np.abs(fast[rows] - ref), 90)),
        "full_vs_pyin_p90": float(np.percentile(np.abs(full[rows] - ref), 90)),
        "fast_ms": fast_ms,
        "full_ms": full_ms,
        "measures_ms": measures_ms,
    }


def reason_examples(frames: dict[str, pd.DataFrame], speakers: np.ndarray) -> list[tuple[str, str]]:
    """The reasons of one batch of 50 per condition (a fixed draw), as a reader would see them."""
    rng = np.random.default_rng(23)
    order = rng.permutation(len(speakers))
    ref_idx, bat_idx = order[:N_REFERENCE], order[N_REFERENCE : N_REFERENCE + 50]
    drop = ["correct", "snr_plain_db"]
    ref = frames["clean"].iloc[ref_idx].drop(columns=drop)
    out = []
    for cond in ("gain_minus10", "pitch_up2", "telephone", "white10", "resampled"):
        report = drift_report(ref, frames[cond].iloc[bat_idx].drop(columns=drop))
        out.append((cond, "; ".join(report.reasons) if report.reasons else "no drift"))
    return out


def _markdown(  # type: ignore[no-untyped-def]
    rows,
    fixed_rates,
    self_checks,
    ours_s,
    evid_s,
    big_drift,
    outputs,
    speakers,
    checks,
    start_up,
    pitch,
    reasons,
) -> str:
    acc_all = outputs["clean"]["correct"].mean()
    acc_loso = np.mean(
        [outputs[f"loso:{s}"]["correct"][speakers == s].mean() for s in sorted(speakers.unique())]
    )

    def pct(x: float) -> str:
        return "—" if math.isnan(x) else f"{100 * x:.1f}%"

    lines = [
        "## Drift (`analysis/drift.py`, `bench/bench_drift.py`)",
        "",
        f"FSDD, 2,000 clips of 4 speakers; reference {N_REFERENCE:,} clips drawn afresh for every batch; "
        f"{N_NULL} batches per size without drift, {N_SHIFT} per shift. Shifts are made from the FSDD clips "
        "with `analysis/augment.py`; the left-out speaker is rotated over the four, and then the model "
        f"never heard that speaker. Model outputs are out of fold (5 folds; accuracy {acc_all:.1%} on known "
        f"speakers, {acc_loso:.1%} on a left-out one); low confidence means < {LOW_CONFIDENCE}. Columns tested: "
        f"{len(COLUMNS)} ({', '.join(COLUMNS)}).",
        "",
        "Design under test (defaults of `drift_report`): α = 0.05 split evenly over three groups — "
        "per-measure input tests (KS, Bonferroni over the input measures; the SNR, censored at its table's "
        "ends, in two parts: Fisher's exact test on the shares at each end and KS within), one MMD test on the input "
        "measures standardised on the reference (Gaussian kernel, median-distance bandwidth, 500 "
        "permutations, at most 2,000 reference and 500 batch clips in the kernel), and output tests "
        "(chi-squared on predicted classes, KS on confidence, Fisher's exact test on the low-confidence "
        "share, Bonferroni over them). No verdict under 50 clips; from 1,000 clips a measure must also "
        "reach its minimum effect in its own unit. Concept drift: Fisher's exact test of the first 50 "
        "batch clips' correctness against the reference's out-of-fold correctness, at 0.05.",
        "",
        "Evidently rule: its documented default on the same batches and columns, in both variants — "
        "*large* (its choice for references over 1,000 rows: Wasserstein/std or Jensen-Shannon ≥ 0.1) and "
        "*small* (KS/chi-squared/z-test at p < 0.05); dataset drift when ≥ 50% of columns drift.",
        "",
        "The SNR is `speech_snr` (WADA without digital silence, on the band below 70–80% of Nyquist); "
        "*plain WADA* is the same report with the estimator it replaced, on the same batches (no-drift "
        "rows only).",
        "",
        "| batch | clips | target | `drift_report` | plain WADA | smallest p most often | pitch drifted | says channel "
        "| concept (50 labels) | Evidently large | Evidently small |",
        "|---|---:|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for sc, tally in rows:
        name, size, target = sc.name, sc.size, sc.target
        lines.append(
            f"| {name} | {size} | {target} | {pct(tally.rate('ours'))} ({tally.ours}/{tally.n}) | "
            f"{pct(tally.rate('plain')) if sc.plain else '—'} | "
            f"{tally.leader()} | {tally.pitch} | {tally.channel} | "
            f"{pct(tally.rate('concept'))} | {pct(tally.rate('evidently_large'))} | {pct(tally.rate('evidently_small'))} |"
        )
    lines += [
        "",
        f"- Fixed references ({N_FIXED_REFERENCES} references × {N_PER_FIXED} batches from their complement): worst "
        f"false-alarm rate {pct(max(fixed_rates[50]))} at 50 clips, {pct(max(fixed_rates[200]))} at 200 "
        f"(target ≤ 10%); mean {pct(float(np.mean(fixed_rates[50])))} and {pct(float(np.mean(fixed_rates[200])))}. "
        f"Per reference at 50: {', '.join(pct(r) for r in fixed_rates[50])}; at 200: "
        f"{', '.join(pct(r) for r in fixed_rates[200])}. The batches come from the 800 clips the reference "
        "left over, whose chance differences from it are the reference's own, reversed and 1.5 times larger, "
        "and batches of 200 out of 800 overlap: the rate varies from reference to reference more than it "
        "would against fresh production traffic, and a rate estimated from 100 batches has a standard error "
        "of about 2–3 points.",
        f"- A reference compared with itself: {sum(self_checks)} drifts in {len(self_checks)} checks (target 0).",
        f"- 10,000-clip batch against a 100,000-clip reference (measures cached): {ours_s:.2f} s "
        f"(target ≤ 2 s; drift found: {big_drift}); Evidently's rule on the same frames {evid_s:.2f} s "
        f"(ratio {ours_s / evid_s:.1f}×).",
    ]
    gain = next(t for sc, t in rows if sc.condition == "gain_minus10" and sc.size == 50)
    hl, med = np.array(gain.loudness_shift), np.array(gain.loudness_medians)
    lines += [
        f"- Gain −10 dB at 50 clips ({len(hl)} batches; FSDD's loudness has two humps, one quiet speaker): "
        f"the Hodges-Lehmann shift the reasons now print read {np.percentile(hl, 5):.1f} to "
        f"{np.percentile(hl, 95):.1f} dB (5th–95th percentile, extremes {hl.min():.1f} and {hl.max():.1f}); "
        f"the difference of medians they printed before, {np.percentile(med, 5):.1f} to {np.percentile(med, 95):.1f} dB "
        f"(extremes {med.min():.1f} and {med.max():.1f}).",
        "",
        "Reasons of one batch of 50 clips per condition (the same draw for each):",
        "",
    ]
    lines += [f"- {cond}: {text}" for cond, text in reasons]
    lines += [
        "",
        "### The cost of a check, with and without the cached reference",
        "",
        "Three ways to check a batch, each timed per call: the reference's per-clip measures as a service "
        "stores them (one JSON object per clip) parsed into a frame, summarised and checked (the baseline: "
        "what every check repeated); the reference frame already in memory, summarised and checked "
        "(`drift_report(frame, batch)`); and the reference's `ReferenceSummary` read back from its bytes "
        "(`ReferenceSummary.from_bytes`) and checked. CPU is `time.process_time` (all threads), median of 5 "
        "calls (3 for the stored measures); the frame and the cache give the same report (checked: "
        f"{all(bool(c['same']) for c in checks)}). Target: ≤ 0.5 s CPU for a 50-clip batch from the cache.",
        "",
        "| reference clips | batch clips | from stored measures: CPU / wall | from the frame: CPU / wall "
        "| from the cache: CPU / wall | stored ÷ cache (CPU) | summary: build CPU, size |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in checks:
        lines.append(
            f"| {c['reference']:,} | {c['batch']:,} | {c['stored_cpu']:.3f} s / {c['stored_wall']:.3f} s | "
            f"{c['frame_cpu']:.3f} s / {c['frame_wall']:.3f} s | "
            f"**{c['cached_cpu']:.3f} s** / {c['cached_wall']:.3f} s | {c['stored_cpu'] / c['cached_cpu']:.1f}× | "
            f"{c['build_cpu']:.2f} s, {c['bytes'] / 1e6:.2f} MB |"
        )
    lines += [
        "",
        f"A fresh interpreter importing `analysis.drift` (numpy, pandas, scipy) costs {start_up:.2f} s CPU "
        "before any check: a one-shot command pays it once, a worker never again.",
        "",
        "### Median pitch (`analysis/pitch.py`)",
        "",
        "`median_pitch` (YIN at 4 kHz on the loud frames only) against `median_pitch_full_rate` (YIN at the "
        "clip's rate on every frame, then the loud ones: what the drift measures used before), both timed in this "
        "run on 200 one-second 8 kHz clips (three FSDD digits each), CPU per clip, median of 5 runs.",
        "",
        "| | full-rate YIN (baseline) | fast | ratio |",
        "|---|---:|---:|---:|",
        f"| CPU per 1 s clip (target ≤ 1.5 ms) | {pitch['full_ms']:.2f} ms | **{pitch['fast_ms']:.2f} ms** | "
        f"{pitch['full_ms'] / pitch['fast_ms']:.1f}× |",
        f"| median absolute error against pyin ({pitch['n_pyin']} clips) | {pitch['full_vs_pyin']:.2f} Hz | "
        f"{pitch['fast_vs_pyin']:.2f} Hz | |",
        f"| 90th percentile of that error | {pitch['full_vs_pyin_p90']:.1f} Hz | {pitch['fast_vs_pyin_p90']:.1f} Hz | |",
        "",
        f"Per clip, fast against full-rate on all {pitch['n']:,} FSDD clips: median difference "
        f"{pitch['median_diff']:.2f} Hz, 90th percentile {pitch['p90_diff']:.1f} Hz, {100 * pitch['within_5']:.0f}% "
        "within 5 Hz (the rest are clips whose median sits between two octaves of the voice, which either "
        f"estimator may take). All of `clip_measures` now costs {pitch['measures_ms']:.2f} ms per 1 s clip.",
        "",
        f"{machine()}. Drift reports use 500 MMD permutations.",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# The check as the app runs it: run_drift_check with the reference summary stored, or not


def _app_workspace(tmp: Path, paths: list[Path]):  # type: ignore[no-untyped-def]
    """A project whose live model's reference is 1,000 FSDD clips (its test split, the model's answer
    the digit in the file name), and production batches of 50 and 1,000 other FSDD clips."""
    import shutil

    from sqlalchemy import update

    from bench.bench_import import fresh_workspace
    from bench.bench_ingest_production import write_log
    from db.models import Clip
    from labeling.data.importer import import_path
    from labeling.data.versions import create_version
    from labeling.model.runs import import_external_predictions
    from labeling.monitor.live import mark_live
    from labeling.monitor.production import import_production

    ref_files, batch_files = paths[:1000], paths[1000:2000]
    src = tmp / "reference"
    src.mkdir()
    for f in ref_files:
        shutil.copy(f, src / f.name)
    ws = fresh_workspace(tmp)
    import_path(ws, src, "fsdd", pattern=r"(?P<label>\d)_(?P<speaker>[a-z]+)_(?P<take>\d+)\.wav")
    with ws.db.write() as s:
        s.execute(update(Clip).values(split="test"))
        create_version(s, "fsdd", name="v1")
    pred = tmp / "pred.csv"
    pred.write_text(
        "file_name,label,confidence\n" + "".join(f"{f.name},{f.name[0]},0.9\n" for f in ref_files)
    )
    run = import_external_predictions(ws, "fsdd", pred, name="deployed")
    mark_live(ws, "fsdd", run.id, reference="v1")
    for name, files in (("b50", batch_files[:50]), ("b1000", batch_files)):
        folder = tmp / name
        folder.mkdir()
        log = write_log(folder, files)
        log.write_text(log.read_text().replace('"req-', f'"{name}-'))
        report = import_production(ws, log, "fsdd", batch=name, audio_root=FSDD / "recordings")
        assert report.n_logged == len(files), report.rejected[:3]
    return ws


def app_check_cpu(paths: list[Path], repeat: int = 5) -> tuple[list[dict[str, object]], dict[str, float]]:
    """Per-call CPU (``time.process_time``) and wall of ``run_drift_check`` on batches of 50 and 1,000
    clips against a 1,000-clip reference: cold (the stored summary removed before each call, so the
    reference is read from its stored per-clip measures and summarised: what every check did before)
    and warm (the summary read back from ``stored_reports``); and the ``earmark drift --json`` command
    in a fresh interpreter, warm, as CPU of the child process and wall."""
    import tempfile

    from sqlalchemy import delete

    from bench.bench_import import SCRATCH
    from db.models import StoredReport
    from labeling.monitor.drift import run_drift_check
    from labeling.monitor.reference import KIND

    SCRATCH.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, object]] = []
    cli: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp_name:
        tmp = Path(tmp_name)
        ws = _app_workspace(tmp, paths)

        def forget() -> None:
            with ws.db.write() as s:
                s.execute(delete(StoredReport).where(StoredReport.kind == KIND))

        for batch in ("b50", "b1000"):
            run_drift_check(ws, "fsdd", batch)  # measures and the summary in place
            cold_cpu, cold_wall, warm_cpu, warm_wall = [], [], [], []
            for _ in range(repeat):
                forget()
                c, w = time.process_time(), time.perf_counter()
                cold = run_drift_check(ws, "fsdd", batch)
                cold_cpu.append(time.process_time() - c)
                cold_wall.append(time.perf_counter() - w)
                c, w = time.process_time(), time.perf_counter()
                warm = run_drift_check(ws, "fsdd", batch)
                warm_cpu.append(time.process_time() - c)
                warm_wall.append(time.perf_counter() - w)
            rows.append(
                {
                    "batch": 50 if batch == "b50" else 1000,
                    "cold_cpu": statistics.median(cold_cpu),
                    "cold_wall": statistics.median(cold_wall),
                    "warm_cpu": statistics.median(warm_cpu),
                    "warm_wall": statistics.median(warm_wall),
                    "same": cold.report == warm.report,
                }
            )
            print(f"  {rows[-1]}", flush=True)
        url = f"sqlite:///{tmp / 'bench.db'}"
        ws.close()
        env = {**os.environ, "EARMARK_DATA_DIR": str(tmp), "EARMARK_DATABASE_URL": url}
        earmark = Path(sys.executable).with_name("earmark")
        cpus, walls = [], []
        for _ in range(3):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            w = time.perf_counter()
            subprocess.run(
                [str(earmark), "drift", "--project", "fsdd", "--batch", "b50", "--json"],
                check=True,
                env=env,
                capture_output=True,
            )
            walls.append(time.perf_counter() - w)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
        cli = {"cpu": statistics.median(cpus), "wall": statistics.median(walls)}
    return rows, cli


def _app_markdown(rows: list[dict[str, object]], cli: dict[str, float], start_up: float) -> str:
    lines = [
        "## Drift check in the app (`labeling/monitor/reference.py`, `python -m bench.bench_drift --app`)",
        "",
        "`run_drift_check` on production batches of FSDD clips against a live model's 1,000-clip "
        "reference, per call, median of 5: **cold**, the reference's stored summary removed before the "
        "call, so the check reads the reference's per-clip measures from the database, builds its frame "
        "and summarises it (what every check did before the summary was kept: the baseline); **warm**, "
        "the summary read back from `stored_reports`. Both include measuring nothing new, reading the "
        "batch, the statistics and storing the check; CPU is `time.process_time` in the process. "
        "Target: ≤ 0.5 s CPU for a 50-clip batch, warm.",
        "",
        "| batch clips | cold: CPU / wall (baseline) | warm: CPU / wall | cold ÷ warm (CPU) | same report |",
        "|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['batch']:,} | {r['cold_cpu']:.3f} s / {r['cold_wall']:.3f} s | "
            f"**{r['warm_cpu']:.3f} s** / {r['warm_wall']:.3f} s | "
            f"{float(r['cold_cpu']) / float(r['warm_cpu']):.1f}× | {r['same']} |"  # type: ignore[arg-type]
        )
    lines += [
        "",
        f"`earmark drift --project fsdd --batch b50 --json` in a fresh interpreter, warm: {cli['cpu']:.2f} s CPU, "
        f"{cli['wall']:.2f} s wall (median of 3), of which importing `analysis.drift` alone costs "
        f"{start_up:.2f} s CPU.",
        "",
        machine() + ".",
    ]
    return "\n".join(lines)


def main_app() -> None:
    if not (FSDD / "recordings").is_dir():
        print(f"skipped: no FSDD recordings beside the project ({FSDD})")
        return
    paths = sorted((FSDD / "recordings").glob("*.wav"))
    # Reference and batches drawn from one shuffle: no drift expected, the usual case.
    paths = [paths[i] for i in np.random.default_rng(5).permutation(len(paths))]
    rows, cli = app_check_cpu(paths)
    md = _app_markdown(rows, cli, import_cpu())
    print(md)
    write_section("drift_app", md)


if __name__ == "__main__":
    if "--app" in sys.argv[1:]:
        main_app()
    else:
        main()
