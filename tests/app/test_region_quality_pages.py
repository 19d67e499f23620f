"""The Agreement and Review pages of a regions project, through AppTest: the agreement shown is the
project's region agreement, and a reviewer adjudicates, replaces and cuts final regions."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db.models import AuditEvent
from labeling.data.clips import clip_frame
from labeling.data.importer import ensure_users, import_path
from labeling.data.projects import create_project, get_project
from labeling.data.regions import list_regions, save_regions
from labeling.quality.region_agreement import project_region_agreement
from tests.app.test_label_pages import page, shown_text
from tests.audio import tone, write_wav
from tests.db.test_region_agreement_service import DRAWN, SECONDS


@pytest.fixture
def meet(app_env, tmp_path):
    ws = app_env
    src = tmp_path / "rec"
    for i, (name, seconds) in enumerate(SECONDS.items()):
        write_wav(src / name, tone(seconds, freq=200 + 100 * i))
    with ws.db.write() as s:
        info = create_project(s, name="meet", task_kind="regions", classes=["speech", "noise"])
        users = ensure_users(s, {"ann", "bob", "cat"})
    import_path(ws, src, "meet", create=False)
    with ws.db.write() as s:
        clips = clip_frame(s, info.id).set_index("original_name")["clip_id"].to_dict()
        for (name, who), regions in DRAWN.items():
            rows = [{"start": a, "end": b, "label": c} for a, b, c in regions]
            save_regions(s, info.id, clips[name], rows, annotator_id=users[who])
    return ws, info.id, clips


def metrics(at):
    return {m.label: m.value for m in at.metric}


def test_agreement_page_shows_the_projects_region_agreement(meet):
    ws, pid, _ = meet
    with ws.db.read() as s:
        expected = project_region_agreement(s, pid)
        wider = project_region_agreement(s, pid, tolerance=0.5)
    at = page("pages/quality/agreement.py", "admin", project="meet").run()
    assert not at.exception
    shown = metrics(at)
    a = expected.agreement
    onset = a.boundaries.groupby("kind")["f1"].mean()
    assert shown["Frame kappa (Fleiss)"] == f"{a.fleiss_kappa:.3f}"
    assert shown["Unitizing alpha"] == f"{a.unitizing.alpha:.3f}"
    assert shown["Onset F1"] == f"{onset['onset']:.3f}"
    assert shown["Offset F1"] == f"{onset['offset']:.3f}"
    assert shown["Mean DER"] == f"{expected.diarization['der'].mean():.3f}"
    # cat labelled only b.wav and is compared with the others there; the page says what each figure covers.
    assert (
        "2 recordings labelled by two or more of 3 annotators (ann, bob, cat): 1 by 2, 1 by 3"
        in shown_text(at)
    )
    assert "not compared" not in shown_text(at)
    (table,) = [d.value for d in at.dataframe if {"kappa", "der"} <= set(d.value.columns)]
    pairs = table.set_index(["rater_a", "rater_b"])["n_recordings"].to_dict()
    assert pairs == {("ann", "bob"): 2, ("ann", "cat"): 1, ("bob", "cat"): 1}
    assert len(at.get("plotly_chart")) == 4

    at.select_slider(key="ragree.tolerance").set_value(500).run()
    assert not at.exception
    wide_onset = wider.agreement.boundaries.groupby("kind")["f1"].mean()["onset"]
    assert metrics(at)["Onset F1"] == f"{wide_onset:.3f}"


def test_review_page_ranks_recordings_and_saves_a_final_set(meet):
    ws, pid, clips = meet
    at = page("pages/quality/review.py", "admin", project="meet").run()
    assert not at.exception
    # b.wav first: cat marked all of it noise, where ann and bob heard speech.
    assert at.selectbox(key="rreview.recording").options == [
        f"b.wav (recording {clips['b.wav']})",
        f"a.wav (recording {clips['a.wav']})",
    ]
    at.selectbox(key="rreview.recording").set_value(clips["a.wav"]).run()
    assert "2 recordings with two or more annotators" in shown_text(at)
    assert any(c.proto.id for c in at.get("plotly_chart"))  # the stacked timeline
    assert at.button(key="rreview.save." + str(clips["a.wav"])).disabled is False

    at.radio(key=f"rreview.start.{clips['a.wav']}").set_value("bob's whole set").run()
    at.button(key=f"rreview.save.{clips['a.wav']}").click().run()
    assert not at.exception
    assert "Final regions saved: 3 regions (3 added" in shown_text(at)
    with ws.db.read() as s:
        final = list_regions(s, pid, clip_id=clips["a.wav"], sources=["final"])
        actor = s.scalar(select(AuditEvent.actor_id).order_by(AuditEvent.id.desc()).limit(1))
    drawn = sorted(DRAWN[("a.wav", "bob")])
    assert [tuple(r) for r in final[["start", "end", "label"]].to_numpy().tolist()] == drawn
    assert actor is not None

    # Replacing it: the changes are shown and nothing is saved until the reviewer says so.
    at.radio(key=f"rreview.start.{clips['a.wav']}").set_value("ann's whole set").run()
    assert "Replacing the final set" in shown_text(at)
    assert at.button(key=f"rreview.save.{clips['a.wav']}").disabled
    next(c for c in at.checkbox if c.key.startswith(f"rreview.sure.{clips['a.wav']}")).check().run()
    at.button(key=f"rreview.save.{clips['a.wav']}").click().run()
    with ws.db.read() as s:
        final = list_regions(s, pid, clip_id=clips["a.wav"], sources=["final"])
    assert [tuple(r) for r in final[["start", "end", "label"]].to_numpy().tolist()] == sorted(
        DRAWN[("a.wav", "ann")]
    )


def test_review_page_cuts_final_regions_into_a_clip_project_after_confirmation(meet):
    ws, _, clips = meet
    at = page("pages/quality/review.py", "admin", project="meet").run()
    assert "has no final regions yet" in shown_text(at)
    at.selectbox(key="rreview.recording").set_value(clips["a.wav"]).run()
    at.button(key=f"rreview.save.{clips['a.wav']}").click().run()
    at.text_input(key="rreview.cut_to").set_value("meet-clips").run()
    assert "would make from 'meet': 3 clips from 1 recordings" in shown_text(at)
    assert at.button(key="rreview.cut").disabled
    at.checkbox(key="rreview.cut_ok").check().run()
    at.button(key="rreview.cut").click().run()
    assert not at.exception
    assert "classification project 'meet-clips' made from 'meet': 3 clips" in shown_text(at)
    with ws.db.read() as s:
        made = clip_frame(s, get_project(s, "meet-clips").id)
    assert sorted(made["label"].tolist()) == sorted(c for _, _, c in DRAWN[("a.wav", "ann")])


def test_pages_show_the_reports_a_worker_stored_and_say_when_regions_changed_since(meet, monkeypatch):
    from labeling.platform.jobs import run_worker
    from labeling.quality import region_agreement as ra
    from labeling.quality import report_store

    ws, pid, clips = meet
    run_worker(ws, once=True, kinds=["region_agreement", "region_review_queue"])
    with ws.db.read() as s:
        expected = project_region_agreement(s, pid)

    def refuse(*args, **kwargs):
        raise AssertionError("the page computed the report instead of reading the stored one")

    monkeypatch.setattr(ra, "project_region_agreement", refuse)
    monkeypatch.setattr(ra, "region_review_queue", refuse)
    at = page("pages/quality/agreement.py", "admin", project="meet").run()
    assert not at.exception
    assert metrics(at)["Frame kappa (Fleiss)"] == f"{expected.agreement.fleiss_kappa:.3f}"
    assert "have changed since" not in shown_text(at)
    review = page("pages/quality/review.py", "admin", project="meet").run()
    assert not review.exception
    assert "2 recordings with two or more annotators" in shown_text(review)

    # A save after the worker ran: the stored report is shown, dated, while a refresh is queued.
    monkeypatch.setattr(report_store, "INLINE_S", 0.0)  # as if it took long to compute
    with ws.db.write() as s:
        users = ensure_users(s, {"ann"})
        save_regions(
            s, pid, clips["b.wav"], [{"start": 0.0, "end": 5.0, "label": "noise"}], annotator_id=users["ann"]
        )
    at = page("pages/quality/agreement.py", "admin", project="meet").run()
    assert not at.exception
    assert metrics(at)["Frame kappa (Fleiss)"] == f"{expected.agreement.fleiss_kappa:.3f}"
    assert "regions have changed since" in shown_text(at)
    review = page("pages/quality/review.py", "admin", project="meet").run()
    assert not review.exception
    assert "regions have changed since" in shown_text(review)


def test_review_page_cut_preview_names_recordings_changed_after_their_final_set(meet):
    ws, pid, clips = meet
    from labeling.annotate.region_review import adjudicate_regions
    from labeling.platform.auth import get_user

    final = [{"start": a, "end": b, "label": c, "text": None} for a, b, c in DRAWN[("a.wav", "ann")]]
    with ws.db.write() as s:
        adjudicate_regions(s, pid, clips["a.wav"], final, reviewer_id=get_user(s, "admin").id)
    at = page("pages/quality/review.py", "admin", project="meet").run()
    assert "changed by annotators" not in shown_text(at)
    with ws.db.write() as s:
        bob = get_user(s, "bob").id
        rows = [
            {"start": a, "end": b, "label": c} for a, b, c in [*DRAWN[("a.wav", "bob")], (7.6, 7.9, "noise")]
        ]
        save_regions(s, pid, clips["a.wav"], rows, annotator_id=bob)
    at = page("pages/quality/review.py", "admin", project="meet").run()
    assert not at.exception
    warning = next(w.value for w in at.warning if "changed by annotators" in w.value)
    assert "a.wav: changed by bob" in warning
    assert at.button(key="rreview.cut").disabled  # the warning comes before the confirmation
