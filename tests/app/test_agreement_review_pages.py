"""The Agreement and Review pages through AppTest: they render, annotators are refused, and a reviewer's
decision in the form is stored."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
from sqlalchemy import func, select, update
from streamlit.testing.v1 import AppTest

from db.models import AuditEvent, Clip, GoldExample, Resolution, StoredReport
from labeling.annotate.annotations import submit_annotation
from labeling.data.conventions import save_convention
from labeling.data.projects import get_project, update_project
from labeling.platform.auth import add_user, can_open
from labeling.platform.jobs import claim_job, run_claimed
from tests.app.conftest import ROOT, new_app, sign_in

# What the three annotators say about the twelve clips (imported labels alternate yes, no).
SAYS = {
    "ana": ["yes", "no"] * 6,
    "ben": ["yes", "no", "yes", "yes", "yes", "no", "no", "no", "yes", "no", "yes", "no"],
    "cho": ["yes", "no", "no", "no", "yes", "yes", "yes", "no", "yes", "no", "yes", "no"],
}


@pytest.fixture
def team(app_env):
    """The app's demo project with k=3, three annotators who disagree on a few clips, and staff."""
    with app_env.db.write() as s:
        project = update_project(s, "demo", annotations_per_clip=3)
        ids = {n: add_user(s, name=n, role="annotator").id for n in SAYS}
        ids["rosa"] = add_user(s, name="rosa", role="reviewer").id
        ids["eli"] = add_user(s, name="eli", role="engineer").id
        save_convention(s, project.id, text="# Say yes or no", author_id=ids["rosa"])
        clips = s.scalars(select(Clip.id).where(Clip.project_id == project.id).order_by(Clip.id)).all()
        for who, labels in SAYS.items():
            for i, (clip_id, label) in enumerate(zip(clips, labels, strict=True)):
                unsure = who == "ben" and i == 3
                assert submit_annotation(s, project.id, ids[who], clip_id, label=label, unsure=unsure).ok
    return app_env


def page(path: str, user: str) -> AppTest:
    """``path`` opened through the app's menu (its links to other pages need the navigation)."""
    at = new_app(user)
    at.session_state["app.project"] = "demo"
    return at.run().switch_page(path)


def alone(path: str, user: str) -> AppTest:
    """``path`` run by itself, as a stale tab or a typed URL would reach it: its own role check decides."""
    at = AppTest.from_file(str(ROOT / path), default_timeout=60)
    sign_in(at, user)
    at.session_state["app.project"] = "demo"
    return at


@pytest.mark.parametrize("user", ["rosa", "eli", "admin"])
def test_agreement_page_renders_the_report_for_staff(team, user):
    at = page("pages/quality/agreement.py", user).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Agreement"
    metrics = {m.label: m.value for m in at.metric}
    assert set(metrics) >= {"Krippendorff's alpha", "Fleiss' kappa", "Percent agreement"}
    assert metrics["Fleiss' kappa"] != "n/a"  # every clip has three labels
    assert len(at.tabs) >= 5


def test_review_page_lists_disagreements_with_who_said_what(team):
    at = page("pages/quality/review.py", "rosa").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Review"
    # The 3rd, 4th, 6th and 7th clips split 2-1.
    assert len(at.selectbox(key="review.clip").options) == 4
    assert {m.label for m in at.metric} == {"ana", "ben", "cho"}


@pytest.mark.parametrize("path", ["pages/quality/agreement.py", "pages/quality/review.py"])
def test_an_annotator_is_refused_both_pages(team, path):
    at = alone(path, "ana").run()
    assert not at.exception
    assert "annotator role may not" in at.error[0].value
    assert not at.metric
    assert not at.dataframe
    # The app's menu leaves it out (its URL leads to a refusal).
    assert not can_open("annotator", path.removeprefix("pages/").removesuffix(".py"))
    assert not at.metric


