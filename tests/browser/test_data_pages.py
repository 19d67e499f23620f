import pytest

from labeling.data.importer import import_path
from labeling.platform.auth import add_user
from tests.audio import speechlike, write_wav
from tests.browser.conftest import assert_no_exception, open_page, settle, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def populated(sqlite_workspace, tmp_path):
    src = tmp_path / "src"
    for i in range(8):
        write_wav(src / f"{['yes', 'no'][i % 2]}_spk{i % 2}_{i}.wav", speechlike(100 + i))
    import_path(sqlite_workspace, src, "browser", pattern=r"(?P<label>[a-z]+)_(?P<speaker>spk\d)_\d+\.wav")
    with sqlite_workspace.db.write() as s:
        add_user(s, name="eli", role="engineer", password="correct horse")
    return sqlite_workspace


def test_pages_render_in_chromium_and_a_clip_plays(browser, serve, populated):
    server = serve(populated)
    page = open_page(browser, server.url)
    sign_in(page, "eli", "correct horse")
    assert_no_exception(page)
    assert page.get_by_text("Clips", exact=True).first.is_visible()
    # The distribution charts drew (plotly renders a moment after the script finishes).
    page.locator(".js-plotly-plot").nth(1).wait_for(timeout=20_000)

    page.goto(f"{server.url}/clips")
    settle(page)
    assert_no_exception(page)
    assert page.get_by_text("8 of 8 clips match").is_visible()
    # Select the first row of the table (the checkbox column of st.dataframe's canvas grid).
    grid = page.locator('[data-testid="stDataFrame"]')
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 15, box["y"] + 52)
    settle(page)
    assert_no_exception(page)
    audio = page.locator("audio")
    audio.wait_for(timeout=20_000)
    # The browser fetched and decoded the stored WAV: it knows its duration.
    duration = page.evaluate(
        "async () => { const a = document.querySelector('audio');"
        " if (isNaN(a.duration)) await new Promise(r => a.addEventListener('loadedmetadata', r));"
        " return a.duration; }"
    )
    assert duration == pytest.approx(0.6, abs=0.05)

    page.goto(f"{server.url}/import_audio")
    settle(page)
    assert_no_exception(page)
