"""What every page shares: the workspace, the selected project, cached frames."""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st
from streamlit.navigation.page import StreamlitPage

from labeling.data.clips import clip_frame, data_fingerprint, project_tags
from labeling.data.projects import ProjectInfo, list_projects
from labeling.platform import auth
from labeling.platform.auth import UserInfo
from labeling.platform.config import ConfigError, Settings
from labeling.platform.progress import fraction, progress_text
from labeling.platform.workspace import DataDirError, SchemaOutOfDate, Workspace


@st.cache_resource(show_spinner=False)
def _open_workspace() -> Workspace:
    settings = Settings.from_env()
    settings.require_secret()
    return Workspace.open(settings)


def workspace() -> Workspace:
    """This process's one workspace; stops the page with the fix if the schema is out of date or the
    configuration is incomplete."""
    try:
        return _open_workspace()
    except SchemaOutOfDate as exc:
        st.error(f"{exc}", icon=":material/database:")
        st.stop()
        raise
    except (DataDirError, OSError) as exc:
        # Anyone can see this page, signed in or not: the reason (with its paths) goes to the log.
        logging.getLogger("earmark").error("cannot open the workspace: %s", exc)
        st.error(
            "Earmark cannot open its data folder. An administrator can find the reason in the server's log.",
            icon=":material/error:",
        )
        st.stop()
        raise
    except ConfigError as exc:
        st.error(f"{exc}", icon=":material/settings:")
        st.stop()
        raise


#: What has been read from the database during this run of the app (see :func:`one_read_per_run`).
_THIS_RUN: ContextVar[dict[object, Any] | None] = ContextVar("earmark_this_run", default=None)


@contextmanager
def one_read_per_run() -> Iterator[None]:
    """Around a whole run of the app: the signed-in user and the list of projects are read from the
    database once, by the first to ask (the sidebar), and the page that runs next gets the same.

    Every run reads them afresh, so a revoked session, a disabled account or a changed role applies
    on the next run as before. Callbacks run before the script, outside it, and read for themselves.
    """
    token = _THIS_RUN.set({})
    try:
        yield
    finally:
        _THIS_RUN.reset(token)


def _once_per_run(key: object, read: Callable[[], Any]) -> Any:
    memo = _THIS_RUN.get()
    if memo is None:
        return read()
    if key not in memo:
        memo[key] = read()
    return memo[key]


_modules_frozen = 0


def freeze_imported() -> None:
    """After a run that imported modules (the first run of each page in this process): collect, then
    move every object still alive to the collector's permanent generation.

    What the app's libraries hold (some 280,000 objects) is then never walked again by the full
    collections Python runs now and then, which otherwise take 100-400 ms of a key press while a
    server is busy. What runs leave behind is collected as before: only what imports keep is frozen.
    """
    global _modules_frozen
    if len(sys.modules) > _modules_frozen:
        gc.collect()
        gc.freeze()
        _modules_frozen = len(sys.modules)


def projects() -> list[ProjectInfo]:
    def read() -> list[ProjectInfo]:
        with workspace().db.read() as s:
            return list_projects(s)

    return list(_once_per_run("projects", read))


PROJECT_PARAM = "project"


def project_selector() -> None:
    """The sidebar's project choice, kept in session state under ``app.project`` and in the URL
    (``?project=NAME``), so a reload, a second tab or a shared link opens the same project."""
    names = [p.name for p in projects()]
    if not names:
        st.sidebar.info("No projects yet. Import audio or run `earmark demo`.")
        return
    state = st.session_state
    chosen = state.pop("app.project_next", None)
    linked = st.query_params.get(PROJECT_PARAM)
    if chosen in names:
        state["app.project"] = chosen
    elif linked in names and linked != state.get("app.project_linked"):
        state["app.project"] = linked  # the URL names another project: a link, a reload, a new tab
    elif linked is not None and linked not in names:
        st.sidebar.warning(f"The link names no project called {linked!r}.", icon=":material/link_off:")
    if state.get("app.project") not in names:
        state["app.project"] = names[0]
    st.sidebar.selectbox("Project", names, key="app.project")
    if linked != state["app.project"]:
        st.query_params[PROJECT_PARAM] = state["app.project"]
    state["app.project_linked"] = state["app.project"]