def test_an_engineer_may_read_agreement_but_not_review(team):
    at = alone("pages/quality/review.py", "eli").run()
    assert "engineer role may not review" in at.error[0].value
    assert not at.metric
    assert not can_open("engineer", "review")
    assert can_open("engineer", "agreement")


def test_a_reviewer_resolves_a_clip_through_the_form(team):
    at = page("pages/quality/review.py", "rosa").run()
    clip_id = at.selectbox(key="review.clip").value
    at.radio(key=f"review.label.{clip_id}").set_value("no")
    at.checkbox(key=f"review.gold.{clip_id}").check()
    at.text_area(key=f"review.why.{clip_id}").input("The vowel is clearly 'o'.")
    at.button(key="review.resolve").click().run()
    assert not at.exception, at.exception
    assert f"Clip {clip_id} resolved as no" in at.success[0].value
    # The clip left the queue, and the next one is on screen.
    assert len(at.selectbox(key="review.clip").options) == 3
    assert at.selectbox(key="review.clip").value != clip_id
    with team.db.read() as s:
        stored = s.get(Resolution, clip_id)
        assert (stored.label, stored.method) == ("no", "adjudicated")
        assert s.scalar(select(GoldExample.label).where(GoldExample.clip_id == clip_id)) == "no"
        assert s.scalar(
            select(AuditEvent.id).where(
                AuditEvent.entity == "resolution", AuditEvent.entity_id == str(clip_id)
            )
        )


def test_gold_without_an_explanation_saves_nothing(team):
    at = page("pages/quality/review.py", "rosa").run()
    clip_id = at.selectbox(key="review.clip").value
    at.checkbox(key=f"review.gold.{clip_id}").check()
    at.button(key="review.resolve").click().run()
    assert "Nothing was saved" in at.error[0].value
    with team.db.read() as s:
        assert s.get(Resolution, clip_id).method == "imported"


def test_auto_resolve_button_applies_the_project_rule(team):
    with team.db.write() as s:
        update_project(s, "demo", settings={"auto_resolve": "majority"})
    at = page("pages/quality/review.py", "rosa").run()
    at.button(key="review.auto").click().run()
    assert "The majority rule resolved 12 clips" in at.success[0].value
    assert "No open disagreements" in at.success[1].value
    with team.db.read() as s:
        pid = get_project(s, "demo").id
        methods = set(s.scalars(select(Resolution.method).where(Resolution.project_id == pid)))
    assert methods == {"unanimous", "majority"}


