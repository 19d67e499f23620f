"""Sessions and sign-in in a real browser: sign-out ends the session for a copied cookie too, and a
reload or a new browser does not reset the slow-down after wrong passwords."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from labeling.platform.auth import FREE_FAILURES_PER_ACCOUNT_AND_CLIENT, add_user
from tests.browser.conftest import settle, sign_in
from tests.conftest import make_workspace

pytestmark = pytest.mark.browser
PASSWORD = "correct horse"


@pytest.fixture
def ws(tmp_path, sqlite_url):
    ws = make_workspace(tmp_path / "data", sqlite_url)
    with ws.db.write() as s:
        add_user(s, name="ana", role="annotator", password=PASSWORD)
    yield ws
    ws.close()


def _fresh(browser, url: str, cookies=()):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_cookies(list(cookies))
    page = context.new_page()
    page.goto(url)
    settle(page)
    return context, page


def test_a_copied_session_cookie_stops_working_after_sign_out(browser, serve, ws):
    server = serve(ws)
    mine, page = _fresh(browser, server.url)
    sign_in(page, "ana", PASSWORD)
    expect(page.get_by_text("Signed in as")).to_have_count(1)
    page.wait_for_function("document.cookie.includes('earmark_session=')")
    cookies = [c for c in mine.cookies() if c["name"] == "earmark_session"]
    assert cookies, "signing in sets the session cookie"

    stolen, other = _fresh(browser, server.url, cookies)
    expect(other.get_by_text("Signed in as")).to_have_count(1)  # the copy works while the session lives

    page.get_by_role("button", name="Sign out").click()
    settle(page)
    other.goto(server.url)
    settle(other)
    expect(other.get_by_role("button", name="Sign in")).to_have_count(1)
    expect(other.get_by_text("Signed in as")).to_have_count(0)
    mine.close()
    stolen.close()


def test_a_reload_does_not_reset_the_slow_down_after_wrong_passwords(browser, serve, ws):
    server = serve(ws)
    context, page = _fresh(browser, server.url)
    for i in range(FREE_FAILURES_PER_ACCOUNT_AND_CLIENT):
        sign_in(page, "ana", f"wrong guess {i}")
        expect(page.get_by_text("Wrong name or password.")).to_have_count(1)
    page.reload()
    settle(page)
    sign_in(page, "ana", PASSWORD)
    expect(page.get_by_text("Too many failed sign-ins")).to_have_count(1)
    expect(page.get_by_text("Signed in as")).to_have_count(0)
    context.close()

    # A new browser (no cookies, no session state) is slowed down just the same.
    context, page = _fresh(browser, server.url)
    sign_in(page, "ana", PASSWORD)
    expect(page.get_by_text("Too many failed sign-ins")).to_have_count(1)
    context.close()
