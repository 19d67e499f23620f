"""What the Label page stores in Chromium is what the annotator chose for the clip on screen: tags do not
carry over to the next clip, and a key pressed while the next clip is on its way labels only the clip
that was on screen when the key went down."""

from __future__ import annotations

import re
import threading
import time

import pytest
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from labeling.data.importer import import_path
from labeling.data.projects import update_project
from labeling.platform.auth import add_user
from tests.audio import speechlike, write_wav
from tests.browser.conftest import assert_no_exception, open_page, settle, sign_in, stored_annotations

pytestmark = pytest.mark.browser
PASSWORD = "correct horse"


@pytest.fixture
def tagged(sqlite_workspace, tmp_path):
    ws = sqlite_workspace
    src = tmp_path / "src"
    for i in range(6):
        write_wav(src / f"clip_spk{i % 2}_{i}.wav", speechlike(300 + i))
    import_path(ws, src, "tags", pattern=r"clip_(?P<speaker>spk\d)_\d+\.wav")
    with ws.db.write() as s:
        update_project(
            s, "tags", classes=["yes", "no", "maybe"], tag_groups={"noise": ["car", "people", "none"]}
        )
        add_user(s, name="ana", role="annotator", password=PASSWORD)
    return ws


def stored(ws) -> list[tuple]:  # type: ignore[no-untyped-def]
    return stored_annotations(ws, "clip_id", "label", "tags")


def clip_on_screen(page) -> int:  # type: ignore[no-untyped-def]
    return int(page.get_by_role("heading", name="Clip ").first.inner_text().removeprefix("Clip "))


def test_tags_chosen_for_one_clip_are_not_stored_on_the_next(browser, serve, tagged):
    server = serve(tagged)
    page = open_page(browser, server.url)
    sign_in(page, "ana", PASSWORD)
    first = clip_on_screen(page)

    page.get_by_role("button", name=re.compile(r"^car\b")).click()  # its key follows the name
    page.keyboard.press("1")
    settle(page)
    assert_no_exception(page)
    second = clip_on_screen(page)
    assert second != first

    page.keyboard.press("2")
    settle(page)
    assert stored(tagged) == [(first, "yes", ["noise:car"]), (second, "no", [])]


class HeldServer:
    """Sits between the page and the Streamlit server: while held, what the server sends is kept
    back, so the page keeps showing what it showed (a slow network or a busy server, made certain)."""

    def __init__(self, page) -> None:  # type: ignore[no-untyped-def]
        self.held = False
        self.kept: list[str | bytes] = []
        self.finished = 0  # script runs the server has finished while held
        self.lock = threading.Lock()
        page.route_web_socket("**/_stcore/stream", self._route)

    def _route(self, ws) -> None:  # type: ignore[no-untyped-def]
        self.to_page = ws
        server = ws.connect_to_server()
        ws.on_message(server.send)
        server.on_message(self._from_server)

    def _from_server(self, message: str | bytes) -> None:
        with self.lock:
            if not self.held:
                self.to_page.send(message)
                return
            self.kept.append(message)
            if isinstance(message, bytes):
                msg = ForwardMsg()
                msg.ParseFromString(message)
                if msg.WhichOneof("type") == "script_finished":
                    self.finished += 1

    def hold(self) -> None:
        with self.lock:
            self.held, self.finished = True, 0

    def release(self) -> None:
        with self.lock:
            self.held = False
            for message in self.kept:
                self.to_page.send(message)
            self.kept.clear()


def wait_until(page, condition, timeout_s: float = 60) -> None:  # type: ignore[no-untyped-def]
    """Wait for ``condition()``; Playwright delivers the routed messages while the page waits."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the server did not answer"
        page.wait_for_timeout(50)


def held_label_page(browser, server):  # type: ignore[no-untyped-def]
    """ana signed in on the Label page, with the server's answers passing through a :class:`HeldServer`."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    link = HeldServer(page)
    page.goto(server.url)
    settle(page)
    sign_in(page, "ana", PASSWORD)
    return page, link


def pressed_again_before_the_answer(page, link, key: str, then: str) -> int:  # type: ignore[no-untyped-def]
    """Press ``key``; hold the server's answer back until it has handled the press, so that it has
    stored the label and moved on while the page still shows the clip; press ``then`` on that clip
    half a second later, as an annotator hearing nothing new would; let both answers through. The
    clip both presses were made on."""
    on_screen = clip_on_screen(page)
    link.hold()
    page.keyboard.press(key)
    wait_until(page, lambda: link.finished >= 1)
    page.wait_for_timeout(500)
    assert clip_on_screen(page) == on_screen
    page.keyboard.press(then)
    wait_until(page, lambda: link.finished >= 2)
    link.release()
    settle(page)
    assert_no_exception(page)
    return on_screen


def test_a_key_pressed_again_before_the_next_clip_shows_labels_nothing_else(browser, serve, tagged):
    page, link = held_label_page(browser, serve(tagged))
    first = pressed_again_before_the_answer(page, link, "1", "1")

    assert stored(tagged) == [(first, "yes", [])]
    assert clip_on_screen(page) != first


def test_an_undo_pressed_on_a_clip_already_replaced_undoes_nothing(browser, serve, tagged):
    page, link = held_label_page(browser, serve(tagged))
    first = clip_on_screen(page)
    page.keyboard.press("1")
    settle(page)
    # Backspace goes down on the second clip after its label was stored: meant for a clip that is
    # done, it must not take back its label.
    second = pressed_again_before_the_answer(page, link, "2", "Backspace")
    assert stored(tagged) == [(first, "yes", []), (second, "no", [])]
    third = clip_on_screen(page)
    assert third not in (first, second)
    assert page.get_by_text(f"Ignored a key press meant for clip {second}").is_visible()

    # Pressed on the clip on screen, Backspace takes the last label back, and brings its clip back.
    page.keyboard.press("Backspace")
    settle(page)
    assert stored(tagged) == [(first, "yes", [])]
    assert clip_on_screen(page) == second
