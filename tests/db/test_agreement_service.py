"""Agreement of a stored project, adjudication, the auto-resolve rule and HLP per slice, on both engines.

Reference values come from the annotations as the test wrote them, fed to the ``krippendorff`` package,
scikit-learn and jiwer, or counted by hand; never from the service under test.
"""

from __future__ import annotations

import itertools
from urllib.parse import parse_qs

import jiwer
import krippendorff
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score
from sqlalchemy import insert, select

from db.models import Annotation, AuditEvent, Clip, ClipTag, Resolution, utcnow
from labeling.annotate.annotations import edit_annotation, is_locked, submit_annotation
from labeling.annotate.review import (
    ReviewError,
    add_gold_example,
    auto_resolve,
    convention_proposal_link,
    resolve_clip,
)
from labeling.data import conventions as cv
from labeling.data.projects import create_project, update_project
from labeling.platform.auth import add_user
from labeling.quality.agreement_service import disagreements, project_agreement, project_hlp

CLASSES = ["yes", "no", "maybe"]
# clip -> (labels by a, b, c), tags. Split patterns: unanimous, 2-1, and a 1-1-1 tie.
RATINGS = {
    0: (("yes", "yes", "yes"), ["noise:car"]),
    1: (("no", "no", "no"), ["noise:car"]),
    2: (("yes", "no", "yes"), ["noise:car"]),
    3: (("no", "no", "yes"), ["noise:none"]),
    4: (("yes", "no", "maybe"), ["noise:none"]),
    5: (("maybe", "maybe", "maybe"), ["noise:none"]),
    6: (("yes", "yes", "no"), ["noise:none"]),
    7: (("no", "no", "no"), ["noise:none"]),
}
TRUTH = {0: "yes", 1: "no", 2: "yes", 3: "no", 4: "maybe", 5: "maybe", 6: "yes", 7: "no"}


def _clip(s, project_id: int, n: int, *, k: int = 3, speaker: str = "s1") -> int:
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
            meta={"speaker": speaker},
            split="train",
            annotations_needed=k,
            annotation_count=0,
            priority=0,
            created_at=utcnow(),
        )
        .returning(Clip.id)
    )


@pytest.fixture
def project(workspace):
    """Eight clips labelled by a, b and c (clips 0-3 under conventions v1, 4-7 under v2); imported truth."""
    ws = workspace
    with ws.db.write() as s:
        p = create_project(
            s,
            name="commands",
            classes=CLASSES,
            tag_groups={"noise": ["car", "none"]},
            annotations_per_clip=3,
        )
        users = {n: add_user(s, name=n, role="annotator").id for n in "abc"}
        users["rosa"] = add_user(s, name="rosa", role="reviewer").id
        cv.save_convention(s, p.id, text="# v1\nLabel the word.", author_id=users["rosa"])
        cv.save_convention(
            s, p.id, text="# v2\nLabel the stressed word.", note="stress", author_id=users["rosa"]
        )
        clips = {}
        for n, (labels, tags) in RATINGS.items():
            clips[n] = _clip(s, p.id, n, speaker=f"s{n % 2}")
            s.execute(
                insert(ClipTag), [{"clip_id": clips[n], "tag": t, "created_at": utcnow()} for t in tags]
            )
            s.add(
                Resolution(
                    clip_id=clips[n], project_id=p.id, label=TRUTH[n], method="imported", updated_at=utcnow()
                )
            )
            for who, label in zip("abc", labels, strict=True):
                result = submit_annotation(
                    s,
                    p.id,
                    users[who],
                    clips[n],
                    label=label,
                    unsure=(n == 6 and who == "c"),
                    convention_version=1 if n < 4 else 2,
                )
                assert result.ok
    return ws, p, users, clips


def _expected_long() -> pd.DataFrame:
    return pd.DataFrame(
        [
            (n, who, label)
            for n, (labels, _) in RATINGS.items()
            for who, label in zip("abc", labels, strict=True)
        ],
        columns=["clip", "annotator", "label"],
    )


