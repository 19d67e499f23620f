"""Alarms that stand until someone answers them, a too-small batch that never pages, monitoring
thresholds that apply when changed from the project settings, and a labeling sample big enough for
the accuracy test — on SQLite and PostgreSQL, with synthetic tone-burst audio."""

from __future__ import annotations

import json

import pytest
from scipy import stats
from sqlalchemy import select

from db.models import Clip, ImportBatch, ProductionClip, Resolution
from labeling.cli import main
from labeling.data.projects import ProjectError, apply_settings, get_project, settings_history
from labeling.monitor.alarms import acknowledge, monitor_summary, snooze
from labeling.monitor.drift import run_drift_check
from labeling.monitor.loop import labeling_sample, sample_sent, send_to_labeling
from tests.monitoring import BATCHES, PROJECT, log_batch, monitored_project

CLEAN, QUIET = BATCHES


@pytest.fixture
def monitored(workspace, tmp_path, monkeypatch):
    """The monitored project (a clean batch, then a 20 dB quieter one), and the command line on it."""
    monitored_project(workspace, tmp_path)
    monkeypatch.setenv("EARMARK_DATA_DIR", str(workspace.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", workspace.settings.database_url)
    return workspace


def _monitor(capsys) -> tuple[int, str, dict]:  # type: ignore[no-untyped-def]
    capsys.readouterr()
    code = main(["monitor", "--project", PROJECT])
    text = capsys.readouterr().out
    assert main(["monitor", "--project", PROJECT, "--json"]) == code
    return code, text, json.loads(capsys.readouterr().out)


def _levels(ws) -> dict[str, str]:  # type: ignore[no-untyped-def]
    batches = monitor_summary(ws, PROJECT).batches
    return dict(zip(batches["name"], batches["level"], strict=True))


def _set_monitoring(ws, **values) -> None:  # type: ignore[no-untyped-def]
    """What the Project settings page does on Save: the previewed, audited settings change."""
    with ws.db.write() as s:
        apply_settings(s, PROJECT, {"settings": {"monitoring": values}})


def _label_random_sample(ws, batch: str, *, right: bool) -> int:  # type: ignore[no-untyped-def]
    """Give every random-sample clip of the batch sent to labeling a final label: the live model's
    answer (right) or the other class (wrong). Returns how many were labelled."""
    other = {"yes": "no", "no": "yes"}
    with ws.db.write() as s:
        rows = s.execute(
            select(ProductionClip.clip_id, ProductionClip.prediction, Clip.project_id)
            .join(Clip, Clip.id == ProductionClip.clip_id)
            .join(ImportBatch, ImportBatch.id == ProductionClip.batch_id)
            .where(ImportBatch.name == batch, ProductionClip.sample_reason == "random")
        ).all()
        for clip_id, predicted, project_id in rows:
            label = predicted if right else other[predicted]
            s.add(Resolution(clip_id=clip_id, project_id=project_id, label=label, method="imported"))
    return len(rows)


def test_an_alarm_stands_whatever_later_batches_show_until_acknowledged_or_snoozed(
    monitored, tmp_path, capsys
):
    ws = monitored
    assert _levels(ws)[QUIET] == "alarm"

    # A clean batch after the alarm: the alarm on the quiet batch still stands.
    log_batch(ws, tmp_path, "day 3", seed=2)
    assert run_drift_check(ws, PROJECT, "day 3").level == "none"
    code, text, summary = _monitor(capsys)
    assert code == 1
    assert f"ALARM: batch {QUIET!r}" in text
    assert summary["alarm"] is True
    assert summary["alarms"] == [QUIET]

    acknowledge(ws, PROJECT, QUIET, note="the new microphones")
    assert _monitor(capsys)[0] == 0

    # Another quiet batch alarms; two clean ones after it leave it standing.
    log_batch(ws, tmp_path, "day 4 (quiet)", seed=3, gain=0.1)
    assert run_drift_check(ws, PROJECT, "day 4 (quiet)").level == "alarm"
    for seed, name in ((4, "day 5"), (5, "day 6")):
        log_batch(ws, tmp_path, name, seed=seed)
        assert run_drift_check(ws, PROJECT, name).level == "none"
    code, text, summary = _monitor(capsys)
    assert code == 1
    assert summary["alarms"] == ["day 4 (quiet)"]
    assert "ALARM: batch 'day 4 (quiet)'" in text
    assert "ALARM: batch 'day 5'" not in text

    snooze(ws, PROJECT, hours=2)
    code, text, summary = _monitor(capsys)
    assert code == 0
    assert summary["alarms"] == []
    assert "alarms snoozed until" in text


def test_a_batch_too_small_for_a_verdict_is_too_small_and_never_pages(monitored, tmp_path, capsys):
    ws = monitored
    log_batch(ws, tmp_path, "day 3 (small)", seed=2, n=30)  # like the reference, 30 clips of the 50
    check = run_drift_check(ws, PROJECT, "day 3 (small)")
    assert check.level == "too_small"
    assert check.drift is False
    capsys.readouterr()
    assert main(["drift", "--project", PROJECT, "--batch", "day 3 (small)", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["drift"], out["level"]) == (False, "too_small")
    assert any("only 30 clips in the batch; at least 50 are needed" in r for r in out["reasons"])

    # The quiet batch's alarm stands (it is the one that pages), the small batch's level stays its own.
    code, text, summary = _monitor(capsys)
    assert code == 1
    assert summary["alarms"] == [QUIET]
    assert summary["batches"][-1]["level"] == "too_small"
    assert "ALARM: batch 'day 3 (small)'" not in text
    acknowledge(ws, PROJECT, QUIET)
    code, text, summary = _monitor(capsys)
    assert code == 0, text
    assert "ALARM" not in text
    assert summary["batches"][-1]["level"] == "too_small"
    assert _levels(ws)["day 3 (small)"] == "too_small"

    # With min_batch lowered to 30 the next check of the same batch gives a verdict.
    _set_monitoring(ws, min_batch=30)
    assert run_drift_check(ws, PROJECT, "day 3 (small)").level == "none"


def test_alarm_p_from_the_project_settings_decides_the_alarm(monitored, tmp_path, capsys):
    ws = monitored
    acknowledge(ws, PROJECT, QUIET)
    # A quiet batch after a clean one: one drifted batch, an alarm only for its tiny p-value.
    log_batch(ws, tmp_path, "day 3", seed=2)
    log_batch(ws, tmp_path, "day 4 (quiet)", seed=3, gain=0.1)
    run_drift_check(ws, PROJECT, "day 3")
    quiet = run_drift_check(ws, PROJECT, "day 4 (quiet)")
    assert quiet.level == "alarm"
    assert quiet.report["min_p"] < 1e-6
    assert _monitor(capsys)[0] == 1

    _set_monitoring(ws, alarm_p=1e-300)
    with ws.db.read() as s:
        assert get_project(s, PROJECT).settings["monitoring"] == {"alarm_p": 1e-300}
        history = settings_history(s, get_project(s, PROJECT).id)
    assert "alarm_p" in history.iloc[0]["new"]
    assert _levels(ws)["day 4 (quiet)"] == "warning"
    assert run_drift_check(ws, PROJECT, "day 4 (quiet)").level == "warning"
    code, _, summary = _monitor(capsys)
    assert code == 0
    assert summary["alarm"] is False
    _set_monitoring(ws, alarm_p=None)  # back to the default, 0.001
    with ws.db.read() as s:
        assert "monitoring" not in get_project(s, PROJECT).settings
    assert _levels(ws)["day 4 (quiet)"] == "alarm"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"alarm_p": 0}, "alarm_p must be above 0"),
        ({"alarm_p": 0.1}, "must not exceed alpha"),
        ({"alpha": 1.5}, "alpha must be above 0 and at most 0.5"),
        ({"min_labels": 2.5}, "min_labels must be a whole number"),
        ({"min_labels": 0}, "min_labels must be at least 1"),
        ({"min_batch": "many"}, "min_batch must be a number"),
        ({"alarm": 0.01}, "unknown monitoring setting 'alarm'"),
    ],
)
def test_monitoring_settings_out_of_range_are_refused_with_nothing_written(workspace, values, message):
    from labeling.data.projects import create_project

    with workspace.db.write() as s:
        create_project(s, name=PROJECT, classes=["yes", "no"])
    with pytest.raises(ProjectError, match=message), workspace.db.write() as s:
        apply_settings(s, PROJECT, {"settings": {"monitoring": {"min_labels": 20, **values}}})
    with workspace.db.read() as s:
        assert "monitoring" not in get_project(s, PROJECT).settings
        history = settings_history(s, get_project(s, PROJECT).id)
    assert not history["new"].astype(str).str.contains("monitoring").any()


