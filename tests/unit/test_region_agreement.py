"""Agreement on time regions against independent references.

- Boundaries: ``mir_eval.onset.f_measure`` (onsets and offsets) and ``mir_eval.transcription`` (whole
  regions, onset and offset within the tolerance, classes as pitches).
- Frame kappa: ``sklearn.metrics.cohen_kappa_score`` and ``statsmodels``' ``fleiss_kappa`` on frame
  categories built here frame by frame from the centre rule.
- Unitizing alpha: Krippendorff's own worked examples. Krippendorff (2004), *Content Analysis: An
  Introduction to Its Methodology*, 2nd ed., Sage, p. 254 (two observers, categories c and k on the
  continuum 150-450) and Krippendorff (1995), "On the reliability of unitizing continuous data",
  *Sociological Methodology* 25:47-76, p. 57 (pairs A-D on a continuum of 24). The published figures
  are as reproduced in the test suite of DKPro Statistics (``Krippendorff2004Test``,
  ``Krippendorff1995Test``).
- DER and JER: ``pyannote.metrics`` ``DiarizationErrorRate`` and ``JaccardErrorRate`` on
  ``pyannote.core`` annotations.
"""

from __future__ import annotations

import itertools
import warnings

import mir_eval
import numpy as np
import pandas as pd
import pytest
from pyannote.core import Annotation, Segment, Timeline
from pyannote.metrics.diarization import DiarizationErrorRate, JaccardErrorRate
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from analysis.region_agreement import (
    boundary_agreement,
    diarization_error,
    frame_agreement_by_item,
    frame_cohen_kappa,
    frame_fleiss_kappa,
    jaccard_error,
    pairwise_boundary_agreement,
    pairwise_diarization_error,
    region_agreement,
    unitizing_alpha,
)
from analysis.regions import RegionError, normalise_regions


def random_regions(rng: np.random.Generator, n: int, duration: float, labels: list[str]) -> pd.DataFrame:
    start = np.sort(np.round(rng.uniform(0, duration - 1, n), 3))
    return pd.DataFrame(
        {
            "start": start,
            "end": np.minimum(start + np.round(rng.uniform(0.05, 3.0, n), 3), duration),
            "label": rng.choice(labels, n),
        }
    )


def jittered(rng: np.random.Generator, regions: pd.DataFrame, scale: float, duration: float) -> pd.DataFrame:
    """Another annotator's take: boundaries moved, some regions dropped, some relabelled."""
    keep = rng.random(len(regions)) > 0.15
    out = regions[keep].copy()
    out["start"] = np.clip(np.round(out["start"] + rng.normal(0, scale, len(out)), 3), 0, duration - 0.1)
    out["end"] = np.clip(
        np.round(out["end"] + rng.normal(0, scale, len(out)), 3), out["start"] + 0.02, duration
    )
    flip = rng.random(len(out)) < 0.1
    out.loc[flip, "label"] = rng.choice(regions["label"].unique(), int(flip.sum()))
    return out.reset_index(drop=True)


# --- boundaries ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_onset_and_offset_scores_equal_mir_eval(seed):
    rng = np.random.default_rng(seed)
    ref = random_regions(rng, 60, 120.0, ["speech"])
    est = jittered(rng, ref, 0.15, 120.0)
    table = boundary_agreement(ref, est, tolerance=0.2).set_index("kind")
    for kind, col in (("onset", "start"), ("offset", "end")):
        f, p, r = mir_eval.onset.f_measure(
            np.sort(ref[col].to_numpy()), np.sort(est[col].to_numpy()), window=0.2
        )
        assert table.loc[kind, ["precision", "recall", "f1"]].tolist() == pytest.approx([p, r, f], abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_whole_region_scores_equal_mir_eval_transcription_with_classes_as_pitches(seed):
    rng = np.random.default_rng(seed + 100)
    ref = random_regions(rng, 50, 100.0, ["a", "b", "c"])
    est = jittered(rng, ref, 0.12, 100.0)
    pitch = {"a": 220.0, "b": 440.0, "c": 880.0}
    for same_label in (False, True):
        ours = (
            boundary_agreement(ref, est, tolerance=0.2, same_label=same_label).set_index("kind").loc["region"]
        )
        p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
            ref[["start", "end"]].to_numpy(),
            ref["label"].map(pitch).to_numpy() if same_label else np.full(len(ref), 440.0),
            est[["start", "end"]].to_numpy(),
            est["label"].map(pitch).to_numpy() if same_label else np.full(len(est), 440.0),
            onset_tolerance=0.2,
            offset_ratio=0.0,
            offset_min_tolerance=0.2,
        )
        assert [ours["precision"], ours["recall"], ours["f1"]] == pytest.approx([p, r, f], abs=1e-12)