def test_report_equals_the_metrics_on_the_annotations_as_written(project):
    ws, p, _, _ = project
    with ws.db.read() as s:
        report = project_agreement(s, p.id, n_boot=200)
    long = _expected_long()
    wide = long.pivot_table(index="annotator", columns="clip", values="label", aggfunc="first")
    codes = wide.apply(lambda col: col.map(CLASSES.index)).to_numpy(dtype=float)
    assert report["krippendorff_alpha"] == pytest.approx(
        krippendorff.alpha(reliability_data=codes, level_of_measurement="nominal")
    )
    assert report["n_items"] == 8
    assert report["n_raters"] == 3
    # Percent agreement: agreeing pairs over all pairs, counted by hand.
    same = sum(sum(x == y for x, y in itertools.combinations(labels, 2)) for labels, _ in RATINGS.values())
    assert report["percent_agreement"] == pytest.approx(same / (3 * len(RATINGS)))
    for pair in report["cohen_kappa_pairs"]:
        expected = cohen_kappa_score(wide.loc[pair["rater_a"]], wide.loc[pair["rater_b"]])
        assert pair["kappa"] == pytest.approx(expected)
    assert report["kappa_matrix"].loc["a", "b"] == pytest.approx(
        cohen_kappa_score(wide.loc["a"], wide.loc["b"])
    )
    # Every item has three ratings: Fleiss' kappa applies.
    assert report["fleiss_kappa"] is not None
    lo, hi = report["krippendorff_alpha_ci"]
    assert lo <= report["krippendorff_alpha"] <= hi

    by_version = report["by_version"].set_index("version")
    for version, clips in ((1, [0, 1, 2, 3]), (2, [4, 5, 6, 7])):
        part = wide[clips].apply(lambda col: col.map(CLASSES.index)).to_numpy(dtype=float)
        assert by_version.loc[version, "krippendorff_alpha"] == pytest.approx(
            krippendorff.alpha(reliability_data=part, level_of_measurement="nominal")
        )
    tag_rows = report["by_slice"].query("slice == 'tag'").set_index("value")
    assert tag_rows.loc["noise:car", "n_items"] == 3
    assert tag_rows.loc["noise:none", "n_items"] == 5
    confusion = report["confusion"]
    assert confusion.loc["yes", "no"] == confusion.loc["no", "yes"] > 0
    assert report["transcripts"] is None


def test_annotator_table_scores_gold_examples(project):
    ws, p, users, clips = project
    with ws.db.write() as s:
        cv.add_gold_example(
            s, p.id, clip_id=clips[4], label="maybe", explanation="hesitant", actor_id=users["rosa"]
        )
        cv.add_gold_example(
            s, p.id, clip_id=clips[3], label="no", explanation="clear no", actor_id=users["rosa"]
        )
    with ws.db.read() as s:
        table = project_agreement(s, p.id, n_boot=0)["annotators"].set_index("annotator")
    # Gold: clip 4 maybe (a yes, b no, c maybe), clip 3 no (a no, b no, c yes).
    assert table["n_gold"].tolist() == [2, 2, 2]
    assert table.loc["a", "agreement_with_gold"] == pytest.approx(0.5)
    assert table.loc["b", "agreement_with_gold"] == pytest.approx(0.5)
    assert table.loc["c", "agreement_with_gold"] == pytest.approx(0.5)
    assert table.loc["c", "unsure_rate"] == pytest.approx(1 / 8)


def test_resolving_a_clip_stores_it_audits_old_and_new_and_locks_annotations(project):
    ws, p, users, clips = project
    with ws.db.write() as s:
        first = resolve_clip(s, p, clips[4], label="maybe", reviewer_id=users["rosa"])
    assert first.changed
    assert first.method == "adjudicated"
    assert first.convention_version == 2
    assert first.agreement == pytest.approx(1 / 3)
    with ws.db.write() as s:
        again = resolve_clip(s, p, clips[4], label="maybe", reviewer_id=users["rosa"])
        changed = resolve_clip(s, p, clips[4], label="no", reviewer_id=users["rosa"], convention_version=1)
    assert not again.changed
    assert changed.changed
    with ws.db.read() as s:
        stored = s.get(Resolution, clips[4])
        assert (stored.label, stored.method, stored.resolved_by) == ("no", "adjudicated", users["rosa"])
        events = s.execute(
            select(AuditEvent.action, AuditEvent.old, AuditEvent.new, AuditEvent.actor_id)
            .where(AuditEvent.entity == "resolution", AuditEvent.entity_id == str(clips[4]))
            .order_by(AuditEvent.id)
        ).all()
        assert is_locked(s, clips[4])
    # The imported label was replaced (an update), then the reviewer changed their mind.
    assert [e.action for e in events] == ["update", "update"]
    assert events[0].old["label"] == "maybe"
    assert events[0].old["method"] == "imported"
    assert events[0].new["method"] == "adjudicated"
    assert (events[1].old["label"], events[1].new["label"]) == ("maybe", "no")
    assert {e.actor_id for e in events} == {users["rosa"]}
    with ws.db.write() as s:
        own = s.scalar(
            select(Annotation.id).where(Annotation.clip_id == clips[4], Annotation.annotator_id == users["a"])
        )
        assert edit_annotation(s, own, users["a"], label="no").status == "locked"


