"""Versioned conventions, diffs, gold examples, checkable rules and proposal links."""

from __future__ import annotations

import difflib

import pandas as pd
import pytest
from sqlalchemy import func, insert, select

from db.models import AuditEvent, Clip, utcnow
from labeling.data import conventions as conv
from labeling.data.projects import create_project
from labeling.platform.auth import add_user


def _clip(s, project_id: int, n: int) -> int:
    return s.scalar(
        insert(Clip)
        .values(
            project_id=project_id,
            sha256=f"{n:064x}",
            storage_key=f"00/{n:064x}.wav",
            original_name=f"clip{n}.wav",
            duration_s=1.0,
            sample_rate=8000,
            channels=1,
            frames=8000,
            audio_format="WAV",
            meta={},
            split="train",
            annotations_needed=1,
            annotation_count=0,
            priority=0,
            created_at=utcnow(),
        )
        .returning(Clip.id)
    )


@pytest.fixture
def setup(workspace):
    with workspace.db.write() as s:
        p = create_project(s, name="weather", task_kind="both", classes=["speech", "noise"])
        other = create_project(s, name="other", classes=["speech"])
        rosa = add_user(s, name="rosa", role="reviewer")
        clips = [_clip(s, p.id, i) for i in range(3)]
        foreign = _clip(s, other.id, 99)
    return workspace, p.id, rosa.id, clips, foreign


V1 = "# Weather readings\n\nTranscribe what is said.\nKeep fillers.\n"
V2 = "# Weather readings\n\nTranscribe what is said.\nDrop fillers such as um and uh.\n"


def test_versions_are_numbered_with_author_time_and_note(setup):
    ws, pid, rosa, _, _ = setup
    with ws.db.write() as s:
        assert conv.current_convention(s, pid) is None
        one = conv.save_convention(s, pid, text=V1, author_id=rosa)
        two = conv.save_convention(s, pid, text=V2, note="fillers are noise for the model", author_id=rosa)
    assert (one.version, two.version) == (1, 2)
    assert two.author == "rosa"
    assert two.created_at >= one.created_at
    with ws.db.read() as s:
        assert conv.current_convention(s, pid) == two
        assert conv.get_convention(s, pid, 1).text == V1.strip()
        history = conv.convention_history(s, pid)
        events = s.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.entity == "convention"))
    assert history[["version", "author", "note"]].values.tolist() == [
        [2, "rosa", "fillers are noise for the model"],
        [1, "rosa", ""],
    ]
    assert events == 2


def test_a_new_version_needs_a_change_and_a_note(setup):
    ws, pid, rosa, _, _ = setup
    with ws.db.write() as s:
        conv.save_convention(s, pid, text=V1, author_id=rosa)
        with pytest.raises(conv.ConventionError, match="nothing changed"):
            conv.save_convention(s, pid, text=V1 + "\n\n", note="whitespace only")
        with pytest.raises(conv.ConventionError, match="change note"):
            conv.save_convention(s, pid, text=V2)
        with pytest.raises(conv.ConventionError, match="empty"):
            conv.save_convention(s, pid, text="   ", note="oops")
        # Changing only a rule is a change.
        three = conv.save_convention(s, pid, text=V1, rules={"loudness_dbfs": {"target": -23}}, note="level")
    assert three.version == 2
    assert three.rules == {"loudness_dbfs": {"target": -23.0, "tolerance": 3.0}}


def test_saving_over_a_newer_version_is_refused(setup):
    ws, pid, rosa, _, _ = setup
    with ws.db.write() as s:
        conv.save_convention(s, pid, text=V1, author_id=rosa)
        conv.save_convention(s, pid, text=V2, note="someone else's edit", author_id=rosa, based_on=1)
    with pytest.raises(conv.ConventionConflict, match="version 2 was published by rosa"), ws.db.write() as s:
        conv.save_convention(s, pid, text=V1 + "Say numbers as words.", note="mine", based_on=1)
    with ws.db.read() as s:
        assert conv.current_version(s, pid) == 2


def test_diff_between_any_two_versions(setup):
    ws, pid, rosa, _, _ = setup
    with ws.db.write() as s:
        one = conv.save_convention(s, pid, text=V1, author_id=rosa)
        two = conv.save_convention(
            s, pid, text=V2, rules={"transcript": {"fillers": "drop"}}, note="fillers", author_id=rosa
        )
    diff = conv.unified_diff(one, two)
    assert "-Keep fillers." in diff.splitlines()
    assert "+Drop fillers such as um and uh." in diff.splitlines()
    assert "  transcript.fillers: None -> 'drop'" in diff.splitlines()
    html = conv.side_by_side_diff(one, two)
    assert "<table" in html
    assert "Drop&nbsp;fillers" in html
    # Same hunks as difflib itself reports.
    hunks = [ln for ln in difflib.unified_diff(V1.strip().splitlines(), V2.strip().splitlines(), lineterm="")]
    assert [ln for ln in diff.splitlines() if ln.startswith(("-K", "+D"))] == [
        ln for ln in hunks if ln.startswith(("-K", "+D"))
    ]