def onsets_matched(ref: pd.DataFrame, est: pd.DataFrame) -> int:
    _f, precision, _r = mir_eval.onset.f_measure(
        np.sort(ref["start"].to_numpy()), np.sort(est["start"].to_numpy()), window=0.2
    )
    return round(precision * len(est))


def test_boundaries_match_only_within_a_recording():
    rng = np.random.default_rng(7)
    refs = {rec: random_regions(rng, 30, 60.0, ["speech"]) for rec in ("r1", "r2", "r3")}
    ests = {rec: jittered(rng, ref, 0.2, 60.0) for rec, ref in refs.items()}
    ref_all = pd.concat([r.assign(recording_id=k) for k, r in refs.items()])
    est_all = pd.concat([e.assign(recording_id=k) for k, e in ests.items()])
    table = boundary_agreement(ref_all, est_all).set_index("kind")
    assert table.loc["onset", "matched"] == sum(onsets_matched(refs[k], ests[k]) for k in refs)
    # The estimates handed to the wrong recordings match only what chance lines up there.
    moved = {"r1": "r2", "r2": "r3", "r3": "r1"}
    swapped = est_all.assign(recording_id=est_all["recording_id"].map(moved))
    chance = sum(onsets_matched(refs[moved[k]], ests[k]) for k in refs)
    assert boundary_agreement(ref_all, swapped).set_index("kind").loc["onset", "matched"] == chance
    assert chance < table.loc["onset", "matched"] / 2


def test_a_boundary_exactly_at_the_tolerance_matches():
    ref = pd.DataFrame({"start": [1.0], "end": [2.0]})
    est = pd.DataFrame({"start": [1.2], "end": [2.3]})
    table = boundary_agreement(ref, est, tolerance=0.2).set_index("kind")
    assert table["matched"].to_dict() == {"onset": 1, "offset": 0, "region": 0}


def test_pairwise_boundary_f1_is_symmetric():
    rng = np.random.default_rng(11)
    ref = random_regions(rng, 40, 80.0, ["speech"])
    regions = pd.concat(
        [
            ref.assign(annotator="ann"),
            jittered(rng, ref, 0.2, 80.0).assign(annotator="bob"),
            jittered(rng, ref, 0.3, 80.0).assign(annotator="cat"),
        ]
    )
    table = pairwise_boundary_agreement(regions)
    assert set(zip(table["rater_a"], table["rater_b"], strict=True)) == {
        ("ann", "bob"),
        ("ann", "cat"),
        ("bob", "cat"),
    }
    reverse = boundary_agreement(regions[regions.annotator == "cat"], regions[regions.annotator == "ann"])
    forward = table[(table.rater_a == "ann") & (table.rater_b == "cat")].reset_index(drop=True)
    assert forward["f1"].tolist() == pytest.approx(reverse["f1"].tolist())
    assert forward["precision"].tolist() == pytest.approx(reverse["recall"].tolist())


# --- frame kappa -----------------------------------------------------------------------------------


def frame_categories(regions: pd.DataFrame, duration: float, step: float = 0.01) -> list[str]:
    """Each frame's category as the sorted classes whose region holds its centre, frame by frame."""
    n = int(np.ceil(round(duration / step, 9)))
    out = []
    spans = list(regions[["start", "end", "label"]].itertuples(index=False))
    for i in range(n):
        centre = (i + 0.5) * step
        out.append("+".join(sorted({lab for s, e, lab in spans if s <= centre < e})) or "none")
    return out


def three_annotators(seed: int, duration: float, n: int = 25) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ref = random_regions(rng, n, duration, ["speech", "music"])
    return pd.concat(
        [
            ref.assign(annotator="ann"),
            jittered(rng, ref, 0.3, duration).assign(annotator="bob"),
            jittered(rng, ref, 0.5, duration).assign(annotator="cat"),
        ],
        ignore_index=True,
    )


