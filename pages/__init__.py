"""The Streamlit pages, one folder per section of the menu; only these and ``app.py`` import streamlit."""
