"""``earmark agreement --from-csv``: the agreement report of any long CSV, and clear refusals of bad files.

References: Krippendorff (2011) "Computing Krippendorff's Alpha-Reliability" (4 observers x 12 units,
nominal alpha 0.743), and the `krippendorff`, `statsmodels` and `scikit-learn` packages.
"""

from __future__ import annotations

import json
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from labeling.cli import main

# Krippendorff (2011), section C: observers A-D, units 1-12; None is a missing rating.
K2011 = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
}


def _write(path: Path, rows: dict[str, list], *, header: str = "unit,coder,value") -> Path:
    lines = [header]
    for coder, values in rows.items():
        lines += [f"{u},{coder},{'' if v is None else v}" for u, v in enumerate(values, 1)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["agreement", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _json(capsys, *args: str) -> dict:
    code, out, err = _run(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


COLS = ("--item", "unit", "--rater", "coder", "--value", "value")


def test_krippendorff_2011_worked_example_gives_0_743(tmp_path, capsys):
    csv = _write(tmp_path / "k2011.csv", K2011)
    report = _json(capsys, "--from-csv", str(csv), *COLS, "--n-boot", "200")
    assert report["krippendorff_alpha"] == pytest.approx(0.743, abs=5e-4)
    assert report["n_items"] == 12
    assert report["n_raters"] == 4
    # Units have different numbers of ratings: Fleiss' kappa does not apply and says so with null.
    assert report["fleiss_kappa"] is None
    lo, hi = report["krippendorff_alpha_ci"]
    assert lo <= report["krippendorff_alpha"] <= hi
    assert {"percent_agreement", "cohen_kappa_pairs"} <= set(report)

    code, text, _ = _run(capsys, "--from-csv", str(csv), *COLS, "--n-boot", "0")
    assert code == 0
    assert "alpha (nominal): 0.743" in text
    assert "Fleiss' kappa: n/a" in text


def test_pairwise_kappas_match_scikit_learn(tmp_path, capsys):
    csv = _write(tmp_path / "k2011.csv", K2011)
    pairs = _json(capsys, "--from-csv", str(csv), *COLS, "--n-boot", "0")["cohen_kappa_pairs"]
    assert len(pairs) == 6
    for pair in pairs:
        a, b = K2011[pair["rater_a"]], K2011[pair["rater_b"]]
        shared = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
        assert pair["n"] == len(shared)
        expected = cohen_kappa_score([str(x) for x, _ in shared], [str(y) for _, y in shared])
        assert pair["kappa"] == pytest.approx(expected)


def test_complete_ratings_give_fleiss_kappa_as_statsmodels(tmp_path, capsys):
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 4, 40)
    ratings = {
        f"r{j}": [int(t) if rng.random() < 0.7 else int(rng.integers(0, 4)) for t in truth] for j in range(5)
    }
    csv = _write(tmp_path / "full.csv", ratings, header="clip_id,annotator,label")
    report = _json(capsys, "--from-csv", str(csv), "--n-boot", "0")
    table, _ = aggregate_raters(np.array([ratings[f"r{j}"] for j in range(5)]).T)
    assert report["fleiss_kappa"] == pytest.approx(sm_fleiss_kappa(table, method="fleiss"))
    assert report["n_items"] == 40
    assert report["n_raters"] == 5


def test_interval_level_matches_the_krippendorff_package(tmp_path, capsys):
    csv = _write(tmp_path / "k2011.csv", K2011)
    report = _json(capsys, "--from-csv", str(csv), *COLS, "--level", "interval", "--n-boot", "0")
    data = np.array([[np.nan if v is None else v for v in K2011[c]] for c in "ABCD"], dtype=float)
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="interval")
    assert report["krippendorff_alpha"] == pytest.approx(expected)


def test_utf8_bom_and_non_ascii_names_are_read(tmp_path, capsys):
    csv = tmp_path / "bom.csv"
    csv.write_bytes(
        "\ufeffclip_id,annotator,label\n1,zoë,oui\n1,łukasz,oui\n2,zoë,non\n2,łukasz,oui\n".encode()
    )
    report = _json(capsys, "--from-csv", str(csv), "--n-boot", "0")
    assert report["n_raters"] == 2
    assert report["percent_agreement"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"   \n\n", "is empty"),
        (b"clip_id,annotator,label\n", "no ratings"),
        (b"clip,who,label\n1,a,x\n", "lacks the column(s) 'clip_id', 'annotator'"),
        (b"clip_id,annotator,label\n1,a,caf\xe9\n", "not UTF-8"),
        (b"clip_id,annotator,label\n1,,x\n", "every row needs"),
    ],
)
def test_bad_csv_is_refused_with_a_clear_message(tmp_path, capsys, content, message):
    csv = tmp_path / "bad.csv"
    csv.write_bytes(content)
    code, out, err = _run(capsys, "--from-csv", str(csv))
    assert code == 1
    assert out == ""
    assert message in err
    assert "Traceback" not in err


def test_missing_file_and_bad_level_data_are_user_errors(tmp_path, capsys):
    code, _, err = _run(capsys, "--from-csv", str(tmp_path / "nope.csv"))
    assert code == 1
    assert "cannot read" in err
    csv = tmp_path / "words.csv"
    csv.write_text("clip_id,annotator,label\n1,a,yes\n1,b,no\n", encoding="utf-8")
    code, _, err = _run(capsys, "--from-csv", str(csv), "--level", "interval")
    assert code == 1
    assert "interval agreement needs numbers" in err