def select_project(name: str) -> None:
    """Make ``name`` the selected project from the next run on (the sidebar is drawn before a page
    runs, so a page that creates a project calls this and then reruns)."""
    st.session_state["app.project_next"] = name


def current_project() -> ProjectInfo:
    """The selected project, or stop the page with a hint when there is none."""
    name = st.session_state.get("app.project")
    for p in projects():
        if p.name == name:
            return p
    st.info("There is no project yet: import audio on the Import page, or run `earmark demo`.")
    st.stop()
    raise RuntimeError("unreachable")


def data_token(project_id: int) -> tuple[object, ...]:
    """A cheap fingerprint of a project's clip data; cached frames are keyed on it."""
    with workspace().db.read() as s:
        return data_fingerprint(s, project_id)


@st.cache_data(ttl=600, show_spinner="Loading clips…", max_entries=8)
def _clip_frame(project_id: int, token: tuple[object, ...]) -> pd.DataFrame:
    with workspace().db.read() as s:
        return clip_frame(s, project_id)


def cached_clip_frame(project_id: int) -> pd.DataFrame:
    return _clip_frame(project_id, data_token(project_id))


@st.cache_data(ttl=600, show_spinner=False, max_entries=8)
def _project_tags(project_id: int, token: tuple[object, ...]) -> list[str]:
    with workspace().db.read() as s:
        return project_tags(s, project_id)


def cached_project_tags(project_id: int) -> list[str]:
    """The tags on the project's clips (without reading every clip)."""
    return _project_tags(project_id, data_token(project_id))


#: Tables up to this many rows are written into their "Download CSV" button as the page renders.
INLINE_CSV_ROWS = 5_000


def csv_download(frame: pd.DataFrame, *, file_name: str, key: str, where: Any = None) -> None:
    """A "Download CSV" button for a table the page shows, with formulas neutralised for spreadsheets
    (the tables' built-in download is switched off: it writes ``=…`` cells as they are)."""
    from labeling.data.formats.writers import spreadsheet_csv

    # A table of a few thousand rows is written with the page, and the button is a plain link to it.
    # A larger one is written when clicked (Streamlit's deferred download), not on every rerun.
    data = spreadsheet_csv(frame) if len(frame) <= INLINE_CSV_ROWS else (lambda: spreadsheet_csv(frame))
    (st if where is None else where).download_button(
        "Download CSV",
        data=data,
        file_name=file_name,
        mime="text/csv",
        key=key,
        icon=":material/download:",
    )


# --- who is signed in, and what they may open --------------------------------------------------------

AUTH_TOKEN = "auth.token"
SESSION_COOKIE = "earmark_session"


def signed_in_user() -> UserInfo | None:
    """The signed-in user, read afresh on every rerun (once: see :func:`one_read_per_run`): a changed
    role or a disabled account applies at once.

    A trusted proxy's header (``EARMARK_TRUSTED_HEADER``) names the user when configured and present;
    otherwise the signed token from the sign-in form does, kept in this session and in a cookie so a
    reload or a second tab stays signed in.
    """
    state = st.session_state
    # Keyed by what names the user: a sign-in or sign-out (callbacks, before the run) changes it.
    key = ("user", state.get(AUTH_TOKEN), state.get("auth.signed_out"))
    return _once_per_run(key, _read_signed_in_user)


def _read_signed_in_user() -> UserInfo | None:
    ws = workspace()
    state = st.session_state
    with ws.db.read() as s:
        if ws.settings.trusted_header:
            user = auth.user_for_header(s, st.context.headers.get(ws.settings.trusted_header))
            if user is not None:
                return user
        token = state.get(AUTH_TOKEN)
        if token is None and not state.get("auth.signed_out"):
            token = st.context.cookies.get(SESSION_COOKIE)
        user = auth.user_for_token(s, token, auth.session_secret(ws.settings))
    if user is not None:
        state[AUTH_TOKEN] = token
    return user