@pytest.mark.parametrize("seed", range(3))
def test_frame_cohen_kappa_equals_sklearn_on_the_frames(seed):
    regions = three_annotators(seed, 40.0)
    table = frame_cohen_kappa(regions, durations=40.0).set_index(["rater_a", "rater_b"])
    cats = {a: frame_categories(g, 40.0) for a, g in regions.groupby("annotator")}
    for a, b in itertools.combinations(sorted(cats), 2):
        assert table.loc[(a, b), "kappa"] == pytest.approx(cohen_kappa_score(cats[a], cats[b]), abs=1e-12)
        agree = np.mean(np.array(cats[a]) == np.array(cats[b]))
        assert table.loc[(a, b), "agreement"] == pytest.approx(agree, abs=1e-12)
        assert table.loc[(a, b), "n_frames"] == 4000


@pytest.mark.parametrize("seed", range(3))
def test_frame_fleiss_kappa_equals_statsmodels_over_several_recordings(seed):
    parts, frames = [], []
    durations = {"r1": 30.0, "r2": 17.333, "r3": 25.0}
    for k, (rec, duration) in enumerate(durations.items()):
        regions = three_annotators(seed * 10 + k, duration, n=15).assign(recording_id=rec)
        parts.append(regions)
        frames.append(np.array([frame_categories(g, duration) for _, g in regions.groupby("annotator")]).T)
    # A recording where one annotator marked nothing: all of its frames are "none" for them.
    quiet = three_annotators(99, 12.0, n=8).query("annotator != 'cat'").assign(recording_id="r4")
    parts.append(quiet)
    by_rater = {a: frame_categories(g, 12.0) for a, g in quiet.groupby("annotator")}
    frames.append(np.array([by_rater["ann"], by_rater["bob"], ["none"] * 1200]).T)
    durations["r4"] = 12.0
    regions = pd.concat(parts, ignore_index=True)
    all_frames = np.concatenate(frames)
    table, _ = aggregate_raters(all_frames)
    expected = sm_fleiss_kappa(table)
    assert frame_fleiss_kappa(regions, durations=durations) == pytest.approx(expected, abs=1e-12)
    per_item = frame_agreement_by_item(regions, durations=durations)
    for rec, block in zip(durations, frames, strict=True):
        counts, _ = aggregate_raters(block)
        assert per_item.loc[rec, "fleiss_kappa"] == pytest.approx(sm_fleiss_kappa(counts), abs=1e-12)
        assert per_item.loc[rec, "n_frames"] == len(block)
        assert per_item.loc[rec, "unanimous"] == pytest.approx(np.mean((block == block[:, :1]).all(axis=1)))
    assert per_item["fleiss_kappa"].is_monotonic_increasing


def test_identical_annotators_agree_perfectly_and_one_annotator_is_refused():
    rng = np.random.default_rng(5)
    ref = random_regions(rng, 20, 30.0, ["speech", "music"])
    regions = pd.concat([ref.assign(annotator="a"), ref.assign(annotator="b")])
    assert frame_fleiss_kappa(regions, durations=30.0) == pytest.approx(1.0)
    assert frame_cohen_kappa(regions, durations=30.0).loc[0, "kappa"] == pytest.approx(1.0)
    assert unitizing_alpha(regions, durations=30.0).alpha == pytest.approx(1.0)
    with pytest.raises(RegionError, match="at least two annotators"):
        frame_fleiss_kappa(ref.assign(annotator="a"), durations=30.0)


# --- Krippendorff's unitizing alpha ----------------------------------------------------------------


def krippendorff_2004() -> pd.DataFrame:
    """Content Analysis (2004) p. 254: observers i and j on the continuum 150-450, shifted to 0-300."""
    units = [
        ("i", "c", 225, 70), ("i", "c", 370, 30), ("j", "c", 220, 80), ("j", "c", 355, 20),
        ("j", "c", 400, 20), ("i", "k", 180, 60), ("i", "k", 300, 50), ("j", "k", 180, 60),
        ("j", "k", 300, 50),
    ]  # fmt: skip
    return pd.DataFrame(
        [(obs, cat, b - 150.0, b - 150.0 + length) for obs, cat, b, length in units],
        columns=["annotator", "label", "start", "end"],
    )