def test_resolving_refuses_bad_requests_and_changes_nothing(project):
    ws, p, users, clips = project
    with ws.db.write() as s:
        with pytest.raises(ReviewError, match="only a reviewer"):
            resolve_clip(s, p, clips[4], label="no", reviewer_id=users["a"])
        with pytest.raises(ReviewError, match="not one of this project's classes"):
            resolve_clip(s, p, clips[4], label="perhaps", reviewer_id=users["rosa"])
        with pytest.raises(ReviewError, match="choose"):
            resolve_clip(s, p, clips[4], reviewer_id=users["rosa"])
        with pytest.raises(ReviewError, match="not a clip of project"):
            resolve_clip(s, p, 10_000, label="no", reviewer_id=users["rosa"])
    with ws.db.read() as s:
        assert s.get(Resolution, clips[4]).method == "imported"
        assert s.scalar(select(AuditEvent.id).where(AuditEvent.entity == "resolution")) is None


def test_auto_resolve_follows_the_rule_and_never_overrides_a_reviewer(project):
    ws, p, users, clips = project
    with ws.db.write() as s:
        resolve_clip(s, p, clips[0], label="yes", reviewer_id=users["rosa"])
        # Unanimous clips 1, 5, 7 (clip 0 is adjudicated and stays so).
        assert auto_resolve(s, p, rule="unanimous", actor_id=users["rosa"]) == 3
        assert auto_resolve(s, p, rule="unanimous") == 0  # nothing left to change
    with ws.db.read() as s:
        methods = {n: s.get(Resolution, c).method for n, c in clips.items()}
    assert methods == {
        0: "adjudicated",
        1: "unanimous",
        2: "imported",
        3: "imported",
        4: "imported",
        5: "unanimous",
        6: "imported",
        7: "unanimous",
    }
    with ws.db.write() as s:
        # Majority: the 2-1 clips 2, 3, 6; the 1-1-1 clip 4 waits for a reviewer.
        assert auto_resolve(s, p, rule="majority") == 3
    with ws.db.read() as s:
        res = {
            n: s.execute(
                select(Resolution.label, Resolution.method, Resolution.agreement).where(
                    Resolution.clip_id == c
                )
            ).one()
            for n, c in clips.items()
        }
        audits = s.scalars(select(AuditEvent.entity_id).where(AuditEvent.entity == "resolution")).all()
    assert (res[3].label, res[3].method, res[3].agreement) == ("no", "majority", pytest.approx(2 / 3))
    assert (res[6].label, res[6].method) == ("yes", "majority")
    assert res[4].method == "imported"
    # One audit row per change: the adjudication, three unanimous and three majority resolutions.
    assert len(audits) == 7


def test_auto_resolve_waits_for_k_annotations_and_reads_the_project_setting(project):
    ws, p, users, _ = project
    with ws.db.write() as s:
        late = _clip(s, p.id, 99)
        for who in "ab":
            submit_annotation(s, p.id, users[who], late, label="yes")
        assert auto_resolve(s, p.id, rule="unanimous") == 4  # clips 0, 1, 5, 7; not the one with two labels
        assert auto_resolve(s, p.id, rule="unanimous", min_annotations=2) == 1
        update_project(s, p.id, settings={"auto_resolve": "off"})
        assert auto_resolve(s, p.id) == 0
        update_project(s, p.id, settings={"auto_resolve": "majority"})
        assert auto_resolve(s, p.id) == 3


