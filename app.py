"""Earmark's Streamlit entry point: page config, the shared sidebar and the page list."""

from __future__ import annotations

import streamlit as st

from pages import common

st.set_page_config(page_title="Earmark", page_icon=":material/graphic_eq:", layout="wide")

PAGES = {
    "Data": [
        st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page("pages/clips.py", title="Clips", icon=":material/library_music:"),
        st.Page("pages/import_audio.py", title="Import", icon=":material/upload:"),
    ],
}

common.workspace()
common.project_selector()
st.navigation(PAGES).run()
