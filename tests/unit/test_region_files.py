"""The region file readers on their own: what each format's rules let through and what they refuse."""

from __future__ import annotations

import csv
import gzip
import json

import pandas as pd
import pytest

from labeling.data.formats.audacity import read_audacity_labels
from labeling.data.formats.base import FormatError
from labeling.data.formats.lhotse_regions import read_lhotse_supervisions
from labeling.data.formats.nemo_regions import read_nemo_regions
from labeling.data.formats.region_tables import read_region_table, region_table_text


def test_a_one_sided_audacity_label_is_a_point_and_not_a_region(tmp_path):
    """Audacity's ``LabelStruct::Import``: a second field that is no number makes ``t1 = t0`` and is
    the label's text."""
    path = tmp_path / "rec.txt"
    path.write_text("2.5\tknock\n3\t4.5\tspeech\textra field\n")
    read = read_audacity_labels(path)
    assert read.regions[["recording", "start", "end", "label"]].values.tolist() == [
        ["rec", 3.0, 4.5, "speech"]
    ]
    assert [p.ref for p in read.problems] == ["rec.txt line 1"]


def test_an_audacity_line_without_a_start_time_refuses_the_file(tmp_path):
    path = tmp_path / "rec.txt"
    path.write_text("1\t2\tok\nstart\t3\tbad\n")
    with pytest.raises(FormatError, match=r"line 2: the start 'start' is not a time"):
        read_audacity_labels(path)


def test_csv_cells_a_spreadsheet_would_run_come_back_as_written(tmp_path):
    frame = pd.DataFrame(
        [
            {
                "recording": "a.wav",
                "annotator": "=ann",
                "start": 0.1,
                "end": 0.30000000000000004,
                "label": "+speech",
                "text": '=HYPERLINK("x")',
                "tags": ["noise:car"],
            }
        ]
    )
    path = tmp_path / "r.csv"
    path.write_text(region_table_text(frame, fmt="csv"))
    with path.open(newline="") as f:
        (row,) = csv.DictReader(f)
    assert (row["annotator"], row["label"], row["text"]) == ("'=ann", "'+speech", '\'=HYPERLINK("x")')
    assert row["end"] == "0.30000000000000004"  # every digit of the stored time
    back = read_region_table(path).regions.iloc[0]
    assert (back["annotator"], back["label"], back["text"], back["tags"]) == (
        "=ann",
        "+speech",
        '=HYPERLINK("x")',
        ["noise:car"],
    )
    assert back["end"] == 0.30000000000000004


def test_a_nemo_line_without_a_duration_refuses_the_manifest(tmp_path):
    path = tmp_path / "m.json"
    lines = [
        {"audio_filepath": "/x/a.wav", "offset": 1.0, "duration": 2.0, "speaker": "spk_A"},
        {"audio_filepath": "/x/a.wav", "offset": 4.0, "label": "spk_A"},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(FormatError, match=r"line 2: duration None is not a number"):
        read_nemo_regions(path)
    path.write_text(json.dumps(lines[0]) + "\n")
    assert read_nemo_regions(path).regions[["recording", "start", "end", "label"]].values.tolist() == [
        ["a.wav", 1.0, 3.0, "spk_A"]
    ]


def test_a_supervision_with_a_field_lhotse_does_not_know_is_refused(tmp_path):
    path = tmp_path / "supervisions.jsonl.gz"
    line = {"id": "a-0", "recording_id": "a", "start": 0.5, "duration": 1.0, "speaker": "spk_A", "label": "x"}
    path.write_bytes(gzip.compress((json.dumps(line) + "\n").encode()))
    with pytest.raises(FormatError, match=r"fields lhotse does not know \['label'\]"):
        read_lhotse_supervisions(tmp_path)
    del line["label"]
    path.write_bytes(gzip.compress((json.dumps(line) + "\n").encode()))
    assert read_lhotse_supervisions(tmp_path).regions[
        ["recording", "start", "end", "label"]
    ].values.tolist() == [["a", 0.5, 1.5, "spk_A"]]
