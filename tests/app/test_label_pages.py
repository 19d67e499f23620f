"""Sign-in, roles, the Label page and the Conventions page, driven through AppTest."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from db.models import Annotation, Clip, ConventionVersion
from db.writer_turns import WriteWaitTimeout
from labeling.annotate.annotations import submit_annotation
from labeling.data.conventions import save_convention
from labeling.data.importer import import_path
from labeling.data.missing_audio import missing_audio_frame
from labeling.data.projects import get_project, update_project
from labeling.platform.auth import add_user, get_user
from tests.app.conftest import ROOT, new_app, sign_in

PASSWORD = "correct horse"


@pytest.fixture
def team(app_env):
    """The demo project (classes yes/no) with k=2, two annotators and a reviewer."""
    with app_env.db.write() as s:
        update_project(s, "demo", annotations_per_clip=2)
        for name, role in (("ana", "annotator"), ("ben", "annotator"), ("rosa", "reviewer")):
            add_user(s, name=name, role=role, password=PASSWORD)
    return app_env


def page(path: str, user: str, project: str = "demo") -> AppTest:
    """One page on its own, signed in, with the project the sidebar would have selected."""
    at = AppTest.from_file(str(ROOT / path), default_timeout=60)
    sign_in(at, user)
    at.session_state["app.project"] = project
    return at


def shown_text(at: AppTest) -> str:
    parts = []
    for kind in ("title", "subheader", "markdown", "caption", "text", "info", "success", "warning", "error"):
        parts += [str(el.value) for el in getattr(at, kind)]
    return "\n".join(parts)


def listened(at: AppTest) -> AppTest:
    """Pretend the annotator has listened for a second (the page ignores instant double clicks)."""
    at.session_state["label.shown_at"] = time.monotonic() - 1.0
    return at


def key(at: AppTest, widget: str) -> str:
    """The key of a Label page widget: each clip on screen gets its own widgets."""
    return f"label.{widget}.{at.session_state['label.key']}"


def test_the_sign_in_form_lets_a_known_user_in(team):
    at = new_app(user=None).run()
    assert at.title[0].value == "Sign in to Earmark"
    at.text_input(key="login.name").input("ana")
    at.text_input(key="login.password").input("wrong horse")
    at.button(key="login.submit").click().run()
    assert not at.exception, at.exception
    assert at.error[0].value == "Wrong name or password."
    assert "auth.token" not in at.session_state

    at.text_input(key="login.name").input("ana")
    at.text_input(key="login.password").input(PASSWORD)
    at.button(key="login.submit").click().run()
    assert not at.exception
    assert "auth.token" in at.session_state
    assert at.session_state["login.password"] == ""  # not kept around


def test_the_demo_banner_lists_demo_accounts_while_their_passwords_are_public(app_env):
    from labeling.platform.auth import create_demo_users

    with app_env.db.write() as s:
        create_demo_users(s)
    at = new_app(user=None).run()
    assert "This is a demo" in at.info[0].value
    assert "ana-demo" in at.table[0].value.to_string()


def test_an_annotator_lands_on_label_and_is_refused_other_pages(team):
    at = new_app("ana").run()
    assert not at.exception
    assert at.title[0].value == "Label"
    # Each page checks the role itself, however it was reached (menu, URL, or a stale tab).
    for other in ("pages/data/overview.py", "pages/data/clips.py", "pages/data/import_audio.py"):
        at = page(other, "ana").run()
        assert not at.exception
        assert "annotator role may not" in at.error[0].value
        assert not at.dataframe
        assert not at.metric
    at = page("pages/data/clips.py", "rosa").run()
    assert at.title[0].value == "Clips"
    # Nobody signed in: refused too.
    at = AppTest.from_file(str(ROOT / "pages/labeling/label.py"), default_timeout=60).run()
    assert "sign in first" in at.error[0].value


def test_label_submit_and_next(team):
    at = page("pages/labeling/label.py", "ana").run()
    assert not at.exception
    first = int(at.subheader[0].value.removeprefix("Clip "))
    second_class = at.button(key=key(at, "class.1")).label
    listened(at).button(key=key(at, "class.1")).click().run()
    assert not at.exception
    assert at.success[0].value == f"Clip {first}: saved"
    second = int(at.subheader[0].value.removeprefix("Clip "))
    assert second != first
    with team.db.read() as s:
        stored = s.scalars(select(Annotation)).one()
        assert (stored.clip_id, stored.label, stored.annotator_id) == (
            first,
            second_class,
            get_user(s, "ana").id,
        )
        assert stored.time_spent_ms >= 1000

    # Skip sets the clip aside; "cannot label" asks for the reason, then stores it and no class.
    listened(at).button(key=key(at, "skip")).click().run()
    third = int(at.subheader[0].value.removeprefix("Clip "))
    assert third not in (first, second)
    listened(at).button(key=key(at, "cannot")).click().run()
    assert "Why can it not be labelled?" in at.selectbox(key=key(at, "reason")).label  # asked at the box
    assert int(at.subheader[0].value.removeprefix("Clip ")) == third
    at.selectbox(key=key(at, "reason")).set_value("no speech")
    listened(at).button(key=key(at, "cannot")).click().run()
    assert at.success[0].value == f"Clip {third}: marked as cannot label (no speech)"
    with team.db.read() as s:
        reasons = dict(s.execute(select(Annotation.clip_id, Annotation.cannot_label_reason)).all())
    assert reasons == {first: None, third: "no speech"}

    # The last label can be taken back: its clip comes back, open again.
    at.button(key=key(at, "undo")).click().run()
    assert not at.exception
    assert at.info[0].value == f"Clip {third}: your label is undone"
    assert int(at.subheader[0].value.removeprefix("Clip ")) == third
    with team.db.read() as s:
        assert set(s.scalars(select(Annotation.clip_id))) == {first}


def test_a_submit_refused_for_waiting_too_long_says_so_and_keeps_the_clip(team, monkeypatch):
    def too_busy(*_args, **_kwargs):  # the SQLite writers' queue gave up on this submit
        raise WriteWaitTimeout(10.2, 10.0)

    # Patched before the first run: the button's callback is the one that run defined.
    monkeypatch.setattr("labeling.annotate.annotations.submit_annotation", too_busy)
    at = page("pages/labeling/label.py", "ana").run()
    first = int(at.subheader[0].value.removeprefix("Clip "))
    listened(at).button(key=key(at, "class.1")).click().run()
    assert not at.exception
    assert "the database is busy" in at.error[0].value
    assert "nothing was changed" in at.error[0].value
    assert int(at.subheader[0].value.removeprefix("Clip ")) == first  # still there to submit again
    with team.db.read() as s:
        assert s.scalars(select(Annotation)).first() is None


def test_the_count_of_open_clips_is_this_annotator_s(team):
    with team.db.write() as s:
        clip = s.scalars(select(Clip).order_by(Clip.id)).first()
        submit_annotation(s, clip.project_id, get_user(s, "ana").id, clip.id, label="yes")
    at = page("pages/labeling/label.py", "ana").run()
    assert "11 clips left for you" in at.caption[0].value
    # ben may still label the clip ana did (k = 2): all twelve are open for him.
    at = page("pages/labeling/label.py", "ben").run()
    assert "12 clips left for you" in at.caption[0].value


def test_a_clip_without_audio_is_flagged_and_the_pages_go_on(team):
    with team.db.write() as s:
        first, split, *_ = s.scalars(select(Clip).order_by(Clip.id)).all()
        for clip in (first, split):
            team.store.path(clip.storage_key).unlink()
        submit_annotation(s, split.project_id, get_user(s, "ana").id, split.id, label="yes")
        submit_annotation(s, split.project_id, get_user(s, "ben").id, split.id, label="no")
        add_user(s, name="cho", role="annotator", password=PASSWORD)
    # The queue hands cho the first clip; the page flags it and hands over the next one.
    at = page("pages/labeling/label.py", "cho").run()
    assert not at.exception
    assert f"audio of clip {first.id} is missing" in at.warning[0].value
    assert int(at.subheader[0].value.removeprefix("Clip ")) not in (first.id, split.id)
    # Pages that play a clip say so too, flag it, and go on.
    for path in ("pages/quality/agreement.py", "pages/quality/review.py"):
        at = new_app("rosa").run().switch_page(path).run()
        assert not at.exception, path
        assert any(f"audio of clip {split.id} is missing" in w.value for w in at.warning), path
    assert any(e.label == "Clips whose audio is missing (2)" for e in at.expander)  # for reviewers
    with team.db.read() as s:
        assert missing_audio_frame(s, first.project_id)["clip_id"].tolist() == [first.id, split.id]


def test_while_the_store_cannot_be_read_no_page_flags_a_clip(team):
    with team.db.write() as s:
        clip = s.scalars(select(Clip).order_by(Clip.id)).first()
        submit_annotation(s, clip.project_id, get_user(s, "ana").id, clip.id, label="yes")
        submit_annotation(s, clip.project_id, get_user(s, "ben").id, clip.id, label="no")
    store = team.store.path(clip.storage_key).parents[1]
    store.rename(store.with_name("audio-elsewhere"))  # a folder not mounted: every clip looks gone
    for path in ("pages/quality/agreement.py", "pages/quality/review.py"):
        at = new_app("rosa").run().switch_page(path).run()
        assert not at.exception, path
        assert any("audio store cannot be read" in e.value for e in at.error), path
        assert not any("is missing" in w.value for w in at.warning), path
        assert str(store) not in shown_text(at)
    at = page("pages/labeling/label.py", "ana").run()
    assert not at.exception
    assert any("audio store cannot be read" in e.value for e in at.error)
    with team.db.read() as s:
        assert missing_audio_frame(s, clip.project_id).empty


def test_labeling_is_blind_to_what_others_said(team, tmp_path):
    # A transcription project where ben has already transcribed every clip.
    src = team.settings.data_dir.parent / "src"
    import_path(team, src, "words", pattern=r"(?P<word>[a-z]+)_(?P<speaker>spk\d)_\d+\.wav")
    with team.db.write() as s:
        words = get_project(s, "words")
        update_project(s, words.id, task_kind="transcription", annotations_per_clip=2)
        ben = get_user(s, "ben").id
        save_convention(s, words.id, text="Write what you hear.")
    with team.db.write() as s:
        from db.models import Clip

        for cid in s.scalars(select(Clip.id).where(Clip.project_id == words.id)):
            assert submit_annotation(s, words.id, ben, cid, transcript=f"zebra crossing {cid}").ok
    at = page("pages/labeling/label.py", "ana", project="words").run()
    assert not at.exception
    assert at.text_area(key=key(at, "transcript")).value in ("", None)
    text = shown_text(at)
    assert "Clip " in text
    assert "Write what you hear." in text
    for leaked in ("zebra", "ben", "_spk", ".wav"):
        assert leaked not in text


def test_reviewer_publishes_a_version_that_annotators_then_see(team):
    at = page("pages/labeling/conventions.py", "rosa").run()
    assert not at.exception
    assert len(at.tabs) == 4
    at.text_area(key="conventions.text").input("# Digits\n\nSay **yes** only for a clear yes.")
    at.text_input(key="conventions.note").input("first version")
    at.button(key="conventions.publish").click().run()
    assert not at.exception
    assert at.success[0].value == "Published version 1."
    with team.db.read() as s:
        assert s.scalar(select(ConventionVersion.note)) == "first version"

    at = page("pages/labeling/label.py", "ana").run()
    assert at.subheader[1].value == "Conventions v1"
    assert "Say **yes** only for a clear yes." in shown_text(at)
    listened(at).button(key=key(at, "class.0")).click().run()
    with team.db.read() as s:
        assert s.scalar(select(Annotation.convention_version)) == 1

    # Annotators read the conventions but have no Edit tab.
    at = page("pages/labeling/conventions.py", "ana").run()
    assert len(at.tabs) == 2
    assert not [w for w in at.button if w.key == "conventions.publish"]


def test_a_proposal_link_prefills_the_change_note(team):
    with team.db.write() as s:
        save_convention(s, get_project(s, "demo").id, text="v1")
    at = page("pages/labeling/conventions.py", "rosa")
    at.query_params["clip"] = "3"
    at.query_params["note"] = "is a cough speech?"
    at.run()
    assert not at.exception
    assert at.text_input(key="conventions.note").value == "From clip 3: is a cough speech?"
    assert at.number_input(key="conventions.gold.clip").value == 3


def test_my_labels_lists_the_annotators_own_labels_only(team):
    with team.db.write() as s:
        pid = get_project(s, "demo").id
        ana, ben = get_user(s, "ana").id, get_user(s, "ben").id
        assert submit_annotation(s, pid, ana, 1, label="yes").ok
        assert submit_annotation(s, pid, ben, 2, label="no").ok
    at = page("pages/labeling/my_labels.py", "ana").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert table["clip_id"].tolist() == [1]
    assert table["locked"].tolist() == [False]
