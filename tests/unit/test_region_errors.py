"""Error analysis per region: a hand-worked example, pyannote.metrics' DER parts, and slice tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyannote.core import Annotation, Segment, Timeline
from pyannote.metrics.diarization import DiarizationErrorRate

from analysis.region_errors import (
    error_spans,
    per_class_region_table,
    region_errors,
    region_metadata_slices,
    region_slice_table,
    region_transcript_pairs,
    regions_from_posteriors,
)
from analysis.regions import RegionError, activity_regions, normalise_regions
from analysis.text import error_rates


def worked_example() -> tuple[pd.DataFrame, pd.DataFrame]:
    reference = pd.DataFrame(
        {
            "start": [0.0, 20.0, 40.0],
            "end": [10.0, 30.0, 50.0],
            "label": ["speech", "speech", "music"],
            "noisy": [1, 0, 1],
            "accent": ["scottish", "us", None],
        }
    )
    hypothesis = pd.DataFrame(
        {"start": [2.0, 20.0, 55.0], "end": [10.0, 25.0, 60.0], "label": ["speech", "music", "speech"]}
    )
    return reference, hypothesis


def test_each_region_gets_its_correct_missed_confused_and_invented_seconds():
    reference, hypothesis = worked_example()
    errors = region_errors(reference, hypothesis, durations=60.0)
    ref = errors[errors["side"] == "reference"].set_index("start")
    # 0-10 speech: the model says speech from 2 s. 20-30 speech: music for 5 s, then nothing.
    # 40-50 music: nothing at all.
    assert ref.loc[0.0, ["correct", "missed", "confusion"]].tolist() == [8.0, 2.0, 0.0]
    assert ref.loc[20.0, ["correct", "missed", "confusion"]].tolist() == [0.0, 5.0, 5.0]
    assert ref.loc[40.0, ["correct", "missed", "confusion"]].tolist() == [0.0, 10.0, 0.0]
    assert ref.loc[[0.0, 20.0, 40.0], "noisy"].tolist() == [1, 0, 1]  # the region's columns come along
    hyp = errors[errors["side"] == "hypothesis"].set_index("start")
    assert hyp["false_alarm"].to_dict() == {2.0: 0.0, 20.0: 0.0, 55.0: 5.0}
    assert errors["error"].sum() == pytest.approx(2 + 10 + 10 + 5)


def test_per_class_table_adds_up_the_worked_example():
    reference, hypothesis = worked_example()
    table = per_class_region_table(region_errors(reference, hypothesis))
    assert table.loc[
        "speech", ["n", "duration", "correct", "missed", "confusion", "false_alarm"]
    ].tolist() == [
        2,
        20.0,
        8.0,
        7.0,
        5.0,
        5.0,
    ]
    assert table.loc["speech", "error_rate"] == pytest.approx(17 / 20)
    assert table.loc["music", "error_rate"] == pytest.approx(1.0)


def test_slice_priority_is_gap_times_share_of_reference_time():
    reference, hypothesis = worked_example()
    errors = region_errors(reference, hypothesis)
    errors["clean"] = 1 - errors["noisy"].fillna(1)
    table = region_slice_table(
        errors, tag_cols=["noisy", "clean"], hlp={"noisy": 0.5, "clean": 0.1}
    ).set_index("tag")
    # Noisy: 20 s of reference, 2 + 10 s of error (the false alarm at 55 s has no tag), rate 0.6.
    assert table.loc["noisy", ["n", "duration", "share", "error_rate"]].tolist() == pytest.approx(
        [2, 20, 2 / 3, 0.6]
    )
    assert table.loc["noisy", "priority"] == pytest.approx((0.6 - 0.5) * 2 / 3)
    assert table.loc["clean", "error_rate"] == pytest.approx(1.0)
    assert table.loc["clean", "priority"] == pytest.approx(0.9 / 3)
    assert table.index[0] == "clean"
    assert table["error_share"].sum() == pytest.approx(22 / 27)


def test_metadata_slices_match_a_pandas_groupby():
    rng = np.random.default_rng(0)
    n = 200
    start = np.sort(rng.uniform(0, 900, n))
    reference = pd.DataFrame(
        {
            "start": start,
            "end": start + rng.uniform(0.5, 4, n),
            "label": "speech",
            "speaker": rng.choice(["a", "b", "c"], n),
        }
    )
    reference = normalise_regions(reference, by=["label"]).reset_index(drop=True)
    hypothesis = reference.assign(start=reference["start"] + rng.uniform(-0.3, 0.3, len(reference)))
    hypothesis = normalise_regions(hypothesis.drop(columns="speaker"), by=["label"])
    errors = region_errors(reference, hypothesis)
    table = region_metadata_slices(errors, cols=["speaker"]).set_index("tag")
    ref = errors[errors["side"] == "reference"]
    expected = ref.groupby("speaker").apply(
        lambda g: g["error"].sum() / g["duration"].sum(), include_groups=False
    )
    for speaker, rate in expected.items():
        assert table.loc[f"speaker={speaker}", "error_rate"] == pytest.approx(rate)
        assert table.loc[f"speaker={speaker}", "n"] == (ref["speaker"] == speaker).sum()


def annotation(regions: pd.DataFrame) -> Annotation:
    out = Annotation()
    for i, r in enumerate(regions.itertuples()):
        out[Segment(r.start, r.end), i] = r.label
    return out


def flat_turns(rng: np.random.Generator, n: int, duration: float, names: list[str]) -> pd.DataFrame:
    """Speaker turns that never overlap: cut points on the recording, a speaker or silence per turn."""
    cuts = np.sort(rng.uniform(0, duration, 2 * n))
    turns = pd.DataFrame({"start": cuts[0::2], "end": cuts[1::2], "label": rng.choice(names, n)})
    return turns


@pytest.mark.parametrize("seed", range(4))
def test_with_optimal_mapping_the_sums_are_pyannotes_der_parts(seed):
    rng = np.random.default_rng(seed)
    reference = flat_turns(rng, 30, 120.0, ["A", "B", "C"])
    hypothesis = flat_turns(rng, 35, 120.0, ["spk1", "spk2", "spk3", "spk4"])
    errors = region_errors(reference, hypothesis, durations=120.0, mapping="optimal")
    expected = DiarizationErrorRate()(
        annotation(reference), annotation(hypothesis), uem=Timeline([Segment(0, 120.0)]), detailed=True
    )
    assert errors["missed"].sum() == pytest.approx(expected["missed detection"], abs=1e-9)
    assert errors["false_alarm"].sum() == pytest.approx(expected["false alarm"], abs=1e-9)
    assert errors["confusion"].sum() == pytest.approx(expected["confusion"], abs=1e-9)
    assert errors["correct"].sum() == pytest.approx(expected["correct"], abs=1e-9)


def test_recordings_are_kept_apart():
    reference, hypothesis = worked_example()
    both_ref = pd.concat([reference.assign(recording_id="x"), reference.assign(recording_id="y")])
    only_x = hypothesis.assign(recording_id="x")
    errors = region_errors(both_ref, only_x)
    ref = errors[errors["side"] == "reference"]
    assert ref.groupby("recording_id")["missed"].sum().to_dict() == {"x": 17.0, "y": 30.0}
    with pytest.raises(RegionError, match="both or neither"):
        region_errors(both_ref, hypothesis)


def test_posteriors_become_regions_with_hysteresis_per_class():
    speech = [0.1, 0.6, 0.9, 0.45, 0.45, 0.8, 0.2, 0.1, 0.7, 0.1]
    music = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.9, 0.9, 0.9]
    regions = regions_from_posteriors(
        np.c_[speech, music], labels=["speech", "music"], step=0.1, onset=0.5, offset=0.4
    )
    got = [(round(r.start, 6), round(r.end, 6), r.label) for r in regions.itertuples()]
    # Speech holds above 0.4 from 0.1 s to 0.6 s (the dip to 0.45 does not split it); a blip at 0.8 s.
    assert got == [(0.1, 0.6, "speech"), (0.7, 1.0, "music"), (0.8, 0.9, "speech")]
    kept = regions_from_posteriors(
        np.c_[speech, music], labels=["speech", "music"], step=0.1, min_duration=0.2
    )
    assert set(kept["label"]) == {"speech", "music"}
    assert (kept["end"] - kept["start"] >= 0.2 - 1e-9).all()
    with pytest.raises(RegionError, match="shape"):
        regions_from_posteriors(np.zeros((5, 3)), labels=["speech"])


def test_activity_regions_close_short_gaps_before_dropping_short_regions():
    levels = [0, 9, 9, 0, 9, 0, 0, 0, 0, 9, 0]
    assert activity_regions(levels, high=5, step=1.0)[["start", "end"]].values.tolist() == [
        [1.0, 3.0],
        [4.0, 5.0],
        [9.0, 10.0],
    ]
    closed = activity_regions(levels, high=5, step=1.0, min_gap=2.0, min_duration=2.0)
    assert closed[["start", "end"]].values.tolist() == [[1.0, 5.0]]
    with pytest.raises(RegionError, match="must not exceed"):
        activity_regions(levels, high=1, low=2)


def test_region_transcripts_pair_by_overlap_and_count_every_word_once():
    ref = pd.DataFrame(
        {
            "recording_id": [1, 1],
            "start": [0.0, 5.0],
            "end": [4.0, 9.0],
            "label": ["speech", "speech"],
            "text": ["turn left now", "stop here"],
        }
    )
    # Two pieces of the first sentence, nothing over the second, a word where nobody spoke.
    hyp = pd.DataFrame(
        {
            "recording_id": [1, 1, 1],
            "start": [2.5, 0.2, 10.0],
            "end": [4.5, 2.4, 11.0],
            "label": ["speech"] * 3,
            "text": ["left", "turn", "hello"],
        }
    )
    pairs = region_transcript_pairs(ref, hyp)
    assert pairs[["reference_text", "hypothesis_text"]].values.tolist() == [
        ["turn left now", "turn left"],
        ["stop here", ""],
        ["", "hello"],
    ]
    rates = error_rates(pairs["reference_text"].tolist(), pairs["hypothesis_text"].tolist(), chars=False)
    # 1 deletion, 2 deletions, 1 insertion over 5 reference words.
    assert rates["word_errors"].sum() / rates["ref_words"].sum() == pytest.approx(4 / 5)


def test_error_spans_lie_where_a_listener_hears_each_error():
    # Final: speech 1–3 s, noise 5–6 s. Model: speech from 1.5 s (the first half second missed), a
    # speech burst at 3.5–4 s over silence (a false alarm), and speech where the final set has noise.
    reference = pd.DataFrame({"start": [1.0, 5.0], "end": [3.0, 6.0], "label": ["speech", "noise"]})
    hypothesis = pd.DataFrame({"start": [1.5, 3.5, 5.0], "end": [3.0, 4.0, 6.0], "label": ["speech"] * 3})
    errors = region_errors(reference, hypothesis)
    spans = error_spans(errors)
    assert spans[["kind", "start", "end", "reference", "hypothesis"]].to_numpy().tolist() == [
        ["missed", 1.0, 1.5, "speech", ""],
        ["false alarm", 3.5, 4.0, "", "speech"],
        ["confusion", 5.0, 6.0, "noise", "speech"],
    ]
    charged = errors.loc[spans["row"]]
    assert charged["side"].tolist() == ["reference", "hypothesis", "reference"]
    assert charged["start"].tolist() == [1.0, 3.5, 5.0]


@pytest.mark.parametrize("seed", range(3))
def test_error_spans_add_up_to_pyannotes_der_parts(seed):
    rng = np.random.default_rng(seed)
    reference = flat_turns(rng, 30, 120.0, ["A", "B", "C"])
    hypothesis = flat_turns(rng, 35, 120.0, ["spk1", "spk2", "spk3", "spk4"])
    spans = error_spans(region_errors(reference, hypothesis, durations=120.0, mapping="optimal"))
    expected = DiarizationErrorRate()(
        annotation(reference), annotation(hypothesis), uem=Timeline([Segment(0, 120.0)]), detailed=True
    )
    total = spans.groupby("kind")["duration"].sum()
    assert total.get("missed", 0.0) == pytest.approx(expected["missed detection"], abs=1e-9)
    assert total.get("false alarm", 0.0) == pytest.approx(expected["false alarm"], abs=1e-9)
    assert total.get("confusion", 0.0) == pytest.approx(expected["confusion"], abs=1e-9)
    assert (spans["end"] > spans["start"]).all()
