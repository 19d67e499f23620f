"""Label Studio exports of Earmark's own config read back: the unsure box, time regions, the tag
vocabulary, and the ASR_MANIFEST told from a NeMo manifest.

The JSON_MIN records are written as Label Studio writes them (a multiple choice as a list, a
``<Labels>`` region control as a list of ``{start, end, labels}``), after its documented export
formats; the config is the one Earmark's export writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labeling.data.formats.detect import detect_format
from labeling.data.formats.labelstudio import read_labelstudio
from tests.audio import speechlike, write_wav

CONFIG = """<View>
  <Audio name="audio" value="$audio"/>
  <Choices name="label" toName="audio" choice="single-radio">
    <Choice value="yes"/><Choice value="no"/>
  </Choices>
  <Choices name="tags" toName="audio" choice="multiple">
    <Choice value="noise:car"/><Choice value="room:echo"/>
  </Choices>
  <Choices name="unsure" toName="audio" choice="multiple"><Choice value="unsure"/></Choices>
</View>
"""


@pytest.fixture
def min_export(tmp_path: Path) -> Path:
    write_wav(tmp_path / "a.wav", speechlike(1))
    records = [
        {"audio": "a.wav", "id": 1, "label": "yes", "unsure": ["unsure"], "annotator": "ana@example.org"},
        {
            "audio": "a.wav",
            "id": 1,
            "label": "no",
            "tags": ["noise:car"],
            "annotator": "ben@example.org",
            "speech": [{"start": 0.1, "end": 0.3, "labels": ["speech"]}],
        },
    ]
    path = tmp_path / "export-min.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


@pytest.mark.parametrize("with_config", [True, False])
def test_unsure_is_read_as_unsure_and_regions_are_counted(min_export: Path, with_config: bool) -> None:
    config = CONFIG if with_config else None
    plan = read_labelstudio(min_export, config=config, classes=["yes", "no"])

    (item,) = plan.items
    got = {a.annotator: (a.label, a.tags, a.unsure) for a in item.annotations}
    assert got == {
        "labelstudio:ana@example.org": ("yes", (), True),
        "labelstudio:ben@example.org": ("no", ("noise:car",), False),
    }
    assert item.metadata == {}  # the region column is no clip metadata
    assert {p.ref: p.reason for p in plan.problems}["time regions of 'speech'"].startswith("1 not imported")
    # the config's tags are the vocabulary, used or not (the unsure box is none of them)
    assert plan.declared_tags == (["noise:car", "room:echo"] if with_config else [])


def test_an_asr_manifest_is_told_from_a_nemo_manifest(tmp_path: Path) -> None:
    nemo = tmp_path / "train_manifest.json"
    nemo.write_text(json.dumps({"audio_filepath": "a.wav", "duration": 1.0, "text": "hi"}) + "\n")
    asr = tmp_path / "manifest.json"
    asr.write_text(
        json.dumps({"audio_filepath": "a.wav", "duration": 1.0, "text": "hi", "annotator": "7"}) + "\n"
    )

    assert detect_format(nemo) == "nemo"
    assert detect_format(asr) == "labelstudio_asr"
