"""Regions on long recordings: validation, normalisation, overlaps and frames.

Frame references are computed here frame by frame from the rule "a frame belongs to a region when its
centre lies in [start, end)", not with the vectorised code under test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.regions import (
    Region,
    RegionError,
    frame_count,
    normalise_regions,
    rasterise,
    region_overlaps,
    regions_frame,
    validate_regions,
)


def test_region_refuses_backwards_negative_and_infinite_spans():
    assert Region(1.0, 2.5, "speech").duration == pytest.approx(1.5)
    with pytest.raises(RegionError, match="start before it ends"):
        Region(2.0, 2.0, "speech")
    with pytest.raises(RegionError, match="before the recording"):
        Region(-0.1, 1.0, "speech")
    with pytest.raises(RegionError, match="finite"):
        Region(0.0, float("inf"), "speech")


def test_regions_frame_keeps_the_fields_in_order():
    frame = regions_frame([Region(0.5, 1.0, "speech", "ann", "hello"), Region(2.0, 3.0, "music")])
    assert list(frame.columns) == ["start", "end", "label", "annotator", "text"]
    assert frame["start"].tolist() == [0.5, 2.0]
    assert frame.loc[0, "text"] == "hello"
    assert frame["start"].dtype == np.float64


def test_validation_names_every_bad_row_and_returns_nothing_half_checked():
    bad = pd.DataFrame(
        {
            "start": [0.0, -1.0, 5.0, 2.0, 1.0],
            "end": [1.0, 2.0, 4.0, 12.0, np.nan],
            "label": ["speech", "speech", "speech", None, "speech"],
        }
    )
    with pytest.raises(RegionError) as err:
        validate_regions(bad, duration=10.0)
    message = str(err.value)
    assert "starts before 0 s (rows 1)" in message
    assert "does not start before it ends (rows 2, 4)" in message
    assert "ends after the recording (rows 3)" in message
    assert "missing label (rows 3)" in message
    assert "not finite (rows 4)" in message


def test_validation_checks_each_recording_against_its_own_duration():
    regions = pd.DataFrame(
        {"recording_id": ["a", "b"], "start": [0.0, 0.0], "end": [8.0, 8.0], "label": ["s", "s"]}
    )
    with pytest.raises(RegionError, match=r"ends after the recording \(rows 1\)"):
        validate_regions(regions, duration={"a": 10.0, "b": 5.0})
    with pytest.raises(RegionError, match="no duration for recording_id"):
        validate_regions(regions, duration={"a": 10.0})
    clean = validate_regions(regions, duration={"a": 10.0, "b": 8.0000001})
    assert clean is not regions
    assert clean["end"].tolist() == [8.0, 8.0]


def test_validation_reports_missing_columns():
    with pytest.raises(RegionError, match=r"\['label'\]"):
        validate_regions(pd.DataFrame({"start": [0.0], "end": [1.0]}))


def test_normalise_merges_touching_and_overlapping_regions_of_one_annotator_and_label():
    regions = pd.DataFrame(
        {
            "annotator": ["ann", "ann", "ann", "ann", "bob", "ann"],
            "start": [0.0, 1.0, 1.5, 5.0, 0.5, 0.2],
            "end": [1.0, 2.0, 1.8, 6.0, 1.5, 0.9],
            "label": ["speech", "speech", "speech", "speech", "speech", "music"],
            "text": ["good", "morning", None, "bye", "hi", None],
        }
    )
    out = normalise_regions(regions)
    assert out[["annotator", "label", "start", "end"]].values.tolist() == [
        ["ann", "music", 0.2, 0.9],
        ["ann", "speech", 0.0, 2.0],
        ["ann", "speech", 5.0, 6.0],
        ["bob", "speech", 0.5, 1.5],
    ]
    assert out.loc[1, "text"] == "good morning"
    # The input is left as it was.
    assert len(regions) == 6
    assert regions.loc[1, "start"] == 1.0


def test_normalise_can_keep_touching_units_apart_and_clips_to_the_recording():
    regions = pd.DataFrame(
        {"start": [-0.5, 1.0, 9.0, 11.0], "end": [1.0, 2.0, 12.0, 13.0], "label": ["s", "s", "s", "s"]}
    )
    out = normalise_regions(regions, duration=10.0, touching=False)
    assert out[["start", "end"]].values.tolist() == [[0.0, 1.0], [1.0, 2.0], [9.0, 10.0]]
    merged = normalise_regions(regions, duration=10.0)
    assert merged[["start", "end"]].values.tolist() == [[0.0, 2.0], [9.0, 10.0]]


def test_a_long_region_swallows_the_short_ones_inside_it():
    regions = pd.DataFrame({"start": [0.0, 1.0, 2.0, 9.0], "end": [8.0, 2.0, 3.0, 10.0], "label": ["s"] * 4})
    out = normalise_regions(regions, touching=False)
    assert out[["start", "end"]].values.tolist() == [[0.0, 8.0], [9.0, 10.0]]


def test_overlaps_are_found_within_each_annotator_only():
    regions = pd.DataFrame(
        {
            "annotator": ["a", "a", "a", "b", "a"],
            "start": [0.0, 0.5, 2.0, 0.0, 3.0],
            "end": [1.0, 3.0, 2.5, 5.0, 4.0],
            "label": ["A", "B", "A", "A", "C"],
        },
        index=[10, 11, 12, 13, 14],
    )
    pairs = region_overlaps(regions)
    found = {(int(r.first), int(r.second)): (r.start, r.end) for r in pairs.itertuples()}
    # 0-1 overlaps 0.5-3 and 0.5-3 holds 2-2.5; 3-4 only touches 0.5-3; annotator b is alone.
    assert found == {(10, 11): (0.5, 1.0), (11, 12): (2.0, 2.5)}
    assert pairs["overlap"].tolist() == pytest.approx([0.5, 0.5])


def frames_by_centre(regions: pd.DataFrame, duration: float, step: float, labels: list[str]) -> np.ndarray:
    n = int(np.ceil(round(duration / step, 9)))
    out = np.zeros((n, len(labels)), dtype=bool)
    for i in range(n):
        centre = (i + 0.5) * step
        for r in regions.itertuples():
            if r.start <= centre < r.end:
                out[i, labels.index(r.label)] = True
    return out


def test_frames_follow_the_centre_rule_for_every_class():
    rng = np.random.default_rng(3)
    n = 40
    start = np.round(rng.uniform(0, 9, n), 3)
    regions = pd.DataFrame(
        {
            "start": start,
            "end": np.minimum(start + np.round(rng.uniform(0.004, 1.5, n), 3), 9.995),
            "label": rng.choice(["music", "noise", "speech"], n),
        }
    )
    raster = rasterise(regions, duration=9.995, step=0.01, labels=["music", "noise", "speech"])
    assert raster.active.shape == (1000, 3)
    expected = frames_by_centre(regions, 9.995, 0.01, ["music", "noise", "speech"])
    np.testing.assert_array_equal(raster.active, expected)
    assert raster.times[:3].tolist() == pytest.approx([0.0, 0.01, 0.02])
    np.testing.assert_array_equal(raster.column("noise"), expected[:, 1])


def test_frame_boundaries_at_round_times_land_on_the_right_frame():
    # 0.3 / 0.01 is 29.999999999999996 in floating point: the region still starts at frame 30.
    raster = rasterise(pd.DataFrame({"start": [0.3], "end": [0.7], "label": ["s"]}), duration=1.0)
    assert np.flatnonzero(raster.active[:, 0]).tolist() == list(range(30, 70))
    assert [frame_count(1.0), frame_count(1.001), frame_count(0.0)] == [100, 101, 0]


def test_rasterise_refuses_a_label_outside_the_class_set():
    with pytest.raises(RegionError, match="outside"):
        rasterise(pd.DataFrame({"start": [0.0], "end": [1.0], "label": ["x"]}), duration=2.0, labels=["s"])
