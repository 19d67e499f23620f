"""The Label page of a regions project in Chromium: regions drawn, relabelled, deleted, transcribed,
split, merged, snapped into a silence and undone with mouse and keys are what the database holds after
Submit, and what the editor shows again."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from playwright.sync_api import expect

from labeling.data.importer import import_path
from labeling.data.projects import create_project, update_project
from labeling.data.regions import list_regions
from labeling.platform.auth import add_user
from tests.audio import write_wav
from tests.browser.conftest import assert_no_exception, open_page, settle, sign_in

pytestmark = pytest.mark.browser
PASSWORD = "correct horse"
SR = 16000


def recording(seconds: float = 20.0) -> np.ndarray:
    """Faint noise with a loud tone from 2 s to 6 s: something for the waveform to show."""
    rng = np.random.default_rng(3)
    y = (0.002 * rng.standard_normal(round(seconds * SR))).astype(np.float32)
    t = np.arange(4 * SR) / SR
    y[2 * SR : 6 * SR] += (0.4 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return y


@pytest.fixture
def project(sqlite_workspace, tmp_path):
    ws = sqlite_workspace
    write_wav(tmp_path / "src" / "meeting.wav", recording())
    with ws.db.write() as s:
        create_project(
            s,
            name="meetings",
            task_kind="regions",
            classes=["speech", "noise", "music"],
            annotations_per_clip=1,
        )
        add_user(s, name="ana", role="annotator", password=PASSWORD)
    import_path(ws, tmp_path / "src", "meetings", create=False)
    return ws


def view(page):  # type: ignore[no-untyped-def]
    """The waveform's box on screen and the seconds it shows: (left, width, top, height, start, end)."""
    wave = page.locator("canvas.er-wave")
    box = wave.bounding_box()
    start = float(wave.get_attribute("data-view-start"))
    end = float(wave.get_attribute("data-view-end"))
    return box["x"], box["width"], box["y"], box["height"], start, end


def drag(page, x0: float, x1: float, y: float) -> None:  # type: ignore[no-untyped-def]
    page.mouse.move(x0, y)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, y, steps=4)
    page.mouse.move(x1, y, steps=4)
    page.mouse.up()
    # Released edges snap once the server's loudness around them has arrived.
    page.wait_for_selector('canvas.er-wave[data-snapping="0"]')