def test_unitizing_alpha_reproduces_krippendorffs_2004_worked_example():
    result = unitizing_alpha(krippendorff_2004(), durations=300.0, resolution=1.0)
    c, k = result.per_label.loc["c"], result.per_label.loc["k"]
    # Worked by hand: δ² = 50 (225-295 vs 220-300) + 850 (370-400 vs 355-375) + 400 (j's 400-420 inside
    # i's gap 400-450), for both orders of the pair, over m(m-1)L² = 2·300².
    assert c["observed"] == pytest.approx(2 * 1300 / (2 * 300**2), abs=1e-15)
    # Published: uDo_c = .0144, uDe_c = .0532, uα_c = .7286; uDo_k = 0, uDe_k = .0490, uα_k = 1.
    assert c["observed"] == pytest.approx(0.0144, abs=5e-5)
    assert c["expected"] == pytest.approx(0.0532, abs=5e-5)
    assert c["alpha"] == pytest.approx(0.7286, abs=5e-5)
    assert k["observed"] == 0.0
    assert k["expected"] == pytest.approx(0.0490, abs=5e-5)
    assert k["alpha"] == 1.0
    # Published uα = .8591, from the rounded figures: 1 - .0144 / (.0532 + .0490).
    assert result.alpha == pytest.approx(0.8591, abs=5e-4)
    assert result.alpha == pytest.approx(1 - c["observed"] / (c["expected"] + k["expected"]), abs=1e-15)


def krippendorff_1995() -> pd.DataFrame:
    """Sociological Methodology (1995) p. 57: four pairs of observers, 0/1 on a continuum of 24."""
    units = {
        "A": [(0, 2, 8), (0, 14, 6), (1, 4, 4), (1, 15, 2)],
        "B": [(0, 0, 18), (1, 0, 2), (1, 2, 1), (1, 3, 1), (1, 4, 1), (1, 5, 1), (1, 6, 3), (1, 9, 1)],
        "C": [(0, 2, 6), (0, 10, 2), (0, 14, 4), (0, 20, 2), (1, 0, 2), (1, 4, 4), (1, 10, 4), (1, 16, 2),
              (1, 20, 2)],
        "D": [(0, 0, 2), (0, 2, 8), (0, 10, 4), (0, 14, 6), (0, 20, 4), (1, 0, 4), (1, 4, 4), (1, 8, 7),
              (1, 15, 2), (1, 17, 7)],
    }  # fmt: skip
    rows = [(f"{pair}{obs}", pair, float(b), float(b + n)) for pair, us in units.items() for obs, b, n in us]
    return pd.DataFrame(rows, columns=["annotator", "label", "start", "end"])


@pytest.mark.parametrize(
    ("pair", "observed", "alpha"),
    [("A", 18 / 576, 0.553), ("B", 1306 / 576, -0.926), ("C", 16 / 576, 0.679), ("D", 223 / 576, 0.066)],
)
def test_unitizing_alpha_reproduces_krippendorffs_1995_examples(pair, observed, alpha):
    data = krippendorff_1995()
    regions = data[data["label"] == pair]
    # Observed disagreement does not depend on the resolution; Jill's touching units in B stay apart.
    coarse = unitizing_alpha(regions, durations=24.0, resolution=1.0).per_label.loc[pair]
    assert coarse["observed"] == pytest.approx(observed, abs=1e-12)
    # The published alphas are for a finely divided continuum; Krippendorff's own figures carry a
    # small error in the expected disagreement (noted by DKPro), hence the tolerance of .02.
    fine = unitizing_alpha(regions, durations=24.0, resolution=24 / 1_200_000).per_label.loc[pair]
    assert fine["observed"] == pytest.approx(observed, abs=1e-9)
    assert fine["alpha"] == pytest.approx(alpha, abs=0.02)


def test_a_class_only_one_annotator_used_is_all_disagreement_not_an_error():
    # ana hears music at 40-50 s; ben hears none (he called it speech). For "music", ana's unit lies in
    # ben's gap, which holds it: δ² = 10² once for each order of the pair, over m(m-1)L² = 2·100².
    regions = pd.DataFrame(
        [("ana", "music", 40.0, 50.0), ("ana", "speech", 0.0, 30.0), ("ben", "speech", 0.0, 30.0),
         ("ben", "speech", 40.0, 50.0)],
        columns=["annotator", "label", "start", "end"],
    )  # fmt: skip
    result = unitizing_alpha(regions, durations=100.0, resolution=1.0)
    assert result.per_label.loc["music", "observed"] == pytest.approx(2 * 100 / (2 * 100**2), abs=1e-15)
    assert result.per_label.loc["music", "n_units"] == 1
    assert result.per_label.loc["speech", "n_units"] == 3
    report = region_agreement(regions, durations=100.0)
    assert report.unitizing.per_label.index.tolist() == ["music", "speech"]


