"""A class key pressed on the Label page sends a fixed number of SQL statements, from its callback
(the submit and the claim of the next clip) to the end of the run that shows the next clip; and the
user read once per run is still read on every run, so a revoked session is refused on the next one.
"""

from __future__ import annotations

import time
from collections import Counter

from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from db.models import Annotation
from labeling.platform.auth import add_user, end_sessions, get_user, update_user
from tests.app.conftest import new_app

#: Statements of one press, after the first (whose run fills the caches): the submit (a read of what
#: it checks, the slot, the annotation, the claim dropped, the audit event: 5), the next clip's claim
#: (the queue settings, expired claims forgotten, the annotator's own claim, the next candidate, the
#: claim: 5), then the run: who is signed in and the projects (2 each, with their BEGIN), the clip's
#: task (clip, own annotation, conventions, with BEGIN: 4) and the progress caption (3, with BEGIN: 4).
#: A change that adds a statement to every key press changes this number.
PRESS_STATEMENTS = 22


def _press(at, klass: int = 0):
    at.session_state["label.shown_at"] = time.monotonic() - 1.0  # listened for a second
    at.button(key=f"label.class.{klass}.{at.session_state['label.key']}").click()
    return at


def _counted(at) -> Counter[str]:
    sent: Counter[str] = Counter()

    def count(conn, cursor, statement, *args) -> None:
        sent[" ".join(statement.split()).split(" ", 1)[0]] += 1

    event.listen(Engine, "before_cursor_execute", count)
    try:
        at.run()
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    assert not at.exception, at.exception
    return sent


def _clip(at) -> int:
    return int(at.subheader[0].value.removeprefix("Clip "))


def test_a_key_press_sends_the_same_few_statements_every_time(app_env):
    with app_env.db.write() as s:
        add_user(s, name="ana", role="annotator")
    at = new_app("ana").run()
    assert not at.exception, at.exception
    _press(at).run()  # the first press fills the page's caches
    counts = []
    for _ in range(3):
        before = _clip(at)
        sent = _counted(_press(at))
        assert _clip(at) != before  # the press labelled its clip and the next one is on screen
        assert at.success[0].value == f"Clip {before}: saved"
        counts.append(sum(sent.values()))
        assert sent["INSERT"] == 3, sent  # the annotation, its audit event, the next clip's claim
    assert counts == [PRESS_STATEMENTS] * 3, counts
    with app_env.db.read() as s:
        assert len(s.scalars(select(Annotation)).all()) == 4


def test_a_session_revoked_between_two_presses_is_refused_on_the_next_run(app_env):
    with app_env.db.write() as s:
        add_user(s, name="ana", role="annotator")
    at = new_app("ana").run()
    _press(at).run()
    assert "Signed in as **ana** (annotator)" in [c.value for c in at.sidebar.caption]
    with app_env.db.write() as s:
        update_user(s, "ana", role="reviewer")
    at.run()
    assert "Signed in as **ana** (reviewer)" in [c.value for c in at.sidebar.caption]  # read afresh
    with app_env.db.write() as s:
        end_sessions(s, get_user(s, "ana").id)
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Sign in to Earmark"
    assert not at.subheader  # no clip, no Label page