def test_min_labels_from_the_project_settings_decides_when_accuracy_is_judged(monitored, tmp_path):
    ws = monitored
    acknowledge(ws, PROJECT, QUIET)
    log_batch(ws, tmp_path, "day 3", seed=2)
    assert run_drift_check(ws, PROJECT, "day 3").level == "none"
    batch = "day 3"
    _set_monitoring(ws, min_labels=20)
    sample = labeling_sample(ws, PROJECT, batch)
    assert (sample["reason"] == "random").sum() == 20
    send_to_labeling(ws, PROJECT, batch, sample)
    assert _label_random_sample(ws, batch, right=False) == 20

    # 20 labels, all wrong, against a reference the live model got right on all 120 clips.
    p = stats.fisher_exact([[120, 0], [0, 20]])[1]
    summary = monitor_summary(ws, PROJECT)
    clean = summary.batches.set_index("name").loc[batch]
    assert clean["level"] == "alarm"
    assert clean["concept"]["p_value"] == pytest.approx(p)
    assert clean["labels_missing"] == 0
    assert "0 of 20 labelled random-sample clips right" in clean["reasons"]
    assert batch in summary.alarms

    # Back to the default of 30: 20 labels give no verdict, and 10 more are said to be missing.
    _set_monitoring(ws, min_labels=None)
    clean = monitor_summary(ws, PROJECT).batches.set_index("name").loc[batch]
    assert clean["level"] == "none"
    assert clean["labels_missing"] == 10
    assert "too few for a verdict (30 needed)" in clean["accuracy_note"]
    assert (labeling_sample(ws, PROJECT, batch)["reason"] == "random").sum() == 10