def test_unitizing_alpha_lays_recordings_end_to_end():
    two = krippendorff_2004().assign(recording_id="x")
    shifted = krippendorff_2004().assign(recording_id="y")
    both = unitizing_alpha(pd.concat([two, shifted]), durations={"x": 300.0, "y": 300.0}, resolution=1.0)
    # The same data twice: observed disagreement is the same share of the (doubled) continuum squared.
    one = unitizing_alpha(two, durations={"x": 300.0}, resolution=1.0)
    assert both.per_label.loc["c", "observed"] == pytest.approx(one.per_label.loc["c", "observed"] / 2)
    assert both.per_label.loc["c", "n_units"] == 10
    assert 0.5 < both.alpha < 1.0


# --- DER and JER -----------------------------------------------------------------------------------


def annotation(regions: pd.DataFrame) -> Annotation:
    out = Annotation()
    for i, r in enumerate(regions.itertuples()):
        out[Segment(r.start, r.end), i] = r.label
    return out


def speakers(rng: np.random.Generator, n: int, duration: float, names: list[str]) -> pd.DataFrame:
    # pyannote counts a speaker's own overlapping turns twice; we merge them, so the references do too.
    return normalise_regions(random_regions(rng, n, duration, names), by=["label"])


@pytest.mark.parametrize(("collar", "skip_overlap"), [(0.0, False), (0.5, False), (0.0, True), (0.25, True)])
def test_der_and_jer_equal_pyannote_metrics(collar, skip_overlap):
    rng = np.random.default_rng(int(collar * 100) + skip_overlap)
    der_metric = DiarizationErrorRate(collar=collar, skip_overlap=skip_overlap)
    jer_metric = JaccardErrorRate(collar=collar, skip_overlap=skip_overlap)
    refs, hyps, durations, per_file = [], [], {}, {}
    for k in range(6):
        duration = 60.0 + 10 * k
        ref = speakers(rng, 18, duration, ["A", "B", "C"])
        hyp = speakers(rng, 22, duration, ["s1", "s2", "s3", "s4"])
        uem = Timeline([Segment(0, duration)])
        per_file[f"rec{k}"] = der_metric(annotation(ref), annotation(hyp), uem=uem)
        jer_metric(annotation(ref), annotation(hyp), uem=uem)
        refs.append(ref.assign(recording_id=f"rec{k}"))
        hyps.append(hyp.assign(recording_id=f"rec{k}"))
        durations[f"rec{k}"] = duration
    ours = diarization_error(
        pd.concat(refs), pd.concat(hyps), durations=durations, collar=collar, skip_overlap=skip_overlap
    )
    expected = der_metric[:]
    total = ours.loc["total"]
    assert total["der"] == pytest.approx(abs(der_metric), abs=1e-9)
    names = {"missed": "missed detection", "false_alarm": "false alarm", "confusion": "confusion"}
    for ours_name, theirs in {**names, "total": "total", "correct": "correct"}.items():
        assert total[ours_name] == pytest.approx(expected[theirs], abs=1e-9)
    assert ours["der"].drop("total").to_dict() == pytest.approx(per_file, abs=1e-9)
    jer = jaccard_error(
        pd.concat(refs), pd.concat(hyps), durations=durations, collar=collar, skip_overlap=skip_overlap
    )
    assert jer.loc["total", "jer"] == pytest.approx(abs(jer_metric), abs=1e-9)


