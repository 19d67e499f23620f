"""Class names, tags and metadata values written as HTML links show on the Overview's charts as text:
no link to another site appears anywhere in the page."""

from __future__ import annotations

import csv

import pytest
from playwright.sync_api import expect

from labeling.data.importer import import_source
from labeling.platform.auth import add_user
from tests.audio import speechlike, write_wav
from tests.browser.conftest import assert_no_exception, open_page, sign_in

pytestmark = pytest.mark.browser
PHISH = '<a href="https://evil.example/x">phish</a>'


@pytest.fixture
def hostile(sqlite_workspace, tmp_path):
    src = tmp_path / "src"
    rows = []
    for i in range(6):
        write_wav(src / f"c{i}.wav", speechlike(100 + i))
        rows.append(
            {
                "file_name": f"c{i}.wav",
                "label": PHISH if i % 2 else "yes",
                "tags": PHISH if i < 3 else "",
                "accent": PHISH if i < 4 else "uk",
            }
        )
    with (src / "metadata.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    import_source(sqlite_workspace, src, "hostile")
    with sqlite_workspace.db.write() as s:
        add_user(s, name="eli", role="engineer", password="correct horse")
    return sqlite_workspace


def test_names_written_as_links_show_as_text_on_the_overview_charts(browser, serve, hostile):
    server = serve(hostile)
    page = open_page(browser, server.url)
    sign_in(page, "eli", "correct horse")
    assert_no_exception(page)
    plots = page.locator(".js-plotly-plot")
    # Final labels, split, duration, loudness, the metadata field and the tags.
    expect(plots).to_have_count(6, timeout=30_000)
    for i in range(6):
        plots.nth(i).locator(".main-svg").first.wait_for(timeout=20_000)
    # Nothing in the page, charts included, links off-site (plotly draws links as SVG <a xlink:href>)…
    links = page.evaluate(
        "() => [...document.querySelectorAll('a')]"
        ".map(a => a.getAttribute('href') || a.getAttribute('xlink:href') || '')"
    )
    assert not [href for href in links if "evil.example" in href]
    # …and the hostile class, tag and metadata value are drawn as their literal text instead.
    drawn = plots.locator("text", has_text="phish")
    expect(drawn.first).to_be_visible()
    assert any('href="https://evil.example/x"' in t for t in drawn.all_text_contents())
