"""Long work in words: the progress line, and the command line's reporter off a terminal."""

from __future__ import annotations

import io

from labeling.commands._stages import StageReporter
from labeling.platform.progress import progress_text


def test_a_single_step_shows_no_count():
    assert (
        progress_text("Fitting the model on 600 training clips", 0, 1)
        == "Fitting the model on 600 training clips…"
    )
    assert progress_text("Computing the audio features, clip", 1200, 5000) == (
        "Computing the audio features, clip: 1,200 of 5,000"
    )


def test_off_a_terminal_each_stage_is_written_as_it_starts_and_every_tenth_of_the_way():
    out = io.StringIO()
    report = StageReporter(stream=out, tty=False)
    report.say("Step 1 of 2: Train the model")
    for done in range(101):
        report("Computing features", done, 100)
    report("Fitting the model", 0, 1)
    report("Fitting the model", 1, 1)
    report.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "Step 1 of 2: Train the model"
    assert lines[1:12] == [f"Computing features: {n} of 100" for n in range(0, 101, 10)]
    assert lines[12:] == ["Fitting the model…"]


def test_json_output_stays_clean():
    out = io.StringIO()
    report = StageReporter(stream=out, tty=False, quiet=True)
    report.say("Step 1 of 1: x")
    report("Computing features", 5, 10)
    assert out.getvalue() == ""