def test_der_without_durations_evaluates_the_extent_of_both_like_pyannote():
    rng = np.random.default_rng(21)
    ref = speakers(rng, 10, 30.0, ["A", "B"])
    hyp = speakers(rng, 12, 30.0, ["x", "y", "z"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyannote warns that it approximates the UEM
        expected = DiarizationErrorRate()(annotation(ref), annotation(hyp))
        expected_jer = JaccardErrorRate()(annotation(ref), annotation(hyp))
    assert diarization_error(ref, hyp).loc["total", "der"] == pytest.approx(expected, abs=1e-9)
    assert jaccard_error(ref, hyp).loc["total", "jer"] == pytest.approx(expected_jer, abs=1e-9)


def test_relabelled_speakers_cost_nothing_and_pairwise_der_runs_over_annotators():
    rng = np.random.default_rng(4)
    ref = speakers(rng, 15, 40.0, ["A", "B", "C"])
    renamed = ref.assign(label=ref["label"].map({"A": "spk2", "B": "spk0", "C": "spk1"}))
    table = diarization_error(ref, renamed, durations=40.0)
    assert table.loc["total", "der"] == 0.0
    assert table.loc["total", "correct"] == pytest.approx(table.loc["total", "total"])
    regions = pd.concat([ref.assign(annotator="a"), renamed.assign(annotator="b")])
    pairs = pairwise_diarization_error(regions, durations=40.0)
    assert pairs[["rater_a", "rater_b", "der", "jer"]].values.tolist() == [["a", "b", 0.0, 0.0]]


def test_the_report_gathers_the_same_figures_as_the_single_functions():
    regions = pd.concat(
        [three_annotators(40 + k, 30.0, n=12).assign(recording_id=f"r{k}") for k in range(3)],
        ignore_index=True,
    )
    report = region_agreement(regions, durations=30.0)
    assert report.fleiss_kappa == frame_fleiss_kappa(regions, durations=30.0)
    pd.testing.assert_frame_equal(report.cohen_kappa, frame_cohen_kappa(regions, durations=30.0))
    pd.testing.assert_frame_equal(report.by_item, frame_agreement_by_item(regions, durations=30.0))
    pd.testing.assert_frame_equal(report.boundaries, pairwise_boundary_agreement(regions))
    assert report.unitizing.alpha == unitizing_alpha(regions, durations=30.0).alpha


# --- annotators who overlap only partly ----------------------------------------------------------

# r1 by ann and bob, r2 by bob and cat, r3 by all three: every pair shares some recordings, no
# annotator did them all.
PARTIAL = {"r1": (["ann", "bob"], 30.0), "r2": (["bob", "cat"], 25.0), "r3": (["ann", "bob", "cat"], 20.0)}


def partial_design() -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    parts = []
    for k, (rec, (who, duration)) in enumerate(PARTIAL.items()):
        regions = three_annotators(200 + k, duration, n=12)
        mine = regions[regions["annotator"].isin(["ann", "bob", "cat"][: len(who)])]
        renamed = mine["annotator"].map(dict(zip(["ann", "bob", "cat"], who, strict=False)))
        parts.append(mine.assign(annotator=renamed, recording_id=rec))
    regions = pd.concat(parts, ignore_index=True)
    annotated = pd.DataFrame(
        [(rec, a) for rec, (who, _) in PARTIAL.items() for a in who], columns=["recording_id", "annotator"]
    )
    return regions, annotated, {rec: d for rec, (_, d) in PARTIAL.items()}


def test_pairs_are_compared_on_the_recordings_both_annotated():
    regions, annotated, durations = partial_design()
    report = region_agreement(regions, durations=durations, annotated=annotated)
    cohen = report.cohen_kappa.set_index(["rater_a", "rater_b"])
    shared = {("ann", "bob"): ["r1", "r3"], ("ann", "cat"): ["r3"], ("bob", "cat"): ["r2", "r3"]}
    for (a, b), recs in shared.items():
        cats = {
            who: [
                c
                for r in recs
                for c in frame_categories(
                    regions[(regions.recording_id == r) & (regions.annotator == who)], durations[r]
                )
            ]
            for who in (a, b)
        }
        assert cohen.loc[(a, b), "kappa"] == pytest.approx(cohen_kappa_score(cats[a], cats[b]), abs=1e-12)
        assert cohen.loc[(a, b), "n_recordings"] == len(recs)
        assert cohen.loc[(a, b), "n_frames"] == len(cats[a])
        onsets = report.boundaries.set_index(["rater_a", "rater_b", "kind"]).loc[(a, b, "onset")]
        of = {who: regions[regions.annotator == who] for who in (a, b)}
        assert onsets["matched"] == sum(
            onsets_matched(of[a][of[a].recording_id == r], of[b][of[b].recording_id == r]) for r in recs
        )
        assert onsets["n_reference"] == int(of[a]["recording_id"].isin(recs).sum())
        assert onsets["n_recordings"] == len(recs)


def test_pairwise_der_covers_only_the_shared_recordings_like_pyannote():
    regions, annotated, durations = partial_design()
    table = pairwise_diarization_error(regions, durations=durations, annotated=annotated)
    row = table.set_index(["rater_a", "rater_b"]).loc[("bob", "cat")]
    metric = DiarizationErrorRate()
    for rec in ("r2", "r3"):
        part = regions[regions.recording_id == rec]
        ref = normalise_regions(part[part.annotator == "bob"], by=["label"])
        hyp = normalise_regions(part[part.annotator == "cat"], by=["label"])
        metric(annotation(ref), annotation(hyp), uem=Timeline([Segment(0, durations[rec])]))
    assert row["der"] == pytest.approx(abs(metric), abs=1e-9)
    assert row["n_recordings"] == 2


def gwet_fleiss(frames: list[list[str | None]]) -> float:
    """Fleiss' kappa with missing ratings (None), frame by frame as Gwet's handbook writes it: observed
    agreement averaged over frames with two or more ratings, category shares averaged over rated frames."""
    cats = sorted({c for f in frames for c in f if c is not None})
    agree, shares = [], []
    for f in frames:
        rated = [c for c in f if c is not None]
        if not rated:
            continue
        shares.append([rated.count(c) / len(rated) for c in cats])
        if len(rated) >= 2:
            m = len(rated)
            agree.append((sum(rated.count(c) ** 2 for c in cats) - m) / (m * (m - 1)))
    p_a = float(np.mean(agree))
    p_e = float(np.sum(np.mean(shares, axis=0) ** 2))
    return (p_a - p_e) / (1 - p_e)


def test_fleiss_kappa_takes_each_recording_among_its_own_annotators():
    regions, annotated, durations = partial_design()
    report = region_agreement(regions, durations=durations, annotated=annotated)
    frames: list[list[str | None]] = []
    for rec, (who, duration) in PARTIAL.items():
        part = regions[regions.recording_id == rec]
        block = np.array([frame_categories(part[part.annotator == a], duration) for a in who]).T
        counts, _ = aggregate_raters(block)
        row = report.by_item.loc[rec]
        assert row["fleiss_kappa"] == pytest.approx(sm_fleiss_kappa(counts), abs=1e-12)
        assert row["n_annotators"] == len(who)
        assert row["unanimous"] == pytest.approx(np.mean((block == block[:, :1]).all(axis=1)))
        column = {a: list(block[:, i]) for i, a in enumerate(who)}
        frames += [
            [column[a][i] if a in column else None for a in ("ann", "bob", "cat")] for i in range(len(block))
        ]
    assert report.fleiss_kappa == pytest.approx(gwet_fleiss(frames), abs=1e-12)


def test_unitizing_alpha_with_different_annotators_per_recording():
    example = krippendorff_2004()
    # x by i and j, y by j and k (k draws what i drew): two annotators on each recording, so uα is
    # that of the same data with the same two names everywhere.
    y = example.assign(annotator=example["annotator"].map({"i": "k", "j": "j"}))
    regions = pd.concat([example.assign(recording_id="x"), y.assign(recording_id="y")], ignore_index=True)
    annotated = regions[["recording_id", "annotator"]].drop_duplicates()
    durations = {"x": 300.0, "y": 300.0}
    ours = unitizing_alpha(regions, durations=durations, resolution=1.0, annotated=annotated)
    same_two = pd.concat([example.assign(recording_id="x"), example.assign(recording_id="y")])
    reference = unitizing_alpha(same_two, durations=durations, resolution=1.0)
    pd.testing.assert_frame_equal(ours.per_label, reference.per_label, rtol=1e-12)
    # By hand, three annotators on x (k a copy of i) and two on y: x's pairs (i,j), (i,k), (j,k) give
    # δ² 1300, 0, 1300 at weight 1/(3-1); y's pair (i,j) 1300 at weight 1; over Σm_r·L_r · L = 1500 · 600.
    k_on_x = example[example.annotator == "i"].assign(annotator="k")
    three = pd.concat(
        [example.assign(recording_id="x"), k_on_x.assign(recording_id="x"), example.assign(recording_id="y")],
        ignore_index=True,
    )
    result = unitizing_alpha(
        three,
        durations=durations,
        resolution=1.0,
        annotated=three[["recording_id", "annotator"]].drop_duplicates(),
    )
    assert result.per_label.loc["c", "observed"] == pytest.approx(
        2 * (1300 / 2 * 2 + 1300) / (1500 * 600), abs=1e-15
    )
    # Without saying who annotated what, k would be read as marking nothing on y.
    assert (
        unitizing_alpha(three, durations=durations, resolution=1.0).per_label.loc["c", "observed"]
        > (result.per_label.loc["c", "observed"])
    )
