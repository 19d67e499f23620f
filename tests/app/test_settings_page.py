"""The Project settings page through AppTest: save, refuse what would orphan labels, confirm k changes."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from db.models import AuditEvent, Clip
from labeling.data.projects import get_project
from labeling.platform.auth import add_user
from tests.app.conftest import ROOT, sign_in


@pytest.fixture
def env(app_env):
    with app_env.db.write() as s:
        add_user(s, name="eli", role="engineer")
    return app_env


def settings_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages/data/settings.py"), default_timeout=120)
    sign_in(at, "eli")
    at.session_state["app.project"] = "demo"
    return at.run()


def widget(at: AppTest, kind: str, label: str):  # type: ignore[no-untyped-def]
    return next(w for w in getattr(at, kind) if w.label.startswith(label))


def save(at: AppTest) -> AppTest:
    return next(b for b in at.button if b.label == "Save settings").click().run()


def test_an_imported_project_gets_its_classes_and_tags(env):
    at = settings_page()
    assert not at.exception
    assert at.title[0].value == "Project settings"
    widget(at, "text_area", "Classes").set_value("yes, no\nmaybe")
    widget(at, "text_area", "Tag groups").set_value("noise: car, clean\nchannel: telephone")
    widget(at, "selectbox", "Auto-resolve").set_value("majority")
    at = save(at)
    assert not at.exception
    assert "Saved: classes, tag groups, workflow settings." in at.success[0].value
    with env.db.read() as s:
        info = get_project(s, "demo")
        audited = s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.entity == "project"))
    assert info.classes == ["yes", "no", "maybe"]
    assert info.tag_groups == {"noise": ["car", "clean"], "channel": ["telephone"]}
    assert info.settings["auto_resolve"] == "majority"
    assert audited == 2  # created by the import, changed here
    # The form now shows what is stored.
    assert widget(at, "text_area", "Classes").value == "yes, no, maybe"


def test_removing_a_class_the_final_labels_use_is_refused(env):
    at = settings_page()
    widget(at, "text_area", "Classes").set_value("yes, no")
    at = save(at)
    widget(at, "text_area", "Classes").set_value("maybe")
    at = save(at)
    assert not at.exception
    assert "class 'yes' cannot be removed: 6 final labels use it" in at.error[0].value
    with env.db.read() as s:
        assert get_project(s, "demo").classes == ["yes", "no"]


def test_raising_k_asks_first_and_applies_when_confirmed(env):
    at = settings_page()
    widget(at, "number_input", "Annotations per clip").set_value(3)
    at = save(at)
    assert not at.exception
    assert "affects clips in the labeling queue" in at.warning[0].value
    assert any("k rises from 1 to 3" in m.value for m in at.markdown)
    with env.db.read() as s:
        assert get_project(s, "demo").annotations_per_clip == 1
    at = at.button(key="settings.confirm").click().run()
    assert not at.exception
    assert "Saved: annotations per clip (k)." in at.success[0].value
    with env.db.read() as s:
        assert get_project(s, "demo").annotations_per_clip == 3
        assert set(s.scalars(select(Clip.annotations_needed))) == {3}


def test_keeping_the_settings_puts_the_stored_values_back_in_the_form(env):
    at = settings_page()
    widget(at, "number_input", "Annotations per clip").set_value(3)
    at = save(at)
    assert "affects clips in the labeling queue" in at.warning[0].value
    at = at.button(key="settings.cancel").click().run()
    assert not at.exception
    assert widget(at, "number_input", "Annotations per clip").value == 1  # what is stored, not the edit
    with env.db.read() as s:
        assert get_project(s, "demo").annotations_per_clip == 1


def test_the_queue_order_is_a_setting_that_says_what_it_does(env):
    at = settings_page()
    order = widget(at, "selectbox", "Queue order")
    assert order.value == "unlabelled_first"  # a project that never chose
    order.set_value("random")
    at = save(at)
    assert not at.exception
    assert "the queue's order becomes “random”" in at.success[0].value
    with env.db.read() as s:
        assert get_project(s, "demo").settings["queue_order"] == "random"
    assert widget(at, "selectbox", "Queue order").value == "random"


def test_monitoring_thresholds_are_shown_validated_and_saved(env):
    at = settings_page()
    assert widget(at, "number_input", "Labels the accuracy test needs").value == 30
    assert widget(at, "number_input", "p-value that raises an alarm").value == pytest.approx(0.001)
    widget(at, "number_input", "p-value that raises an alarm").set_value(0.0001)
    widget(at, "number_input", "Labels the accuracy test needs").set_value(20)
    at = save(at)
    assert not at.exception
    saved = at.success[0].value
    assert "Saved: workflow settings." in saved
    assert "alarm_p 0.001 → 0.0001" in saved
    assert "min_labels 30 → 20" in saved
    with env.db.read() as s:
        assert get_project(s, "demo").settings["monitoring"] == {"alarm_p": 0.0001, "min_labels": 20}
    assert widget(at, "number_input", "Labels the accuracy test needs").value == 20

    # An alarm threshold above the drift threshold is refused, and nothing changes.
    widget(at, "number_input", "p-value that raises an alarm").set_value(0.2)
    at = save(at)
    assert not at.exception
    assert "alarm_p (0.2) must not exceed alpha (0.05)" in at.error[0].value
    with env.db.read() as s:
        assert get_project(s, "demo").settings["monitoring"] == {"alarm_p": 0.0001, "min_labels": 20}
