"""Earmark's Streamlit entry point: page config, the shared sidebar and the page list."""

from __future__ import annotations

import streamlit as st

import labeling.job_kinds  # noqa: F401  (registers the background job kinds the pages start)
from pages.widgets import common

st.set_page_config(page_title="Earmark", page_icon=":material/graphic_eq:", layout="wide")
# Also in .streamlit/config.toml; set here too for servers started from another folder. Tables'
# built-in CSV download writes formulas as they are: pages offer a neutralised one instead.
st.set_option("client.disableDataExport", True)

PAGES = {
    "Data": [
        # The first page a role may open is its home page (annotators: Label), also shown at `/`.
        st.Page("pages/data/overview.py", title="Overview", icon=":material/dashboard:"),
        st.Page("pages/data/clips.py", title="Clips", icon=":material/library_music:"),
        st.Page("pages/data/import_audio.py", title="Import", icon=":material/upload:"),
        st.Page("pages/data/export.py", title="Export", icon=":material/download:"),
        st.Page("pages/data/data.py", title="Data versions & checks", icon=":material/fact_check:"),
        st.Page("pages/data/settings.py", title="Project settings", icon=":material/tune:"),
    ],
    "Labeling": [
        st.Page("pages/labeling/label.py", title="Label", icon=":material/headphones:"),
        st.Page("pages/labeling/my_labels.py", title="My labels", icon=":material/history:"),
        st.Page("pages/labeling/conventions.py", title="Conventions", icon=":material/menu_book:"),
    ],
    "Quality": [
        st.Page("pages/quality/agreement.py", title="Agreement", icon=":material/group:"),
        st.Page("pages/quality/review.py", title="Review", icon=":material/gavel:"),
    ],
    "Model": [
        st.Page("pages/model/error_analysis.py", title="Error analysis", icon=":material/troubleshoot:"),
        st.Page("pages/model/runs.py", title="Runs", icon=":material/compare_arrows:"),
        st.Page("pages/platform/jobs.py", title="Jobs", icon=":material/work_history:"),
        st.Page("pages/monitor/monitoring.py", title="Monitoring", icon=":material/monitor_heart:"),
    ],
}

common.workspace()
try:
    with common.one_read_per_run():  # the sidebar reads the user and the projects, the page reuses them
        user = common.signed_in_user()  # checked on every rerun, so a role change applies at once
        if user is None:
            st.navigation(common.signed_out_pages(PAGES), position="hidden").run()
        else:
            menu = st.sidebar.container()  # on top, filled once the project (which its links carry) is known
            common.project_selector()
            common.user_box(user)
            common.navigation(user, PAGES, menu=menu).run()
finally:  # also after st.stop() and st.rerun()
    common.freeze_imported()
