"""``earmark slices --from-csv``: the worked example of "Machine Learning in Production", and clear refusals.

The course's table: clean speech 94% accurate against an HLP of 95% on 60% of the data, car noise 89%
against 93% on 4%, people noise 87% against 89% on 30%, low bandwidth 70% against 70% on 6%. The gap
times the share says what fixing each slice is worth: 0.6, 0.16, 0.6 and 0 points of accuracy.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from labeling.cli import main

TAGS = ("clean", "car_noise", "people_noise", "low_bandwidth")
# tag: (clips, correct clips, HLP) over 10,000 clips, so every percentage is a whole number of clips.
EXAMPLE = {
    "clean": (6000, 5640, 0.95),
    "car_noise": (400, 356, 0.93),
    "people_noise": (3000, 2610, 0.89),
    "low_bandwidth": (600, 420, 0.70),
}


def write_example(folder: Path) -> tuple[Path, Path]:
    pred = folder / "pred.csv"
    with pred.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["clip", "correct", *TAGS])
        i = 0
        for tag, (n, right, _) in EXAMPLE.items():
            for k in range(n):
                w.writerow([i, int(k < right), *(int(t == tag) for t in TAGS)])
                i += 1
    hlp = folder / "hlp.csv"
    hlp.write_text("tag,hlp\n" + "".join(f"{t},{h}\n" for t, (_, _, h) in EXAMPLE.items()))
    return pred, hlp


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    assert main(["slices", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_worked_example_priorities(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred, hlp = write_example(tmp_path)
    rows = run_json(capsys, "--from-csv", str(pred), "--tags", ",".join(TAGS), "--hlp-csv", str(hlp))
    assert all(
        list(r) == ["tag", "n", "share", "accuracy", "error_share", "hlp", "gap", "priority"] for r in rows
    )
    by_tag = {r["tag"]: r for r in rows}
    assert by_tag["clean"]["share"] == pytest.approx(0.60)
    assert by_tag["clean"]["accuracy"] == pytest.approx(0.94)
    assert by_tag["car_noise"]["accuracy"] == pytest.approx(0.89)
    assert by_tag["people_noise"]["share"] == pytest.approx(0.30)
    assert by_tag["low_bandwidth"]["gap"] == pytest.approx(0.0)
    # The course's conclusion: clean and people noise are worth 0.6 points each, car noise 0.16,
    # low bandwidth nothing.
    assert by_tag["clean"]["priority"] == pytest.approx(0.006)
    assert by_tag["people_noise"]["priority"] == pytest.approx(0.006)
    assert by_tag["car_noise"]["priority"] == pytest.approx(0.0016)
    assert by_tag["low_bandwidth"]["priority"] == pytest.approx(0.0)
    # 974 errors in all: 360 clean, 44 car noise, 390 people noise, 180 low bandwidth.
    assert by_tag["people_noise"]["error_share"] == pytest.approx(390 / 974)
    assert by_tag["car_noise"]["error_share"] == pytest.approx(44 / 974)
    assert [r["tag"] for r in rows][-1] == "low_bandwidth"
    assert {rows[0]["tag"], rows[1]["tag"]} == {"clean", "people_noise"}


def test_truth_and_prediction_columns_instead_of_correct(tmp_path: Path, capsys) -> None:
    pred = tmp_path / "pred.csv"
    pred.write_text("y_true,y_pred,car\nyes,yes,1\nyes,no,1\nno,no,0\nno,no,0\n")
    rows = run_json(capsys, "--from-csv", str(pred), "--tags", "car")
    assert rows == [
        {
            "tag": "car",
            "n": 2,
            "share": 0.5,
            "accuracy": 0.5,
            "error_share": 1.0,
            "hlp": None,
            "gap": None,
            "priority": None,
        }
    ]


def test_plain_table_names_every_slice(tmp_path: Path, capsys) -> None:
    pred, hlp = write_example(tmp_path)
    assert main(["slices", "--from-csv", str(pred), "--tags", ",".join(TAGS), "--hlp-csv", str(hlp)]) == 0
    out = capsys.readouterr().out
    assert all(t in out for t in TAGS)
    assert "94.0%" in out


@pytest.mark.parametrize(
    ("content", "tags", "message"),
    [
        ("clip,car\n1,1\n", "car", "needs a 'correct' column"),
        ("correct,car\n1,1\n", "car,people", "no column for tag(s) people"),
        ("correct,car\n1,maybe\n", "car", "column 'car' must hold 0 or 1"),
        ("correct,car\n2,1\n", "car", "column 'correct' must hold 0 or 1"),
        ("correct,car\n1,1\n", "", "--tags names no tag columns"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path: Path, capsys, content: str, tags: str, message: str) -> None:
    pred = tmp_path / "pred.csv"
    pred.write_text(content)
    assert main(["slices", "--from-csv", str(pred), "--tags", tags]) == 1
    assert message in capsys.readouterr().err


def test_bad_hlp_file_and_missing_file(tmp_path: Path, capsys) -> None:
    pred = tmp_path / "pred.csv"
    pred.write_text("correct,car\n1,1\n")
    hlp = tmp_path / "hlp.csv"
    hlp.write_text("slice,value\ncar,0.9\n")
    assert main(["slices", "--from-csv", str(pred), "--tags", "car", "--hlp-csv", str(hlp)]) == 1
    assert "needs columns 'tag' and 'hlp'" in capsys.readouterr().err
    hlp.write_text("tag,hlp\ncar,93\n")
    assert main(["slices", "--from-csv", str(pred), "--tags", "car", "--hlp-csv", str(hlp)]) == 1
    assert "between 0 and 1" in capsys.readouterr().err
    assert main(["slices", "--from-csv", str(tmp_path / "nope.csv"), "--tags", "car"]) == 1
    assert "does not exist" in capsys.readouterr().err
