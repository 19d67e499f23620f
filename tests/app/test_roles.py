"""What each role may open: the navigation, every page's own check and the README's role table agree."""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from labeling.platform import auth
from labeling.platform.auth import add_user
from tests.app.conftest import ROOT, sign_in

#: (file, stem, title) of every page of the app behind the sign-in, read from app.py.
DECLARED = re.findall(r'st\.Page\("(pages/\w+/(\w+)\.py)", title="([^"]+)"', (ROOT / "app.py").read_text())
PAGES = [(stem, title) for _, stem, title in DECLARED if stem != "login"]
FILES = {stem: path for path, stem, _ in DECLARED}
ROLES = ("annotator", "reviewer", "engineer", "admin")


@pytest.fixture
def everyone(app_env):
    with app_env.db.write() as s:
        for role in ROLES[:-1]:
            add_user(s, name=role, role=role)
    return app_env


@pytest.mark.parametrize("role", ROLES)
def test_every_page_refuses_exactly_the_roles_the_navigation_leaves_out(everyone, role):
    assert len(PAGES) >= 13
    for stem, title in PAGES:
        at = AppTest.from_file(str(ROOT / FILES[stem]), default_timeout=180)
        sign_in(at, role)
        at.session_state["app.project"] = "demo"
        at.run()
        assert not at.exception, (stem, at.exception)
        refused = any("may not" in e.value or "cannot open" in e.value for e in at.error)
        assert refused == (not auth.can_open(role, stem)), (role, title)


def _readme_roles() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| (annotator|reviewer|engineer|admin) \| ([^|]+) \|", text, flags=re.M)
    return {role: pages.strip() for role, pages in rows}


def test_the_readme_role_table_names_exactly_the_pages_each_role_may_open():
    table = _readme_roles()
    assert set(table) == set(ROLES)
    assert table["admin"] == "every page"
    assert all(auth.can_open("admin", stem) for stem, _ in PAGES)
    for role in ROLES[:-1]:
        listed = [p.strip() for p in table[role].split(",")]
        assert listed == [title for stem, title in PAGES if auth.can_open(role, stem)], role