def client_address() -> str:
    """The client sign-ins are counted against: the browser's address as the server sees it, or as a
    proxy of ``EARMARK_TRUSTED_PROXIES`` forwards it (see :mod:`labeling.platform.clients`)."""
    from labeling.platform.clients import client_address as resolve
    from labeling.platform.clients import server_trusted

    ip = st.context.ip_address  # None from localhost (and not a str under AppTest)
    forwarded = [h for h in st.context.headers.get_all("X-Forwarded-For") if isinstance(h, str)]
    return resolve(
        ip if isinstance(ip, str) else None,
        ", ".join(forwarded) or None,
        trusted=workspace().settings.trusted_proxies,
        server_trusts=server_trusted(),
    )


def sign_in(name: str, password: str) -> str | None:
    """Check a name and password; on success remember the session and return None, else the reason."""
    ws = workspace()
    with ws.db.write() as s:
        result = auth.sign_in(s, name, password, auth.session_secret(ws.settings), client=client_address())
    if result.token is None:
        return result.error
    st.session_state.update({AUTH_TOKEN: result.token, "auth.cookie": result.token, "auth.signed_out": False})
    return None


def sign_out() -> None:
    """End the session on the server and hand back any clip the user was holding (a button callback)."""
    from labeling.annotate.queue import release_claims

    ws = workspace()
    user = signed_in_user()
    token = st.session_state.get(AUTH_TOKEN)
    with ws.db.write() as s:
        auth.end_session(s, token, auth.session_secret(ws.settings))
        if user is not None:
            release_claims(s, user.id)
    for key in list(st.session_state):
        if key == AUTH_TOKEN or str(key).startswith(("label.", "conventions.")):
            del st.session_state[key]
    st.session_state.update({"auth.cookie": "", "auth.signed_out": True})


def sync_session_cookie() -> None:
    """Write (after sign-in) or clear (after sign-out) the browser's session cookie."""
    token = st.session_state.pop("auth.cookie", None)
    if token is None:
        return
    # The token is digits, hex and dots: safe inside the cookie and the script. Set from JavaScript, the
    # cookie cannot be HttpOnly; what protects it is that the server can end the session (sign-out,
    # disabling the account, a new password) and that it expires (see README, "Security").
    st.html(
        f"<script>document.cookie = '{SESSION_COOKIE}={token}; Path=/; SameSite=Strict; "
        f"Max-Age={auth.SESSION_MAX_AGE_S if token else 0}' "
        "+ (location.protocol === 'https:' ? '; Secure' : '');</script>",
        unsafe_allow_javascript=True,
    )


def require_permission(permission: str) -> UserInfo:
    """The signed-in user if their role holds ``permission``; otherwise a refusal, and the page stops."""
    user = signed_in_user()
    try:
        return auth.require(user, permission)
    except auth.PermissionDenied as exc:
        st.error(f"You cannot open this page: {exc}.", icon=":material/block:")
        st.stop()
        raise


def require_role(*roles: str) -> UserInfo:
    """The signed-in user if their role is one of ``roles``; otherwise a refusal, and the page stops."""
    user = signed_in_user()
    if user is None or user.role not in roles:
        who = f"the {user.role} role" if user else "nobody signed in"
        st.error(f"You cannot open this page ({who}).", icon=":material/block:")
        st.stop()
        raise RuntimeError("unreachable")
    return user


def _refusal(page: StreamlitPage, role: str) -> StreamlitPage:
    def refuse() -> None:
        st.error(f"The {role} role cannot open {page.title}.", icon=":material/block:")

    return st.Page(refuse, title=page.title, url_path=page.url_path, visibility="hidden")


