import math
import re

import numpy as np
import pytest
from scipy import stats

from analysis.shift import describe_change, hodges_lehmann


def two_humps(n: int, rng: np.random.Generator) -> np.ndarray:
    """Loudness like FSDD's: a quiet speaker (a third of the clips) far below three loud ones."""
    quiet = rng.random(n) < 0.35
    return np.where(quiet, rng.normal(-42, 3, n), rng.normal(-24, 4, n))


@pytest.mark.parametrize(("m", "n"), [(7, 5), (40, 31), (300, 50), (1100, 1000)])
def test_shift_is_the_median_of_all_pairwise_differences(m, n):
    # (1100, 1000) has more differences than are selected from directly: the bisection path.
    rng = np.random.default_rng(m)
    ref, bat = rng.normal(0, 1, m), rng.normal(0.4, 1.5, n)
    assert hodges_lehmann(ref, bat).estimate == pytest.approx(
        np.median(np.subtract.outer(bat, ref)), abs=1e-9
    )
    # Ties (counts) included.
    ref_i, bat_i = rng.integers(0, 6, m).astype(float), rng.integers(1, 7, n).astype(float)
    assert hodges_lehmann(ref_i, bat_i).estimate == np.median(np.subtract.outer(bat_i, ref_i))


def test_interval_is_the_textbook_one_under_a_pure_shift():
    # Lehmann's interval: the C-th smallest and largest difference, C = mn/2 - z sqrt(mn(m+n+1)/12).
    rng = np.random.default_rng(3)
    ref, bat = rng.normal(0, 1, 400), rng.normal(0.5, 1, 60)
    m, n = ref.size, bat.size
    diffs = np.sort(np.subtract.outer(bat, ref).ravel())
    c = math.floor(m * n / 2 - stats.norm.ppf(0.975) * math.sqrt(m * n * (m + n + 1) / 12))
    shift = hodges_lehmann(ref, bat)
    width = diffs[m * n - c] - diffs[c - 1]
    assert shift.low == pytest.approx(diffs[c - 1], abs=0.05 * width)
    assert shift.high == pytest.approx(diffs[m * n - c], abs=0.05 * width)
    assert shift.moved


@pytest.mark.parametrize("batch_sd", [1.0, 2.5])
def test_interval_covers_the_true_shift_95_times_in_100_even_when_the_spread_differs(batch_sd):
    rng = np.random.default_rng(int(10 * batch_sd))
    covered = 0
    for _ in range(400):
        shift = hodges_lehmann(rng.normal(0, 1, 500), rng.normal(0.3, batch_sd, 50))
        covered += shift.low <= 0.3 <= shift.high
    assert 0.92 <= covered / 400 <= 0.98


def test_a_gain_on_two_humped_loudness_reads_as_the_gain():
    rng = np.random.default_rng(5)
    shifts, medians = [], []
    for _ in range(200):
        ref, bat = two_humps(500, rng), two_humps(50, rng) - 10.0
        shifts.append(hodges_lehmann(ref, bat).estimate + 10)
        medians.append(np.median(bat) - np.median(ref) + 10)
    shift_err, median_err = np.array(shifts), np.array(medians)
    # The difference of medians, which the reasons used to print, jumps between the humps: a -10 dB
    # gain read as -13 dB or worse in one batch in twelve; the shift almost never.
    assert np.mean(np.abs(median_err) > 3) > 0.04
    assert np.mean(np.abs(shift_err) > 3) < 0.02
    assert np.sqrt(np.mean(shift_err**2)) < 0.7 * np.sqrt(np.mean(median_err**2))

    change = describe_change(
        two_humps(1000, rng), two_humps(200, rng) - 10.0, label="Loudness (RMS)", unit="dB"
    )
    found = re.fullmatch(
        r"Loudness \(RMS\) −(\d+\.\d) dB \(95% CI −(\d+\.\d) to −(\d+\.\d)\)", change.sentence
    )
    assert found, change.sentence
    estimate, low, high = (-float(g) for g in found.groups())
    assert low <= -10 <= high
    assert abs(estimate + 10) < 1


def test_a_wider_spread_with_the_same_median_is_said_as_such():
    rng = np.random.default_rng(8)
    ref, bat = rng.normal(125, 28, 1000), rng.normal(125, 45, 200)
    change = describe_change(ref, bat, label="Pitch (median F0)", unit="Hz", decimals=0)
    iqr = [np.subtract(*np.percentile(x, [75, 25])) for x in (ref, bat)]
    assert change.sentence == (
        f"Pitch (median F0) spread wider (IQR {iqr[0]:.0f} → {iqr[1]:.0f} Hz), median unchanged"
    )
    assert not change.shift.moved


def test_a_heavier_tail_is_said_with_the_share_beyond_the_reference_percentile():
    rng = np.random.default_rng(2)
    ref = rng.normal(125, 20, 1000)
    bat = np.concatenate([rng.normal(125, 20, 135), rng.normal(230, 10, 15)])
    change = describe_change(ref, bat, label="Pitch (median F0)", unit="Hz", decimals=0)
    p95 = np.percentile(ref, 95)
    share = np.mean(bat > p95)
    assert change.sentence == (
        f"Pitch (median F0) upper tail heavier ({100 * share:.0f}% of clips above the reference's 95th "
        f"percentile of {p95:.0f} Hz, against 5%), median unchanged"
    )


def test_a_change_in_the_share_of_zeros_is_said_as_a_share():
    rng = np.random.default_rng(11)
    ref = np.concatenate([np.zeros(100), rng.gamma(2.0, 60.0, 900)])
    bat = np.concatenate([np.zeros(45), rng.gamma(2.0, 60.0, 55)])
    change = describe_change(ref, bat, label="Leading silence", unit="ms", decimals=0)
    assert change.sentence.startswith("Leading silence none in 10% → 45% of clips")
    assert change.sentence.endswith("median of the others unchanged")
    assert change.atoms[0]["p"] == pytest.approx(stats.fisher_exact([[100, 900], [45, 55]]).pvalue)


def test_values_at_the_bounds_are_censored_shares_not_values():
    rng = np.random.default_rng(12)
    ref = np.concatenate([np.full(360, 100.0), rng.normal(15, 8, 640)])
    bat = np.concatenate([np.full(2, 100.0), rng.normal(15, 8, 48)])
    change = describe_change(
        ref, bat, label="SNR (WADA)", unit="dB", bounds=(-20.0, 100.0),
        bound_names=("at the table's bottom (≤ -20 dB)", "at the table's top (≥ 100 dB)"),
    )  # fmt: skip
    assert change.sentence.startswith("SNR (WADA) at the table's top (≥ 100 dB) in 36% → 4% of clips")
    # The shift is of the values within the table only.
    assert change.shift.estimate == pytest.approx(
        np.median(np.subtract.outer(bat[bat < 100], ref[ref < 100]))
    )
    assert change.reference["p50"] == pytest.approx(np.median(ref[ref < 100]))