def test_hlp_per_tag_counts_annotations_equal_to_the_final_label(project):
    ws, p, _, _ = project
    with ws.db.read() as s:
        hlp = project_hlp(s, p.id)
    correct = {
        tag: [lab == TRUTH[n] for n, (labels, tags) in RATINGS.items() if tag in tags for lab in labels]
        for tag in ("noise:car", "noise:none")
    }
    assert hlp["noise:car"] == pytest.approx(np.mean(correct["noise:car"]))
    assert hlp["noise:none"] == pytest.approx(np.mean(correct["noise:none"]))
    assert hlp["all"] == pytest.approx(np.mean(correct["noise:car"] + correct["noise:none"]))
    with ws.db.read() as s:
        speakers = project_agreement(s, p.id, n_boot=0)["hlp"].query("slice == 'speaker'").set_index("value")
    even = [lab == TRUTH[n] for n, (labels, _) in RATINGS.items() if n % 2 == 0 for lab in labels]
    assert speakers.loc["s0", "hlp"] == pytest.approx(np.mean(even))


def test_disagreements_rank_even_splits_first_and_drop_settled_clips(project):
    ws, p, users, clips = project
    with ws.db.read() as s:
        ranked = disagreements(s, p.id)
    # Unanimous clips without an unsure flag are not disagreements; the 1-1-1 split comes first.
    assert set(ranked["clip_id"]) == {clips[n] for n in (2, 3, 4, 6)}
    assert ranked["clip_id"].iloc[0] == clips[4]
    row6 = ranked.set_index("clip_id").loc[clips[6]]
    assert row6["n_unsure"] == 1
    assert row6["votes"] == {"yes": 2, "no": 1}
    assert {r["annotator"] for r in row6["ratings"]} == {"a", "b", "c"}
    # Of the 2-1 splits, the one with an unsure flag ranks first.
    assert ranked["clip_id"].iloc[1] == clips[6]
    with ws.db.write() as s:
        resolve_clip(s, p, clips[4], label="maybe", reviewer_id=users["rosa"])
    with ws.db.read() as s:
        assert clips[4] not in set(disagreements(s, p.id)["clip_id"])
        assert clips[4] in set(disagreements(s, p.id, open_only=False)["clip_id"])
        assert len(disagreements(s, p.id, limit=2)) == 2


def test_gold_from_review_and_the_prefilled_proposal_link(project):
    ws, p, users, clips = project
    with ws.db.write() as s:
        gold = add_gold_example(
            s, p, clips[4], label="maybe", explanation="Rising tone: maybe.", actor_id=users["rosa"]
        )
    assert (gold.version, gold.label) == (2, "maybe")
    link = convention_proposal_link(clips[4], {"yes": 1, "no": 1, "maybe": 1}, ["noise:none"])
    proposal = cv.proposal_from_query(parse_qs(link.split("?", 1)[1]))
    assert link.startswith("conventions?")
    assert proposal.clip_id == clips[4]
    assert "yes ×1 / no ×1 / maybe ×1 (noise:none)" in proposal.note


def test_transcript_error_rates_use_the_project_normalisation(workspace):
    ws = workspace
    texts = {
        "a": ["Turn the lights off.", "Um, play some music", "what's the weather"],
        "b": ["turn the light off", "play music", "What's the weather?"],
    }
    with ws.db.write() as s:
        p = create_project(
            s,
            name="asr",
            task_kind="transcription",
            annotations_per_clip=2,
            normalization={"remove_fillers": ["um"]},
        )
        ids = {n: add_user(s, name=n, role="annotator").id for n in "ab"}
        clip_ids = [_clip(s, p.id, i, k=2) for i in range(3)]
        for who, lines in texts.items():
            for clip_id, line in zip(clip_ids, lines, strict=True):
                assert submit_annotation(s, p.id, ids[who], clip_id, transcript=line).ok
    with ws.db.read() as s:
        report = project_agreement(s, p.id, n_boot=0)
    transform = jiwer.Compose(
        [
            jiwer.ToLowerCase(),
            jiwer.RemovePunctuation(),
            jiwer.RemoveSpecificWords(["um"]),
            jiwer.RemoveMultipleSpaces(),
            jiwer.Strip(),
        ]
    )
    refs = [transform(t) for t in texts["a"]]
    hyps = [transform(t) for t in texts["b"]]
    assert report["transcripts"]["overall"]["wer"] == pytest.approx(jiwer.wer(refs, hyps))
    assert report["n_items"] == 0  # no classes in a transcription project
    with ws.db.read() as s:
        ranked = disagreements(s, p.id)
    # "What's the weather" matches once normalised; the other two clips still differ.
    assert set(ranked["clip_id"]) == set(clip_ids[:2])
    assert ranked.set_index("clip_id").loc[clip_ids[1], "votes"] == {"play some music": 1, "play music": 1}
