"""A file the browser fetches by range requests, served from Streamlit's media endpoint without being
read into memory: :func:`file_url`.

``st.audio(path)`` reads the whole file into Streamlit's in-memory media store, where it stays while
a session shows it (58 MB for 30 minutes of 16 kHz 16-bit audio). Here the store is handed a
:class:`labeling.data.region_audio.FileBytes` instead: the ``/media`` route asks it for the size and
for the ranges the browser requests, which it reads from disk. Files of a megabyte or less are
handed over as bytes (the store hashes small files whole).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit.runtime import Runtime

from labeling.data.region_audio import FileBytes

#: At most this size a file is handed to the store as its bytes.
SMALL = 1 << 20


def file_url(path: Path, *, mimetype: str, name: str) -> str | None:
    """The address the browser fetches ``path`` from, with range requests; ``name`` tells this file
    apart from the page's other media (one per page position). None outside a running server."""
    if not Runtime.exists():
        return None
    size = path.stat().st_size
    content = path.read_bytes() if size <= SMALL else FileBytes(path)
    url = Runtime.instance().media_file_mgr.add(content, mimetype, f"earmark.{name}")  # type: ignore[arg-type]
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}{url}" if base else url
