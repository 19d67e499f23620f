"""The Monitoring page in Chromium: it renders the batches' tiles, and a click on a measure's point
shows that measure's reference and batch histograms and the clips in its tails."""

from __future__ import annotations

import pytest

from labeling.platform.auth import add_user
from tests.browser.conftest import assert_no_exception, open_page, settle, sign_in
from tests.monitoring import PROJECT, monitored_project

pytestmark = pytest.mark.browser
CHART = '[data-testid="stPlotlyChart"]'


def _monitored(ws, folder):  # type: ignore[no-untyped-def]
    monitored_project(ws, folder)
    with ws.db.write() as s:
        add_user(s, name="eli", role="engineer", password="correct horse")


@pytest.fixture
def monitored(templates, tmp_path):  # type: ignore[no-untyped-def]
    ws = templates.open("monitored", _monitored, tmp_path)
    yield ws
    ws.close()


def test_a_click_on_a_measure_shows_its_histograms(browser, serve, monitored):
    server = serve(monitored)
    page = open_page(browser, server.url, viewport=(1500, 1100))
    sign_in(page, "eli", "correct horse")
    page.goto(f"{server.url}/monitoring?project={PROJECT}")
    settle(page)
    assert_no_exception(page)
    tile = page.locator(CHART).filter(has_text="Loudness (RMS)").first
    tile.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    points = tile.locator("g.scatterlayer g.trace").last.locator("path.point")
    assert points.count() == 2  # one per checked batch
    box = points.last.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    settle(page)
    assert_no_exception(page)
    page.get_by_role("heading", name="Loudness (RMS): reference vs batch").wait_for(timeout=30_000)
    detail = page.locator(CHART).filter(has_text="reference (n = 120)").first
    assert detail.locator("g.trace.bars").count() == 2  # reference and batch
    assert page.get_by_text("The batch's clips furthest out").count() == 1
    assert page.locator("audio").count() >= 1
