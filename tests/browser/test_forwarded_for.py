"""X-Forwarded-For through the real web server: a sender rotating the header is one client unless it
is a proxy named in EARMARK_TRUSTED_PROXIES, which then decides who the client is."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from db.models import AuditEvent
from labeling.platform.auth import FREE_FAILURES_PER_ACCOUNT_AND_CLIENT, add_user
from labeling.platform.clients import UNVERIFIED
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


def _try(context, page, url: str, forwarded: str, password: str) -> None:  # type: ignore[no-untyped-def]
    context.set_extra_http_headers({"X-Forwarded-For": forwarded})
    page.goto(url)  # a new connection, sending the header
    settle(page)
    sign_in(page, "ana", password)


def _failure_clients(ws) -> list[str]:  # type: ignore[no-untyped-def]
    with ws.db.read() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.entity == "sign_in_failure")).all()
        return [e.new["client"] for e in events]


def test_a_rotated_forwarded_header_is_not_a_new_client(browser, serve, ws):
    server = serve(ws)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    for i in range(FREE_FAILURES_PER_ACCOUNT_AND_CLIENT):
        _try(context, page, server.url, f"203.0.113.{i + 1}", f"wrong guess {i}")
        expect(page.get_by_text("Wrong name or password.")).to_have_count(1)
    _try(context, page, server.url, "203.0.113.200", f"wrong guess {i}")
    expect(page.get_by_text("Too many failed sign-ins")).to_have_count(1)
    context.close()
    assert set(_failure_clients(ws)) == {UNVERIFIED}


def test_a_trusted_proxy_names_each_client(browser, serve, ws):
    server = serve(ws, EARMARK_TRUSTED_PROXIES="127.0.0.1, ::1")
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    for i in range(FREE_FAILURES_PER_ACCOUNT_AND_CLIENT):
        _try(context, page, server.url, "198.51.100.7", f"wrong guess {i}")
        expect(page.get_by_text("Wrong name or password.")).to_have_count(1)
    _try(context, page, server.url, "198.51.100.7", PASSWORD)
    expect(page.get_by_text("Too many failed sign-ins")).to_have_count(1)
    # Ana, forwarded from her own address, is not slowed down by the guesses from another.
    _try(context, page, server.url, "198.51.100.8", PASSWORD)
    expect(page.get_by_text("Signed in as")).to_have_count(1)
    context.close()
    assert set(_failure_clients(ws)) == {"198.51.100.7"}
