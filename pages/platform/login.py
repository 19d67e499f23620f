"""Sign in: name and password (accounts are made by an admin with ``earmark user add``)."""

from __future__ import annotations

import streamlit as st

from labeling.platform import auth
from pages.widgets import common


@st.cache_data(ttl=60, show_spinner=False)
def _accounts() -> tuple[int, list[tuple[str, str, str]]]:
    """How many accounts exist, and the demo accounts still using their published passwords."""
    with common.workspace().db.read() as s:
        return auth.count_users(s), auth.demo_accounts_open(s)


def _submit() -> None:
    # Guessing is slowed down in the database (per account and per client), not in this session.
    state = st.session_state
    problem = common.sign_in(state.get("login.name", ""), state.get("login.password", ""))
    state["login.password"] = ""
    state["login.error"] = problem


common.sync_session_cookie()
st.title("Sign in to Earmark")
if (user := common.signed_in_user()) is not None:
    st.success(f"Signed in as {user.name} ({user.role}).", icon=":material/check:")
    st.stop()
n_users, demo = _accounts()
if demo:
    st.info(
        "**This is a demo.** These accounts use published passwords; change them with "
        "`earmark user passwd NAME` (or remove the demo) before real data goes in.",
        icon=":material/info:",
    )
    st.table(
        {"name": [n for n, _, _ in demo], "role": [r for _, r, _ in demo], "password": [p for *_, p in demo]}
    )
if n_users == 0:
    st.warning(
        "There are no accounts yet. Create the first one on the server: "
        "`earmark user add NAME --role admin`.",
        icon=":material/person_add:",
    )

header = common.workspace().settings.trusted_header
if header and st.context.headers.get(header):
    st.warning(
        f"Your proxy says you are {st.context.headers.get(header)!r}, but no active Earmark account has that "
        "identity. Ask an admin to add it (`earmark user add NAME --role ROLE --external-id IDENTITY`).",
        icon=":material/badge:",
    )

with st.form("login.form", border=True, width=420):
    st.text_input("Name", key="login.name", autocomplete="username")
    st.text_input("Password", type="password", key="login.password", autocomplete="current-password")
    st.form_submit_button("Sign in", type="primary", key="login.submit", on_click=_submit)
if error := st.session_state.get("login.error"):
    st.error(error, icon=":material/lock:")
