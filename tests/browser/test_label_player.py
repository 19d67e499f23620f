"""The Label page's player and keys in Chromium: a waveform linked to playback, the keys annotators
expect (play, speed, zoom, Unsure, tags, undo, the shortcut sheet), none of them firing while the
annotator types, and a page that fits a 1280×720 screen with silence drawn black."""

from __future__ import annotations

import io

import numpy as np
import plotly.colors
import pytest
from PIL import Image
from playwright.sync_api import expect

from labeling.data.importer import import_path
from labeling.data.projects import update_project
from labeling.platform.auth import add_user
from tests.audio import speechlike, write_wav
from tests.browser.conftest import assert_no_exception, open_page, settle, sign_in, stored_annotations

pytestmark = pytest.mark.browser
PASSWORD = "correct horse"
CLASSES = ["yes", "no", "maybe", "down", "left", "right", "on", "off", "stop", "go"]


@pytest.fixture
def project(sqlite_workspace, tmp_path):
    ws = sqlite_workspace
    src = tmp_path / "src"
    for i in range(4):
        write_wav(src / f"clip_{i}.wav", speechlike(500 + i))  # 0.6 s: 0.1 s of silence at each end
    import_path(ws, src, "player")
    with ws.db.write() as s:
        update_project(
            s,
            "player",
            task_kind="both",
            classes=CLASSES,
            tag_groups={"noise": ["car", "people", "none"], "accent": ["us", "british", "scottish", "irish"]},
        )
        add_user(s, name="ana", role="annotator", password=PASSWORD)
    return ws


def stored(ws) -> list[tuple]:  # type: ignore[no-untyped-def]
    return stored_annotations(ws, "clip_id", "label", "tags", "unsure", "transcript")


def on_screen(page) -> int:  # type: ignore[no-untyped-def]
    return int(page.get_by_role("heading", name="Clip ").first.inner_text().removeprefix("Clip "))


def chosen(page, name: str) -> bool:  # type: ignore[no-untyped-def]
    """Whether the pill ``name`` (its label starts with the option) is selected."""
    pill = page.locator('button[data-variant="pills"]').filter(has_text=name).first
    return pill.get_attribute("aria-pressed") == "true"


def test_keys_drive_the_player_and_the_form_but_never_while_typing(browser, serve, project):
    server = serve(project)
    page = open_page(browser, server.url)
    sign_in(page, "ana", PASSWORD)
    assert_no_exception(page)
    audio, wave = page.locator("audio"), page.locator("canvas.em-wave")
    audio.wait_for(state="attached")
    duration = audio.evaluate(
        "a => isNaN(a.duration) ? new Promise(r => a.addEventListener('loadedmetadata', () => r(a.duration)))"
        " : a.duration"
    )
    assert duration == pytest.approx(0.6, abs=0.02)
    audio.evaluate("a => { a.pause(); a.currentTime = 0; }")  # autoplay may have started it
    first = on_screen(page)

    # Typed into the transcript, the same keys are only text.
    box = page.get_by_label("Transcript")
    box.click()
    box.type("a pun? ]+ xz")
    page.keyboard.press("Backspace")
    assert box.input_value() == "a pun? ]+ x"  # Backspace edits the text
    page.keyboard.press("Control+z")
    assert box.input_value() == "a pun? ]+ xz"  # and Ctrl+Z is the text box's own undo
    box.fill("up")
    assert not chosen(page, "car")
    assert not chosen(page, "Unsure")
    expect(audio).to_have_js_property("paused", True)
    assert audio.evaluate("a => a.playbackRate") == 1
    assert not page.get_by_role("dialog", name="Keyboard shortcuts").is_visible()
    assert stored(project) == []

    # Out of the box, they act.
    page.get_by_role("heading", name="Label").click()
    page.keyboard.press("?")
    sheet = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(sheet).to_be_visible()
    assert "tag noise:car" in sheet.inner_text()
    page.keyboard.press("Escape")
    expect(sheet).to_be_hidden()
    page.keyboard.press("a")  # noise:car ("c" belongs to Streamlit)
    page.keyboard.press("u")
    assert chosen(page, "car")
    assert chosen(page, "Unsure")
    page.keyboard.press("]")
    assert audio.evaluate("a => a.playbackRate") == 1.25
    page.keyboard.press(" ")
    expect(audio).to_have_js_property("paused", False)
    page.keyboard.press(" ")
    expect(audio).to_have_js_property("paused", True)

    # Click-to-seek: half way along the waveform is half way through the clip; zoom widens it.
    box_ = wave.bounding_box()
    page.mouse.click(box_["x"] + box_["width"] / 2, box_["y"] + box_["height"] / 2)
    assert audio.evaluate("a => a.currentTime") == pytest.approx(0.3, abs=0.02)
    width = box_["width"]
    page.keyboard.press("+")
    assert wave.bounding_box()["width"] == pytest.approx(2 * width, rel=0.02)

    source = audio.evaluate("a => a.src")
    page.keyboard.press("1")
    settle(page)
    assert_no_exception(page)
    assert stored(project) == [(first, "yes", ["noise:car"], True, "up")]
    assert on_screen(page) != first
    # The next clip plays by itself, from its start, though the last one was left half way through.
    for _ in range(100):
        if audio.evaluate("(a, s) => a.src !== s && a.played.length > 0", source):
            break
        page.wait_for_timeout(100)
    assert audio.evaluate("a => a.src") != source
    assert audio.evaluate("a => a.played.length") > 0, "the next clip did not play by itself"
    assert audio.evaluate("a => a.played.start(0)") == pytest.approx(0, abs=0.05)

    # Backspace takes the label back and brings its clip back, with nothing chosen.
    page.keyboard.press("Backspace")
    settle(page)
    assert_no_exception(page)
    assert stored(project) == []
    assert on_screen(page) == first
    assert page.get_by_text(f"Clip {first}: your label is undone").is_visible()
    assert not chosen(page, "car")
    # Ctrl+Z with nothing left to undo changes nothing.
    page.keyboard.press("Control+z")
    settle(page)
    assert on_screen(page) == first