def test_one_labeling_sample_answers_the_accuracy_test(monitored, capsys):
    ws = monitored
    before = monitor_summary(ws, PROJECT).batches.set_index("name")
    assert before.loc[CLEAN, "labels_missing"] == 30
    capsys.readouterr()
    main(["monitor", "--project", PROJECT])
    assert "30 more labelled random-sample clips needed for an accuracy verdict" in capsys.readouterr().out

    # 5% of 60 is 3 and sample_minimum is 20, but the accuracy test needs 30: the sample holds 30.
    sample = labeling_sample(ws, PROJECT, CLEAN)
    assert (sample["reason"] == "random").sum() == 30
    assert sample_sent(ws, PROJECT, CLEAN).random_target == 30
    send_to_labeling(ws, PROJECT, CLEAN, sample)
    assert _label_random_sample(ws, CLEAN, right=True) == 30
    clean = monitor_summary(ws, PROJECT).batches.set_index("name").loc[CLEAN]
    assert clean["labels_missing"] == 0
    assert clean["concept"]["p_value"] == pytest.approx(stats.fisher_exact([[120, 0], [30, 0]])[1])
    assert "no change" in clean["accuracy_note"]

    # The sample grows with what the test needs; a batch smaller than that is taken whole.
    _set_monitoring(ws, min_labels=45)
    assert (labeling_sample(ws, PROJECT, QUIET)["reason"] == "random").sum() == 45
    _set_monitoring(ws, min_labels=100)
    assert (labeling_sample(ws, PROJECT, QUIET)["reason"] == "random").sum() == 60