def page_file(url_path: str) -> str:
    """The file of the page at ``/url_path``: pages are files named by their address, one folder per
    section of the menu (``/label`` is ``pages/labeling/label.py``)."""
    root = Path(__file__).resolve().parents[2]
    (path,) = sorted(root.glob(f"pages/*/{url_path}.py"))
    return path.relative_to(root).as_posix()


def _at_root(page: StreamlitPage) -> StreamlitPage:
    """``page`` again, served at the app's root.

    Streamlit serves its default page only at the root, so the home page made default would answer
    "not found" at its own address (``/label``): the root gets a twin of it instead, and the page
    itself keeps its address.
    """
    return st.Page(
        page_file(page.url_path),
        title=page.title,
        icon=page.icon,
        url_path="",
        default=True,
        visibility="hidden",
    )


def pages_for(user: UserInfo, pages: dict[str, list[StreamlitPage]]) -> dict[str, list[StreamlitPage]]:
    """The menu ``user`` gets: the pages their role may open, by section (the first is their home page)."""
    allowed = {
        section: [p for p in group if auth.can_open(user.role, p.url_path)]
        for section, group in pages.items()
    }
    return {section: group for section, group in allowed.items() if group}


def navigation(user: UserInfo, pages: dict[str, list[StreamlitPage]], *, menu: Any) -> StreamlitPage:
    """The page to run for ``user``, with their menu drawn in ``menu`` (a sidebar container).

    Every page the role may open answers at its own address, the root shows their home page, and every
    other page's address leads to a refusal instead of the page (the policy is
    :data:`labeling.platform.auth.PAGE_PERMISSIONS`). The menu's links carry ``?project=``, so a link
    opened in a new tab or copied opens the same project.
    """
    sections = pages_for(user, pages)
    mine = [p for group in sections.values() for p in group]
    refused = [
        _refusal(p, user.role)
        for group in pages.values()
        for p in group
        if not auth.can_open(user.role, p.url_path)
    ]
    root = [_at_root(mine[0])] if mine else []
    current = st.navigation([*root, *mine, *refused], position="hidden")
    for section, group in sections.items():
        menu.caption(section)
        for p in group:
            here = current if root and p is mine[0] and current is root[0] else p  # marked as the open page
            menu.page_link(here, label=p.title, icon=p.icon or None, query_params=project_params())
    return current


def project_params(**extra: str) -> dict[str, str]:
    """Query parameters for a link to another page: the selected project's, and ``extra``."""
    project = st.session_state.get("app.project")
    return {**({PROJECT_PARAM: project} if project else {}), **extra}


def signed_out_pages(pages: dict[str, list[StreamlitPage]]) -> list[StreamlitPage]:
    """The navigation before sign-in: the sign-in page, also at every page's address, so a shared
    link (``/review?project=…``) shows the sign-in and then, its address unchanged, the page."""
    return [
        st.Page("pages/platform/login.py", title="Sign in", icon=":material/login:"),
        *(
            st.Page("pages/platform/login.py", title="Sign in", url_path=p.url_path, visibility="hidden")
            for group in pages.values()
            for p in group
        ),
    ]


def user_box(user: UserInfo) -> None:
    """Who is signed in, and the way out (sidebar)."""
    sync_session_cookie()
    st.sidebar.caption(f"Signed in as **{user.name}** ({user.role})")
    st.sidebar.button("Sign out", key="auth.sign_out", on_click=sign_out, icon=":material/logout:")


def on_bar(bar: Any, text: Callable[[int, int], str]) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that moves ``bar`` (an ``st.progress``) with ``text``."""

    def report(done: int, total: int) -> None:
        bar.progress(fraction(done, total), text=text(done, total))

    return report


def on_bar_by_stage(bar: Any) -> Callable[[str, int, int], None]:
    """A ``progress(stage, done, total)`` callback that moves ``bar`` and says the stage."""

    def report(stage: str, done: int, total: int) -> None:
        bar.progress(fraction(done, total), text=progress_text(stage, done, total))

    return report
