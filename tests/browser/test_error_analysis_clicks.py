"""Error analysis in Chromium: a click on a slice's bar or a confusion-matrix cell chooses what the error
browser plays, and the browser pages through every error, not just the first ten."""

from __future__ import annotations

import pandas as pd
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from sqlalchemy import update

from db.models import Clip
from labeling.data.importer import import_path
from labeling.model import error_analysis as ea
from labeling.model.runs import import_external_predictions
from labeling.platform.auth import add_user
from tests.audio import speechlike, write_wav
from tests.browser.conftest import assert_no_exception, open_page, selected, settle, sign_in

pytestmark = pytest.mark.browser
CHART = '[data-testid="stPlotlyChart"]'


@pytest.fixture
def errors(sqlite_workspace, tmp_path):
    """36 test clips; the other model is wrong on all 12 car-noise clips ("yes" heard as "no" and the
    reverse) and on 4 clean "yes" clips: 16 errors, 6 of them "yes" predicted as "no" in car noise."""
    ws = sqlite_workspace
    src = tmp_path / "src"
    rows = []
    for i in range(36):
        name = f"{['yes', 'no'][i % 2]}_spk{i % 4}_{i}.wav"
        write_wav(src / name, speechlike(400 + i))
        car = i % 3 == 0
        wrong = car or i in (2, 4, 8, 10)
        truth = ["yes", "no"][i % 2]
        rows.append(
            {"file_name": name, "label": {"yes": "no", "no": "yes"}[truth] if wrong else truth, "car": car}
        )
    import_path(ws, src, "clicks", pattern=r"(?P<label>[a-z]+)_(?P<speaker>spk\d)_\d+\.wav")
    frame = pd.DataFrame(rows)
    frame[["file_name", "label"]].to_csv(tmp_path / "pred.csv", index=False)
    with ws.db.write() as s:
        add_user(s, name="eli", role="engineer", password="correct horse")
        s.execute(update(Clip).values(split="test"))
        ids = dict(s.execute(Clip.__table__.select().with_only_columns(Clip.original_name, Clip.id)).all())
        for name in frame.loc[frame["car"], "file_name"]:
            ea.tag_clip(s, ids[name], "noise:car")
        for name in frame.loc[~frame["car"], "file_name"]:
            ea.tag_clip(s, ids[name], "noise:clean")
        for tag in ("noise:car", "noise:clean"):
            ea.set_hlp(s, "clicks", tag, 0.95)
    import_external_predictions(ws, "clicks", tmp_path / "pred.csv", name="theirs")
    return ws


def _tick_centre(chart, axis: str, text: str) -> float:
    box = chart.locator(f"g.{axis}tick text", has_text=text).first.bounding_box()
    return box["y"] + box["height"] / 2 if axis == "y" else box["x"] + box["width"] / 2


def _choose(page, label: str, option: str) -> None:  # type: ignore[no-untyped-def]
    # A list opened while a chart is still being drawn anew after the last rerun can close again: retry.
    wanted = page.get_by_role("option", name=option, exact=True)
    for _ in range(3):
        page.get_by_role("combobox", name=label).first.click()
        try:
            wanted.wait_for(timeout=5_000)
            break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    wanted.click()
    settle(page)


def _caption(page) -> str:  # type: ignore[no-untyped-def]
    return page.get_by_text("most confident first").inner_text()


def test_clicks_on_the_charts_choose_what_the_error_browser_plays(browser, serve, errors):
    server = serve(errors)
    page = open_page(browser, server.url, viewport=(1400, 1000))
    sign_in(page, "eli", "correct horse")
    page.goto(f"{server.url}/error_analysis")
    settle(page)
    page.wait_for_selector(f"{CHART} g.point path")
    assert_no_exception(page)
    assert _caption(page).startswith("Errors 1–10 of 16")

    # Every error, page by page.
    page.get_by_role("button", name="Next").click()
    settle(page)
    assert _caption(page).startswith("Errors 11–16 of 16")

    # A click on the car-noise bar of the priority chart: its twelve errors, from the first page.
    priority = page.locator(CHART).filter(has_text="Priority").first
    priority.scroll_into_view_if_needed()
    y = _tick_centre(priority, "y", "noise:car")
    bar = next(
        b
        for b in (p.bounding_box() for p in priority.locator("g.point path").all())
        if b["y"] <= y <= b["y"] + b["height"]
    )
    page.mouse.click(bar["x"] + bar["width"] / 2, y)
    settle(page)
    assert _caption(page).startswith("Errors 1–10 of 12")
    assert selected(page, "Slice") == "noise:car"

    # A click on the cell "true yes, predicted no" of the confusion matrix: those errors only.
    matrix = page.locator(CHART).filter(has_text="Confusion matrix").first
    matrix.scroll_into_view_if_needed()
    page.mouse.click(_tick_centre(matrix, "x", "no"), _tick_centre(matrix, "y", "yes"))
    settle(page)
    assert _caption(page).startswith("Errors 1–10 of 10")  # 6 in car noise, 4 clean
    assert selected(page, "Confusion (true → predicted)") == "yes → no (10)"
    assert selected(page, "Slice") == "(every clip)"  # the matrix counts the whole split
    shown = [
        t
        for t in page.locator('[data-testid="stMarkdownContainer"]')
        .filter(has_text="predicted")
        .all_inner_texts()
        if t.startswith(("yes_", "no_"))
    ]
    assert len(shown) == 10
    assert all("true yes, predicted no" in t for t in shown)
    assert_no_exception(page)

    # Back to every error in the box below, then the same cell again: it chooses the pair again.
    _choose(page, "Confusion (true → predicted)", "(every error)")
    assert _caption(page).startswith("Errors 1–10 of 16")
    matrix = page.locator(CHART).filter(has_text="Confusion matrix").first
    matrix.scroll_into_view_if_needed()
    page.mouse.click(_tick_centre(matrix, "x", "no"), _tick_centre(matrix, "y", "yes"))
    settle(page)
    assert selected(page, "Confusion (true → predicted)") == "yes → no (10)"
    assert _caption(page).startswith("Errors 1–10 of 10")
    assert_no_exception(page)