def _class_buttons(page):  # type: ignore[no-untyped-def]
    return [page.get_by_role("button", name=name, exact=False).first for name in CLASSES]


@pytest.mark.parametrize("viewport", [(1280, 720), (1400, 900)])
def test_the_page_fits_and_draws_silence_black(browser, serve, project, viewport):
    server = serve(project)
    page = open_page(browser, server.url, viewport=viewport)
    sign_in(page, "ana", PASSWORD)
    assert_no_exception(page)
    form = page.locator('[data-testid="stForm"]').bounding_box()
    for button in _class_buttons(page):
        box = button.bounding_box()
        assert box["y"] + box["height"] <= viewport[1], "a class button is below the fold"
        # The label is whole: no ellipsis, nothing cut by the button's width.
        assert button.evaluate(
            "b => [...b.querySelectorAll('*')].every(e => getComputedStyle(e).textOverflow !== 'ellipsis'"
            " || e.scrollWidth <= e.clientWidth)"
        ), f"{button.inner_text()!r} is cut short"
    for element in page.locator('[data-testid="stForm"] [data-testid="stElementContainer"]').all():
        box = element.bounding_box()
        if box and box["width"]:
            assert box["x"] + box["width"] <= form["x"] + form["width"] + 1, "something runs past the form"

    # The spectrogram: 30 ms into the clip there is only silence, the -80 dB floor, Magma's first colour;
    # 0.3 s in, the voice: not the floor.
    chart = page.get_by_test_id("earmark-spectrogram")
    chart.scroll_into_view_if_needed()
    area = chart.bounding_box()
    assert area["height"] > 100
    shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    floor = np.array(plotly.colors.hex_to_rgb(plotly.colors.sequential.Magma[0]))
    for seconds, silent in ((0.03, True), (0.3, False)):
        x = area["x"] + area["width"] * seconds / 0.6
        pixel = np.array(shot.getpixel((int(x), int(area["y"] + area["height"] / 2))))
        if silent:
            assert np.abs(pixel - floor).max() <= 12, f"silence is drawn as {tuple(pixel)}"
        else:
            assert np.abs(pixel - floor).max() > 40, f"the voice at {seconds} s is drawn as the floor"
