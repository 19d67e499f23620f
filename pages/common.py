"""What every page shares: the workspace, the selected project, cached frames."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from sqlalchemy import func, select

from db.migrate import SchemaOutOfDate
from db.models import Annotation, Clip, ClipTag, Resolution
from labeling.clips import clip_frame
from labeling.projects import ProjectInfo, list_projects
from labeling.workspace import Workspace


@st.cache_resource(show_spinner=False)
def _open_workspace() -> Workspace:
    return Workspace.open()


def workspace() -> Workspace:
    """This process's one workspace; stops the page with the fix if the schema is out of date."""
    try:
        return _open_workspace()
    except SchemaOutOfDate as exc:
        st.error(f"{exc}", icon=":material/database:")
        st.stop()
        raise


def projects() -> list[ProjectInfo]:
    with workspace().db.read() as s:
        return list_projects(s)


def project_selector() -> None:
    """The sidebar's project choice; kept in session state under ``app.project``."""
    names = [p.name for p in projects()]
    if not names:
        st.sidebar.info("No projects yet. Import audio or run `earmark demo`.")
        return
    if st.session_state.get("app.project") not in names:
        st.session_state["app.project"] = names[0]
    st.sidebar.selectbox("Project", names, key="app.project")


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
        clips = s.execute(
            select(func.count(Clip.id), func.max(Clip.id), func.count(Clip.deleted_at)).where(
                Clip.project_id == project_id
            )
        ).one()
        tags = s.execute(
            select(func.count(ClipTag.id), func.max(ClipTag.id))
            .join(Clip, Clip.id == ClipTag.clip_id)
            .where(Clip.project_id == project_id)
        ).one()
        res = s.execute(
            select(func.count(), func.max(Resolution.updated_at)).where(Resolution.project_id == project_id)
        ).one()
        ann = s.execute(
            select(func.count(Annotation.id), func.max(Annotation.updated_at)).where(
                Annotation.project_id == project_id
            )
        ).one()
    return (*clips, *tags, *res, *ann)


@st.cache_data(ttl=600, show_spinner="Loading clips…", max_entries=8)
def _clip_frame(project_id: int, token: tuple[object, ...]) -> pd.DataFrame:
    with workspace().db.read() as s:
        return clip_frame(s, project_id)


def cached_clip_frame(project_id: int) -> pd.DataFrame:
    return _clip_frame(project_id, data_token(project_id))