def test_regions_drawn_with_the_mouse_are_stored_and_shown_again(browser, serve, project):
    server = serve(project)
    page = open_page(browser, server.url)
    sign_in(page, "ana", PASSWORD)
    assert_no_exception(page)
    editor = page.get_by_test_id("earmark-region-editor")
    expect(editor).to_be_visible()
    page.locator("audio.er-audio").wait_for(state="attached")
    expect(page.locator("audio.er-audio")).to_have_attribute("src", re.compile("/media/"))  # range requests

    left, width, top, height, start, end = view(page)
    assert (start, end) == (0.0, pytest.approx(20.0, abs=1e-3))  # the whole recording at first
    y = top + height / 2
    seconds_per_px = (end - start) / width

    def at(x: float) -> float:
        return start + (x - left) / width * (end - start)

    a0, a1 = left + width * 0.10, left + width * 0.30
    b0, b1 = left + width * 0.40, left + width * 0.55
    c0, c1 = left + width * 0.70, left + width * 0.80
    drag(page, a0, a1, y)
    drag(page, b0, b1, y)
    page.keyboard.press("2")  # b, just drawn and selected: speech -> noise
    drag(page, c0, c1, y)
    page.keyboard.press("Delete")  # c, just drawn
    page.mouse.click((a0 + a1) / 2, y)  # select a
    box = page.get_by_label("Transcript of the selected region")
    box.click()
    box.type("good morning 2")  # a "2" typed is text, not a class key
    expect(editor).to_contain_text("2 regions of yours")
    assert editor.locator(".er-selected").inner_text().startswith("speech")

    # Refused on the server (the class was withdrawn meanwhile): said on the page, nothing stored, and
    # the editor keeps what was drawn.
    with project.db.write() as s:
        update_project(s, "meetings", classes=["speech", "music"])
    page.get_by_test_id("earmark-region-submit").click()
    settle(page)
    expect(page.get_by_text("Nothing was saved")).to_contain_text(
        "['noise'] are not among the project's classes"
    )
    expect(editor).to_contain_text("2 regions of yours")
    with project.db.read() as s:
        assert list_regions(s, "meetings").empty
    with project.db.write() as s:
        update_project(s, "meetings", classes=["speech", "noise", "music"])

    page.get_by_test_id("earmark-region-submit").click()
    settle(page)
    assert_no_exception(page)
    expect(page.get_by_text("2 regions saved")).to_be_visible()

    with project.db.read() as s:
        stored = list_regions(s, "meetings")
    rows = stored[["start", "end", "label", "text", "annotator"]].to_dict("records")
    assert len(rows) == 2
    expected = [
        (at(a0), at(a1), "speech", "good morning 2"),
        (at(b0), at(b1), "noise", None),
    ]
    for row, (s0, s1, label, text) in zip(rows, expected, strict=True):
        assert row["start"] == pytest.approx(s0, abs=seconds_per_px)
        assert row["end"] == pytest.approx(s1, abs=seconds_per_px)
        assert (row["label"], row["text"], row["annotator"]) == (label, text, "ana")

    # A fresh page: nothing left to hand out, and the submitted recording opens again as it was saved.
    page.reload()
    settle(page)
    expect(page.get_by_text("Nothing left for you to label")).to_be_visible()
    page.get_by_role("combobox", name="Open a recording you submitted").click()
    page.get_by_role("option", name="meeting.wav").click()
    settle(page)
    expect(editor).to_contain_text("2 regions of yours")
    left, width, top, height, start, end = view(page)
    page.mouse.click(left + (rows[0]["start"] + rows[0]["end"]) / 2 / (end - start) * width, top + height / 2)
    expect(page.get_by_label("Transcript of the selected region")).to_have_value("good morning 2")
    drawn = json.loads(page.locator("canvas.er-wave").get_attribute("data-regions") or "[]")
    assert [(r["label"], r["text"]) for r in drawn] == [("speech", "good morning 2"), ("noise", "")]
    assert_no_exception(page)