def test_both_pages_are_in_the_app_menu_for_a_reviewer(team):
    at = page("pages/quality/agreement.py", "rosa").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Agreement"
    at.session_state["app.project"] = "demo"
    at.switch_page("pages/quality/review.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Review"


def test_a_transcription_project_shows_error_rates_and_queues_differing_transcripts(app_env):
    typed = {"ana": ["turn it off", "Um, play music", "stop"], "ben": ["turn it of", "play music", "stop."]}
    with app_env.db.write() as s:
        project = update_project(s, "demo", task_kind="transcription", annotations_per_clip=2)
        ids = {n: add_user(s, name=n, role="annotator").id for n in typed}
        add_user(s, name="rosa", role="reviewer")
        clips = s.scalars(select(Clip.id).where(Clip.project_id == project.id).order_by(Clip.id)).all()
        for who, lines in typed.items():
            for clip_id, line in zip(clips[:3], lines, strict=True):
                assert submit_annotation(s, project.id, ids[who], clip_id, transcript=line).ok
    at = page("pages/quality/agreement.py", "rosa").run()
    assert not at.exception, at.exception
    assert any("WER" in c.value for c in at.caption)
    at.session_state["app.project"] = "demo"
    at.switch_page("pages/quality/review.py").run()
    assert not at.exception, at.exception
    # Only "turn it off" / "turn it of" still differs after removing fillers and punctuation.
    assert len(at.selectbox(key="review.clip").options) == 1
    assert at.selectbox(key="review.clip").value == clips[0]
    # Its link to propose a convention change names the project, so it opens the same in a new tab.
    (link,) = [x for x in at.get("page_link") if x.proto.label.startswith("Propose a convention change")]
    assert parse_qs(link.proto.query_string)["project"] == ["demo"]
    at.text_input(key=f"review.transcript.{clips[0]}").input("turn it off")
    at.button(key="review.resolve").click().run()
    assert not at.exception, at.exception
    with app_env.db.read() as s:
        stored = s.get(Resolution, clips[0])
        assert (stored.transcript, stored.label, stored.method) == ("turn it off", None, "adjudicated")


def test_a_reviewer_settles_a_suspected_label_error(team):
    import pandas as pd

    from db.models import ClipFlag
    from labeling.quality.label_issues import flag_label_issues

    with team.db.write() as s:
        project = get_project(s, "demo")
        clip_id = s.scalars(select(Clip.id).where(Clip.project_id == project.id).order_by(Clip.id)).first()
        candidates = pd.DataFrame(
            [
                {
                    "clip_id": clip_id,
                    "given_label": "yes",
                    "suggested_label": "no",
                    "self_confidence": 0.05,
                    "suggested_confidence": 0.9,
                }
            ]
        )
        assert flag_label_issues(s, project.id, candidates) == 1
    at = page("pages/quality/review.py", "rosa").run()
    assert not at.exception, at.exception
    at.button(key="review.suspect_change").click().run()
    assert not at.exception, at.exception
    assert any(f"Clip {clip_id} settled as no" in m.value for m in at.success)
    with team.db.read() as s:
        stored = s.get(Resolution, clip_id)
        assert (stored.label, stored.method) == ("no", "adjudicated")
        flag = s.scalars(select(ClipFlag).where(ClipFlag.clip_id == clip_id)).one()
        assert flag.resolved_at is not None
    # The settled clip leaves the suspects list.
    assert "review.suspect" not in [w.key for w in at.selectbox]


def test_agreement_shows_an_older_report_as_such_and_computes_it_on_request(team):
    at = page("pages/quality/agreement.py", "rosa").run()
    assert "from 3 annotators (36 labels)" in at.caption[0].value
    with team.db.write() as s:
        s.execute(update(StoredReport).values(seconds=30.0))  # as a large project's report would take
        project = update_project(s, "demo", annotations_per_clip=4)
        dan = add_user(s, name="dan", role="annotator").id
        first = s.scalars(select(Clip.id).where(Clip.project_id == project.id).order_by(Clip.id)).first()
        assert submit_annotation(s, project.id, dan, first, label="no").ok
    # Another visitor after the new label: the stored report, said to be older than the labels.
    at = page("pages/quality/agreement.py", "eli").run()
    assert not at.exception, at.exception
    assert "from 3 annotators (36 labels)" in at.caption[0].value
    assert any("labels have changed since" in i.value for i in at.info)
    at.button(key="agreement_view.recompute").click().run()
    assert not at.exception, at.exception
    assert "from 4 annotators (37 labels)" in at.caption[0].value
    assert not any("labels have changed since" in i.value for i in at.info)


def test_with_a_worker_on_the_report_the_first_visit_waits_for_it_instead_of_computing_it(team):
    # The labels queued the refresh; a worker has taken it and is computing.
    claim = claim_job(team, worker="test-worker", kinds=["agreement"], quiet=False)
    assert claim is not None
    at = page("pages/quality/agreement.py", "rosa").run()
    assert not at.exception, at.exception
    assert any("being computed by a background job" in i.value for i in at.info)
    assert not at.metric  # no report computed in the page
    with team.db.read() as s:
        assert s.scalar(select(func.count()).select_from(StoredReport)) == 0
    assert run_claimed(team, claim) == "succeeded"
    at.run()
    assert not at.exception, at.exception
    assert "from 3 annotators (36 labels)" in at.caption[0].value
