"""The Runs page's two run pickers (no page of its own): baseline A and run B."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages.model.train_form import run_labels


def run_pair(runs: pd.DataFrame, *, key: str) -> tuple[int, int]:
    """Draw the pickers for ``runs`` (:func:`labeling.model.runs.list_runs`, newest first, at least two) and
    return the chosen (A, B).

    They open on the run before the newest (A) and the newest (B), and move there once more whenever
    a newer run appears (trained here, on another page, by a worker or on the command line); in
    between, the user's own choice stands. The values are set through session state only, never as
    widget defaults as well, which Streamlit would warn about.
    """
    ss = st.session_state
    ids = [int(i) for i in runs["run_id"]]
    a_key, b_key, seen_key = f"{key}.a", f"{key}.b", f"{key}.newest_seen"
    newer = ss.get(seen_key) != ids[0]
    if newer or ss.get(a_key) not in ids:
        ss[a_key] = ids[1]
    if newer or ss.get(b_key) not in ids:
        ss[b_key] = ids[0]
    ss[seen_key] = ids[0]
    label = run_labels(runs)
    left, right = st.columns(2)
    a = left.selectbox("Baseline run A", ids, format_func=label.__getitem__, key=a_key)
    b = right.selectbox("Run B", ids, format_func=label.__getitem__, key=b_key)
    return int(a if a is not None else ids[1]), int(b if b is not None else ids[0])