def gapped(seconds: float = 20.0) -> np.ndarray:
    """Faint noise, and a loud tone from 2 s to 10 s but for a digital silence from 6 s to 7 s."""
    y = recording(seconds)
    t = np.arange(8 * SR) / SR
    y[2 * SR : 10 * SR] = (0.4 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    y[6 * SR : 7 * SR] = 0.0
    return y


@pytest.fixture
def gapped_project(sqlite_workspace, tmp_path):
    ws = sqlite_workspace
    write_wav(tmp_path / "src" / "talk.wav", gapped())
    with ws.db.write() as s:
        create_project(
            s, name="talks", task_kind="regions", classes=["speech", "noise"], annotations_per_clip=1
        )
        add_user(s, name="ana", role="annotator", password=PASSWORD)
    import_path(ws, tmp_path / "src", "talks", create=False)
    return ws


def test_snapping_split_merge_and_undo_reach_the_stored_regions(browser, serve, gapped_project):
    server = serve(gapped_project)
    page = open_page(browser, server.url)
    sign_in(page, "ana", PASSWORD)
    editor = page.get_by_test_id("earmark-region-editor")
    expect(editor).to_be_visible()
    wave = page.locator("canvas.er-wave")

    # Zoom in around 6.5 s with the wheel, so that a pixel is a few milliseconds.
    left, width, top, height, start, end = view(page)
    y = top + height / 2
    page.mouse.move(left + 6.5 / (end - start) * width, y)
    for _ in range(4):
        page.mouse.wheel(0, -100)
    left, width, top, height, start, end = view(page)
    assert start < 4.4
    assert end > 8.6
    px = (end - start) / width

    def x(t: float) -> float:
        return left + (t - start) / (end - start) * width

    def drawn() -> list[tuple[float, float, str, str]]:
        rows = json.loads(wave.get_attribute("data-regions") or "[]")
        return [(r["start"], r["end"], r["label"], r["text"]) for r in rows]

    # Released 30 ms before the silence, the end snaps into it; the start, in steady tone, stays.
    drag(page, x(4.5), x(5.97), y)
    (a,) = drawn()
    assert a[0] == pytest.approx(4.5, abs=2 * px)
    assert 6.0 <= a[1] <= 6.02
    # With Alt held nothing snaps: the start stays 40 ms after the silence.
    page.keyboard.down("Alt")
    drag(page, x(7.04), x(8.5), y)
    page.keyboard.up("Alt")
    b = drawn()[1]
    assert b[0] == pytest.approx(7.04, abs=2 * px)

    # Undo and redo: a deletion comes back, a relabelling goes and returns.
    page.keyboard.press("Delete")
    assert len(drawn()) == 1
    page.keyboard.press("Control+z")
    assert len(drawn()) == 2
    page.mouse.click(x(8.0), y)
    page.keyboard.press("2")
    assert drawn()[1][2] == "noise"
    page.keyboard.press("Control+z")
    assert drawn()[1][2] == "speech"
    page.keyboard.press("Control+Shift+z")
    assert drawn()[1][2] == "noise"

    # Split at the playhead (a click puts it there): 4.5-6.0 becomes 4.5-5.0, 5.0-5.5, 5.5-6.0.
    page.mouse.click(x(5.0), y)
    page.keyboard.press("s")
    page.mouse.click(x(5.5), y)
    page.keyboard.press("s")
    assert [r[2] for r in drawn()] == ["speech", "speech", "speech", "noise"]
    box = page.get_by_label("Transcript of the selected region")
    box.click()  # the selected region is the first half of the last split, 5.0-5.5
    box.type("morning")
    box.press("Enter")
    page.mouse.click(x(4.75), y)
    box.click()
    box.type("good")
    box.press("Enter")
    page.keyboard.press("Control+z")  # the typing is one step
    assert [r[3] for r in drawn()][:2] == ["", "morning"]
    page.keyboard.press("Control+Shift+z")
    assert [r[3] for r in drawn()][:2] == ["good", "morning"]
    # Merge 4.5-5.0 "good" with the next speech region, 5.0-5.5 "morning"; the noise region is not next.
    page.mouse.click(x(4.75), y)
    page.keyboard.press("m")
    # N and P step through the regions in time order; "?" shows every key.
    selected = editor.locator(".er-selected")
    page.keyboard.press("n")
    expect(selected).to_contain_text(re.compile(r"^speech: 5\.[45]"))
    page.keyboard.press("n")
    expect(selected).to_contain_text(re.compile(r"^noise: 7\.0"))
    page.keyboard.press("p")
    expect(selected).to_contain_text(re.compile(r"^speech: 5\.[45]"))
    page.keyboard.press("?")
    expect(editor.locator(".er-keys")).to_contain_text("merge the selected region")
    page.get_by_test_id("earmark-region-submit").click()
    settle(page)
    assert_no_exception(page)
    expect(page.get_by_text("3 regions saved")).to_be_visible()

    with gapped_project.db.read() as s:
        stored = list_regions(s, "talks")[["start", "end", "label", "text"]].to_dict("records")
    assert [(r["label"], r["text"]) for r in stored] == [
        ("speech", "good morning"),
        ("speech", None),
        ("noise", None),
    ]
    assert stored[0]["start"] == pytest.approx(4.5, abs=2 * px)
    assert stored[0]["end"] == pytest.approx(5.5, abs=2 * px)
    assert stored[1]["start"] == pytest.approx(5.5, abs=2 * px)
    assert 6.0 <= stored[1]["end"] <= 6.02
    assert stored[2]["start"] == pytest.approx(7.04, abs=2 * px)
    assert stored[2]["end"] == pytest.approx(8.5, abs=2 * px)


@pytest.fixture
def tagged_project(sqlite_workspace, tmp_path):
    ws = sqlite_workspace
    write_wav(tmp_path / "src" / "call.wav", recording())
    with ws.db.write() as s:
        create_project(
            s,
            name="calls",
            task_kind="regions",
            classes=["speech", "noise"],
            tag_groups={"noise": ["car", "people"], "channel": ["phone"]},
            annotations_per_clip=1,
        )
        add_user(s, name="ana", role="annotator", password=PASSWORD)
    import_path(ws, tmp_path / "src", "calls", create=False)
    return ws


def test_tags_and_moving_whole_regions_reach_the_stored_regions(browser, serve, tagged_project):
    server = serve(tagged_project)
    page = open_page(browser, server.url)
    sign_in(page, "ana", PASSWORD)
    editor = page.get_by_test_id("earmark-region-editor")
    expect(editor).to_be_visible()
    wave = page.locator("canvas.er-wave")
    left, width, top, height, start, end = view(page)
    y = top + height / 2
    px = (end - start) / width

    def x(t: float) -> float:
        return left + (t - start) / (end - start) * width

    def drawn() -> list[dict]:
        return json.loads(wave.get_attribute("data-regions") or "[]")

    def pill(name: str):  # type: ignore[no-untyped-def]
        return editor.locator(".er-tags").get_by_role("button", name=name, exact=True)

    page.keyboard.down("Alt")  # exact edges, so the expected times are where the mouse went
    drag(page, x(8.0), x(12.0), y)
    page.keyboard.up("Alt")
    pill("car").click()
    expect(pill("car")).to_have_attribute("aria-pressed", "true")
    page.keyboard.down("Alt")
    drag(page, x(14.0), x(16.0), y)
    page.keyboard.up("Alt")
    pill("phone").click()
    assert [r["tags"] for r in drawn()] == [["noise:car"], ["channel:phone"]]

    # Split: both halves keep the tags; tag the second half too, then merge: the union.
    page.mouse.click(x(10.0), y)
    page.keyboard.press("s")
    assert [r["tags"] for r in drawn()] == [["noise:car"], ["noise:car"], ["channel:phone"]]
    page.mouse.click(x(11.0), y)
    pill("people").click()
    page.mouse.click(x(9.0), y)
    page.keyboard.press("m")
    assert [r["tags"] for r in drawn()] == [["noise:car", "noise:people"], ["channel:phone"]]
    page.keyboard.press("Control+z")  # the merge
    assert [r["tags"] for r in drawn()] == [["noise:car"], ["noise:car", "noise:people"], ["channel:phone"]]
    page.keyboard.press("Control+Shift+z")
    assert [r["tags"] for r in drawn()] == [["noise:car", "noise:people"], ["channel:phone"]]

    # Drag the body of the 14-16 s region 1 s later (Alt: exactly): its length is kept.
    length = drawn()[1]["end"] - drawn()[1]["start"]
    page.keyboard.down("Alt")
    drag(page, x(15.0), x(16.0), y)
    page.keyboard.up("Alt")
    moved = drawn()[1]
    assert moved["start"] == pytest.approx(15.0, abs=2 * px)
    assert moved["end"] - moved["start"] == pytest.approx(length, abs=1e-9)
    # Dragged past the end of the recording, it stops there.
    page.keyboard.down("Alt")
    drag(page, x(16.0), x(19.9), y)
    page.keyboard.up("Alt")
    assert (drawn()[1]["start"], drawn()[1]["end"]) == (pytest.approx(20.0 - length), pytest.approx(20.0))
    page.keyboard.press("Control+z")
    assert drawn()[1]["start"] == pytest.approx(moved["start"])
    # Shift+arrows nudge it by 10 ms; a run of nudges is one undo step.
    for _ in range(3):
        page.keyboard.press("Shift+ArrowLeft")
    assert drawn()[1]["start"] == pytest.approx(moved["start"] - 0.03)
    page.keyboard.press("Shift+ArrowRight")
    assert drawn()[1]["start"] == pytest.approx(moved["start"] - 0.02)
    page.keyboard.press("Control+z")
    assert drawn()[1]["start"] == pytest.approx(moved["start"])
    page.keyboard.press("Control+Shift+z")
    assert drawn()[1]["start"] == pytest.approx(moved["start"] - 0.02)
    assert drawn()[1]["end"] - drawn()[1]["start"] == pytest.approx(length)

    page.get_by_test_id("earmark-region-submit").click()
    settle(page)
    assert_no_exception(page)
    expect(page.get_by_text("2 regions saved")).to_be_visible()
    with tagged_project.db.read() as s:
        stored = list_regions(s, "calls")[["start", "end", "label", "tags"]].to_dict("records")
    assert [r["tags"] for r in stored] == [["noise:car", "noise:people"], ["channel:phone"]]
    assert stored[0]["start"] == pytest.approx(8.0, abs=2 * px)
    assert stored[0]["end"] == pytest.approx(12.0, abs=2 * px)
    assert stored[1]["start"] == pytest.approx(moved["start"] - 0.02)
    assert stored[1]["end"] == pytest.approx(moved["start"] - 0.02 + length)

    # Opened again, the regions come back with their tags, shown on the region and on the buttons.
    page.reload()
    settle(page)
    page.get_by_role("combobox", name="Open a recording you submitted").click()
    page.get_by_role("option", name="call.wav").click()
    settle(page)
    expect(editor).to_contain_text("2 regions of yours")
    assert [r["tags"] for r in drawn()] == [["noise:car", "noise:people"], ["channel:phone"]]
    left, width, top, height, start, end = view(page)
    page.mouse.click(left + 10.0 / (end - start) * width, top + height / 2)
    expect(pill("people")).to_have_attribute("aria-pressed", "true")
    expect(pill("phone")).to_have_attribute("aria-pressed", "false")
    assert_no_exception(page)


LONG_S = 25 * 60  # buckets of 75 ms: coarser than the snapping reach
GAP = (1200.0, 1202.0)


@pytest.fixture
def long_project(sqlite_workspace, tmp_path):
    """A 25-minute recording: faint noise, a loud tone from 1190 s to 1210 s but for a digital
    silence in GAP."""
    ws = sqlite_workspace
    rng = np.random.default_rng(5)
    y = (0.002 * rng.standard_normal(LONG_S * SR)).astype(np.float32)
    a, b = 1190 * SR, 1210 * SR
    y[a:b] = (0.4 * np.sin(2 * np.pi * 220 * np.arange(b - a) / SR)).astype(np.float32)
    y[round(GAP[0] * SR) : round(GAP[1] * SR)] = 0.0
    write_wav(tmp_path / "src" / "day.wav", y)
    with ws.db.write() as s:
        create_project(s, name="days", task_kind="regions", classes=["speech"], annotations_per_clip=1)
        add_user(s, name="ana", role="annotator", password=PASSWORD)
    import_path(ws, tmp_path / "src", "days", create=False)
    return ws, tmp_path / "src" / "day.wav"


def test_snapping_on_a_long_recording_is_as_fine_as_on_a_short_one(browser, serve, long_project):
    ws, source = long_project
    server = serve(ws)
    page = open_page(browser, server.url)
    sign_in(page, "ana", PASSWORD)
    editor = page.get_by_test_id("earmark-region-editor")
    expect(editor).to_be_visible()
    wave = page.locator("canvas.er-wave")

    # The audio comes from disk a range at a time: the bytes asked for are the file's.
    audio = page.locator("audio.er-audio")
    expect(audio).to_have_attribute("src", re.compile("/media/"))
    got = page.evaluate(
        """async (src) => {
            const r = await fetch(src, {headers: {Range: "bytes=5000000-5000099"}});
            const body = Array.from(new Uint8Array(await r.arrayBuffer()));
            return [r.status, r.headers.get("content-range"), body];
        }""",
        audio.get_attribute("src"),
    )
    wav = source.read_bytes()
    assert got == [206, f"bytes 5000000-5000099/{len(wav)}", list(wav[5_000_000:5_000_100])]

    # Zoom in around the gap with the wheel until a pixel is a few milliseconds.
    left, width, top, height, start, end = view(page)
    y = top + height / 2
    page.mouse.move(left + (GAP[0] + 1) / (end - start) * width, y)
    for _ in range(24):
        page.mouse.wheel(0, -100)
        page.wait_for_timeout(20)
    left, width, top, height, start, end = view(page)
    assert start < GAP[0] - 3
    assert end > GAP[0] + 0.5
    assert (end - start) / width < 0.01

    def x(t: float) -> float:
        return left + (t - start) / (end - start) * width

    # Released 30 ms before the silence, the end lands in it, within one 10 ms frame of its start
    # (the peaks' buckets alone are 75 ms wide here).
    drag(page, x(GAP[0] - 2.0), x(GAP[0] - 0.03), y)
    (region,) = json.loads(wave.get_attribute("data-regions") or "[]")
    assert GAP[0] <= region["end"] <= GAP[0] + 0.01
    page.get_by_test_id("earmark-region-submit").click()
    settle(page)
    assert_no_exception(page)
    with ws.db.read() as s:
        (stored,) = list_regions(s, "days")[["start", "end"]].to_dict("records")
    assert GAP[0] <= stored["end"] <= GAP[0] + 0.01
