"""Navigation in Chromium: the menu lists what the role may open, the chosen project lives in the URL
(reload, new tab, shared link, the menu's own links), every page answers at its own address, and what
was just created is what the selectors show."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from labeling.data.conventions import save_convention
from labeling.data.importer import import_path
from labeling.data.projects import get_project
from labeling.data.versions import create_version
from labeling.platform.auth import add_user
from tests.audio import speechlike, write_wav
from tests.browser.conftest import assert_no_exception, menu_links, open_page, selected, settle, sign_in

pytestmark = pytest.mark.browser
PATTERN = r"(?P<label>[a-z]+)_(?P<speaker>spk\d)_\d+\.wav"


def _two_projects(ws, folder):  # type: ignore[no-untyped-def]
    for n, name in enumerate(("alpha", "beta")):
        src = folder / name
        for i in range(6):
            write_wav(src / f"{['yes', 'no'][i % 2]}_spk{i % 3}_{i}.wav", speechlike(500 + 10 * n + i))
        import_path(ws, src, name, pattern=PATTERN)
    with ws.db.write() as s:
        add_user(s, name="eli", role="engineer", password="correct horse")
        add_user(s, name="rosa", role="reviewer", password="correct horse")
        add_user(s, name="ana", role="annotator", password="correct horse")
        create_version(s, "beta", name="v1")
        beta = get_project(s, "beta").id
    write_wav(folder / "more" / "yes_spk9_9.wav", speechlike(599))
    import_path(ws, folder / "more", "beta", pattern=PATTERN)  # so v2 differs from v1
    with ws.db.write() as s:
        save_convention(s, beta, text="# Rules\n\nSay what you hear.", note="first")
        save_convention(s, beta, text="# Rules\n\nSay what you hear, once.", note="second", based_on=1)


@pytest.fixture
def two_projects(templates, tmp_path):  # type: ignore[no-untyped-def]
    """Projects alpha (6 clips) and beta (7, a version v1 of 6, two conventions versions); an
    engineer, a reviewer and an annotator."""
    ws = templates.open("two_projects", _two_projects, tmp_path)
    yield ws
    ws.close()


def _menu(page) -> list[str]:  # type: ignore[no-untyped-def]
    return [title for title, _ in menu_links(page)]


def _choose(page, label: str, option: str) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("combobox", name=label).first.click()
    page.get_by_role("option", name=option, exact=True).click()
    settle(page)


def test_a_reviewer_s_menu_lists_only_the_pages_a_reviewer_may_open(browser, serve, two_projects):
    server = serve(two_projects)
    page = open_page(browser, server.url)
    sign_in(page, "rosa", "correct horse")
    assert _menu(page) == ["Overview", "Clips", "Label", "My labels", "Conventions", "Agreement", "Review"]
    for refused in ("data", "export", "error_analysis", "runs", "settings", "import_audio"):
        page.goto(f"{server.url}/{refused}")
        settle(page)
        assert page.get_by_text("The reviewer role cannot open").is_visible(), refused
    assert_no_exception(page)


def test_the_project_survives_reload_new_tab_and_shared_link(browser, serve, two_projects):
    server = serve(two_projects)
    mine = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = mine.new_page()
    page.goto(server.url)
    settle(page)
    sign_in(page, "eli", "correct horse")
    assert selected(page, "Project") == "alpha"
    _choose(page, "Project", "beta")
    page.wait_for_url("**project=beta**")
    page.reload()
    settle(page)
    assert selected(page, "Project") == "beta"
    # Another page from the menu keeps it, and so does its address.
    page.locator('[data-testid="stSidebar"] [data-testid="stPageLink-NavLink"]', has_text="Clips").click()
    settle(page)
    assert selected(page, "Project") == "beta"
    page.wait_for_url("**/clips?project=beta")
    # A second tab opened on that address (same browser, so still signed in).
    tab = mine.new_page()
    tab.goto(page.url)
    settle(tab)
    assert selected(tab, "Project") == "beta"
    assert tab.get_by_role("heading", name="Clips").is_visible()
    # A colleague's browser: the shared link leads to the sign-in, then to the project it names.
    other = browser.new_context(viewport={"width": 1400, "height": 1000})
    shared = other.new_page()
    shared.goto(f"{server.url}/clips?project=beta")
    settle(shared)
    sign_in(shared, "eli", "correct horse")
    assert selected(shared, "Project") == "beta"
    other.close()
    # A link to a project that is not there says so and opens the first one.
    page.goto(f"{server.url}/clips?project=gone")
    settle(page)
    assert page.get_by_text("The link names no project called 'gone'").is_visible()
    assert selected(page, "Project") == "alpha"
    page.wait_for_url("**project=alpha")
    assert_no_exception(page)
    mine.close()


def test_what_was_just_created_is_what_the_selectors_show(browser, serve, two_projects):
    server = serve(two_projects)
    page = open_page(browser, server.url)
    sign_in(page, "eli", "correct horse")

    # A new project, with classes, tags and k, from the Import page.
    page.goto(f"{server.url}/import_audio")
    settle(page)
    page.locator('[data-testid="stExpander"] summary', has_text="New project").click()
    page.get_by_role("textbox", name="Name").fill("gamma")
    page.get_by_role("textbox", name="Classes (comma-separated)").fill("yes, no, maybe")
    page.get_by_role("textbox", name="Tag groups (one per line: group: value, value)").fill(
        "noise: car, clean"
    )
    page.get_by_role("button", name="Create project").click()
    settle(page)
    assert selected(page, "Project") == "gamma"
    page.wait_for_url("**project=gamma")
    assert page.get_by_text("Created 'gamma'").is_visible()

    # A new dataset version: the diff compares it with the one before.
    _choose(page, "Project", "beta")
    page.goto(f"{server.url}/data?project=beta")
    settle(page)
    page.get_by_role("button", name="Freeze the current labels as a version").click()
    settle(page)
    assert (selected(page, "Compare"), selected(page, "with")) == ("v1", "v2")

    # A new conventions version: the history's diff shows what it changed.
    page.goto(f"{server.url}/conventions?project=beta")
    settle(page)
    page.get_by_role("tab", name="History").click()
    assert (selected(page, "From"), selected(page, "To")) == ("1", "2")
    page.get_by_role("tab", name="Edit").click()
    page.get_by_role("textbox", name="Markdown").fill("# Rules\n\nSay what you hear, once, clearly.")
    page.get_by_role("textbox", name="What changed and why").fill("clearly")
    page.get_by_role("button", name="Publish new version").click()
    settle(page)
    page.get_by_role("tab", name="History").click()
    assert (selected(page, "From"), selected(page, "To")) == ("2", "3")
    assert_no_exception(page)


def test_every_page_answers_at_its_own_address_and_its_links_name_the_project(browser, serve, two_projects):
    server = serve(two_projects)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(f"{server.url}/?project=beta")
    settle(page)
    sign_in(page, "ana", "correct horse")
    expect(page.get_by_role("heading", name="Label").first).to_be_visible()  # the root shows the home page
    for path, heading in (("label", "Label"), ("my_labels", "My labels"), ("conventions", "Conventions")):
        page.goto(f"{server.url}/{path}?project=beta")
        settle(page)
        assert page.get_by_text("Page not found").count() == 0, path
        expect(page.get_by_role("heading", name=heading).first).to_be_visible()
        assert selected(page, "Project") == "beta"
        links = menu_links(page)
        assert [title for title, _ in links] == ["Label", "My labels", "Conventions"]
        assert all(href.endswith("?project=beta") for _, href in links), links
    # A menu link opened in a new tab opens the same project.
    tab = context.new_page()
    tab.goto(f"{server.url}/{dict(menu_links(page))['My labels']}")
    settle(tab)
    expect(tab.get_by_role("heading", name="My labels").first).to_be_visible()
    assert selected(tab, "Project") == "beta"
    assert_no_exception(tab)

    # A reviewer's home page too, after signing in at its address.
    colleague = browser.new_context(viewport={"width": 1400, "height": 1000})
    other = colleague.new_page()
    other.goto(f"{server.url}/overview?project=alpha")
    settle(other)
    sign_in(other, "rosa", "correct horse")
    assert other.get_by_text("Page not found").count() == 0
    expect(other.get_by_role("heading", name="alpha").first).to_be_visible()  # the Overview's title
    assert next(title for title, _ in menu_links(other)) == "Overview"
    assert selected(other, "Project") == "alpha"
    assert_no_exception(other)
    colleague.close()
    context.close()


@pytest.mark.parametrize("path", ["label", "review", "data"])
def test_a_link_opened_before_signing_in_shows_the_sign_in_then_that_page(browser, serve, two_projects, path):
    server = serve(two_projects)
    # The very first session after the server starts gets Streamlit's own "Page not found" notice over
    # the right page for any address but the root (streamlit/streamlit#9992): someone has opened the
    # app before the link is shared.
    open_page(browser, server.url).close()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(f"{server.url}/{path}?project=beta")
    settle(page)
    expect(page.get_by_role("button", name="Sign in")).to_have_count(1)
    assert page.get_by_text("sign in first").count() == 0
    # Nothing but the sign-in: no menu of pages (nor of the files behind them) before signing in.
    assert menu_links(page) == []
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0
    sign_in(page, {"label": "ana", "review": "rosa", "data": "eli"}[path], "correct horse")
    assert page.url.split("/")[-1] == f"{path}?project=beta"
    assert page.get_by_text("Page not found").count() == 0
    assert selected(page, "Project") == "beta"
    heading = {"label": "Label", "review": "Review", "data": "Data versions"}[path]
    expect(page.get_by_role("heading", name=heading).first).to_be_visible()
    assert_no_exception(page)
    context.close()