def test_gold_examples_attach_to_a_version_and_carry_forward(setup):
    ws, pid, rosa, (a, b, c), foreign = setup
    with ws.db.write() as s:
        with pytest.raises(conv.ConventionError, match="first version"):
            conv.add_gold_example(s, pid, clip_id=a, transcript="x", explanation="y")
        conv.save_convention(s, pid, text=V1, author_id=rosa)
        conv.add_gold_example(
            s,
            pid,
            clip_id=a,
            label="speech",
            transcript="Um, today's weather",
            explanation="fillers are transcribed as heard",
            actor_id=rosa,
        )
        with pytest.raises(conv.ConventionError, match="not a clip of this project"):
            conv.add_gold_example(s, pid, clip_id=foreign, label="speech", explanation="why")
        with pytest.raises(conv.ConventionError, match="not one of this project's classes"):
            conv.add_gold_example(s, pid, clip_id=b, label="music", explanation="why")
        with pytest.raises(conv.ConventionError, match="say why"):
            conv.add_gold_example(s, pid, clip_id=b, label="noise", explanation="  ")
        conv.save_convention(s, pid, text=V2, note="drop fillers", author_id=rosa)
        # Version 2 starts with version 1's examples; correcting one there leaves version 1 alone.
        g = conv.add_gold_example(
            s, pid, clip_id=a, label="speech", transcript="today's weather", explanation="fillers dropped"
        )
        conv.add_gold_example(s, pid, clip_id=c, label="noise", explanation="a door, no speech")
    with ws.db.read() as s:
        v1 = conv.gold_examples(s, pid, 1)
        v2 = conv.gold_examples(s, pid)
        history = conv.convention_history(s, pid)
    assert [(x.clip_id, x.transcript) for x in v1] == [(a, "Um, today's weather")]
    assert [(x.clip_id, x.transcript, x.explanation) for x in v2] == [
        (a, "today's weather", "fillers dropped"),
        (c, None, "a door, no speech"),
    ]
    assert history["n_gold"].tolist() == [2, 1]
    with ws.db.write() as s:
        conv.remove_gold_example(s, pid, g.id)
    with ws.db.read() as s:
        assert [x.clip_id for x in conv.gold_examples(s, pid)] == [c]
        actions = s.execute(
            select(AuditEvent.action).where(AuditEvent.entity == "gold_example").order_by(AuditEvent.id)
        ).scalars()
        assert list(actions) == ["create", "update", "create", "delete"]


def test_transcript_rules_make_the_three_weather_readings_agree():
    # The example from the conventions brief: three ways of writing one utterance.
    readings = ["Um, today's weather", "Um… today's weather", "Today's weather"]
    rules = {"transcript": {"case": "lower", "punctuation": "strip", "fillers": "drop"}}
    checked = conv.validate_rules(rules)
    assert {conv.normalize_transcript(r, checked) for r in readings} == {"today's weather"}
    keep = conv.validate_rules({"transcript": {"case": "keep", "punctuation": "keep", "fillers": "keep"}})
    assert [conv.normalize_transcript(r, keep) for r in readings] == readings
    assert conv.normalize_transcript("well-known,  uh,   place!", checked) == "well-known place"
    assert conv.normalize_transcript(None, checked) is None


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"silence": {}}, "unknown rule"),
        ({"silence_margin_ms": {"min": 500, "max": 50}}, "min <= max"),
        ({"loudness_dbfs": {"target": 3}}, "dBFS"),
        ({"loudness_dbfs": {"target": "loud"}}, "must be a number"),
        ({"transcript": {"case": "title"}}, "case must be one of"),
        ({"transcript": {"filler_words": "um"}}, "list of words"),
    ],
)
def test_impossible_rules_are_refused(rules, message):
    with pytest.raises(conv.ConventionError, match=message):
        conv.validate_rules(rules)


def test_rule_violations_flag_silence_and_loudness_outside_the_rules():
    clips = pd.DataFrame(
        {
            "clip_id": [1, 2, 3],
            "leading_silence_ms": [100.0, 20.0, 100.0],
            "trailing_silence_ms": [100.0, 100.0, None],
            "rms_dbfs": [-23.0, -24.0, -35.0],
        }
    )
    rules = {"silence_margin_ms": {"min": 50, "max": 500}, "loudness_dbfs": {"target": -23, "tolerance": 3}}
    found = conv.rule_violations(clips, rules)
    assert found[["clip_id", "rule"]].values.tolist() == [[2, "leading_silence_ms"], [3, "rms_dbfs"]]
    assert conv.rule_violations(clips, {}).empty


def test_proposal_links_round_trip_and_drop_bad_values():
    link = conv.proposal_link(123, "fillers: keep or drop?")
    assert link == "conventions?clip=123&note=fillers%3A+keep+or+drop%3F"
    proposal = conv.proposal_from_query(conv.proposal_query(123, "fillers: keep or drop?"))
    assert (proposal.clip_id, proposal.note, proposal.problems) == (123, "fillers: keep or drop?", [])
    bad = conv.proposal_from_query({"clip": "12; DROP TABLE", "note": "a\x00b"})
    assert bad.clip_id is None
    assert bad.note == "ab"
    assert "not a clip number" in bad.problems[0]
