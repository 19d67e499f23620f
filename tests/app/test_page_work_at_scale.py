"""The pages that show a report of the whole project (Overview, Clips, Data versions & checks,
Agreement, Review) do the same database work on their first render however many clips the project
holds: the same statements and the same number of rows read at 1,000 clips as at 10,000, once the
worker has stored the project's reports (what every view gets after the first change).
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

import pandas as pd
import pytest
import streamlit as st
from sqlalchemy import event, insert
from sqlalchemy.engine import Engine
from sqlalchemy.engine.cursor import CursorFetchStrategy
from streamlit.testing.v1 import AppTest

import labeling.job_kinds  # noqa: F401  (registers the data_summaries job)
from db.models import Annotation, Clip, ClipTag, ImportBatch, Resolution
from labeling.data.clip_metadata import index_clip_metadata
from labeling.data.projects import create_project
from labeling.platform import columnar
from labeling.platform.auth import add_user
from labeling.platform.jobs import queue_report_refreshes, run_worker
from tests.app.conftest import ROOT, sign_in

SPLITS = ("train", "dev", "test")
#: Each page, and what it shows that counts the whole project of n clips.
PAGES = {
    "pages/data/overview.py": lambda n: f"{n:,}",
    "pages/data/clips.py": lambda n: f"{n:,}",
    "pages/data/data.py": lambda n: f"{n:,} clips checked",
    "pages/quality/agreement.py": lambda n: f"{2 * (n // 3):,}",
    "pages/quality/review.py": lambda n: f"{(n // 3 + 1) // 2:,} clips wait",
}
#: Pages with links to other pages (st.page_link), which need the app's navigation.
NEEDS_NAVIGATION = {"pages/quality/review.py"}
REPORTS = ["data_summaries", "data_checks", "agreement", "review_queue"]


def _project(ws: Any, n: int) -> None:
    """A project of ``n`` clips with metadata, a tag each and a final label on a third of them, two
    annotations on another third (half of them in disagreement), bulk inserted, then summarised by
    the worker as after an import."""
    with ws.db.write() as s:
        admin = add_user(s, name="admin", role="admin")
        other = add_user(s, name="ann", role="annotator")
        project = create_project(s, name="big", classes=["yes", "no"], tag_groups={"noise": ["car", "none"]})
        batch = ImportBatch(project_id=project.id, name="bulk", source="test", n_imported=n)
        s.add(batch)
        s.flush()
        s.execute(
            insert(Clip),
            [
                {
                    "project_id": project.id,
                    "sha256": f"{i:064x}",
                    "storage_key": f"k{i}",
                    "original_name": f"clip{i:06d}.wav",
                    "duration_s": 0.5 + (i % 17) / 10,
                    "sample_rate": 8000,
                    "channels": 1,
                    "frames": 4000,
                    "audio_format": "WAV",
                    "meta": {"speaker": f"spk{i % 20}", "accent": ["a", "b", "c"][i % 3]},
                    "split": SPLITS[i % 3],
                    "import_batch_id": batch.id,
                    "rms_dbfs": -30.0 + i % 13,
                    "snr_db": 10.0 + i % 7,
                    "annotations_needed": 1,
                }
                for i in range(n)
            ],
        )
        ids = [c for (c,) in s.execute(Clip.__table__.select().with_only_columns(Clip.id).order_by(Clip.id))]
        s.execute(insert(ClipTag), [{"clip_id": c, "tag": f"noise:{['car', 'none'][c % 2]}"} for c in ids])
        s.execute(
            insert(Resolution),
            [
                {"clip_id": c, "project_id": project.id, "label": ["yes", "no"][c % 2], "method": "imported"}
                for c in ids[::3]
            ],
        )
        labelled = ids[1::3][: n // 3]
        s.execute(
            insert(Annotation),
            [
                {
                    "project_id": project.id,
                    "clip_id": c,
                    "annotator_id": who.id,
                    "label": "yes" if who is admin or j % 2 else "no",
                    "tags": [],
                }
                for j, c in enumerate(labelled)
                for who in (admin, other)
            ],
        )
        index_clip_metadata(s, project.id)
        queue_report_refreshes(s, project.id)
    assert run_worker(ws, once=True, kinds=REPORTS) == len(REPORTS)


class _Work:
    """Statements sent and rows fetched while it is active: through SQLAlchemy results, and through
    :func:`~labeling.platform.columnar.read_frame`, which reads whole columns from the driver's cursor."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.statements: Counter[str] = Counter()
        self.rows = 0
        for name in ("fetchone", "fetchmany", "fetchall"):
            monkeypatch.setattr(CursorFetchStrategy, name, self._counting(getattr(CursorFetchStrategy, name)))
        whole = self._counting(columnar.read_frame)
        for module in list(sys.modules.values()):
            if getattr(module, "read_frame", None) is columnar.read_frame:
                monkeypatch.setattr(module, "read_frame", whole)

    def _counting(self, fetch: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            got = fetch(*args, **kwargs)
            if isinstance(got, list | pd.DataFrame):
                self.rows += len(got)
            elif got is not None:
                self.rows += 1
            return got

        return counted

    def statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements[" ".join(statement.split())] += 1


def _first_render(ws: Any, n: int, page: str, monkeypatch: pytest.MonkeyPatch) -> _Work:
    expected = PAGES[page](n)
    monkeypatch.setenv("EARMARK_DATA_DIR", str(ws.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", ws.settings.database_url)
    st.cache_resource.clear()
    st.cache_data.clear()
    if page in NEEDS_NAVIGATION:
        # Its links need the app's page list: open the app, then the page with empty caches.
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        sign_in(at, "admin")
        at.session_state["app.project"] = "big"
        at.run()
        st.cache_resource.clear()
        st.cache_data.clear()
        at.switch_page(page)
    else:
        at = AppTest.from_file(str(ROOT / page), default_timeout=120)
        sign_in(at, "admin")
        at.session_state["app.project"] = "big"
    work = _Work(monkeypatch)
    event.listen(Engine, "before_cursor_execute", work.statement)
    try:
        at.run()
    finally:
        event.remove(Engine, "before_cursor_execute", work.statement)
        monkeypatch.undo()
        st.cache_resource.clear()
        st.cache_data.clear()
    assert not at.exception, at.exception
    shown = [str(m.value) for m in at.metric] + [c.value for c in at.caption] + [m.value for m in at.markdown]
    assert any(expected in v for v in shown), shown  # the page shows the whole project's count
    return work


@pytest.mark.parametrize("page", PAGES)
def test_first_render_reads_as_much_at_ten_thousand_clips_as_at_one_thousand(
    page, templates, tmp_path, monkeypatch
):
    work = {}
    for n in (1_000, 10_000):
        # Each size is built once per test process; each page opens a copy of its own.
        ws = templates.open(f"scale-{n}", lambda ws, _folder, n=n: _project(ws, n), tmp_path / str(n))
        try:
            work[n] = _first_render(ws, n, page, monkeypatch)
        finally:
            ws.close()
    small, large = work[1_000], work[10_000]
    assert sum(small.statements.values()) > 0
    assert large.statements == small.statements
    assert large.rows == small.rows
    # Nothing read grows with the project: fewer rows than one page of the table and the summaries.
    assert small.rows < 200, small.rows


def test_the_clips_table_turns_pages_by_clip_id_and_back(tmp_path, monkeypatch):
    from tests.conftest import make_workspace

    ws = make_workspace(tmp_path / "data", f"sqlite:///{tmp_path / 'pages.db'}")
    try:
        _project(ws, 120)
        monkeypatch.setenv("EARMARK_DATA_DIR", str(ws.settings.data_dir))
        monkeypatch.setenv("EARMARK_DATABASE_URL", ws.settings.database_url)
        st.cache_data.clear()
        at = AppTest.from_file(str(ROOT / "pages/data/clips.py"), default_timeout=120)
        sign_in(at, "admin")
        at.session_state["app.project"] = "big"
        at.run()

        def names() -> list[str]:
            return at.dataframe[0].value["original_name"].tolist()

        def indicator() -> str:
            return next(m.value for m in at.markdown if m.value.startswith("Page "))

        assert indicator() == "Page 1 of 3"
        assert names()[0] == "clip000000.wav"
        assert at.button(key="clips.previous").disabled
        at.button(key="clips.next").click().run()
        assert indicator() == "Page 2 of 3"
        assert names()[0] == "clip000050.wav"
        at.button(key="clips.next").click().run()
        assert indicator() == "Page 3 of 3"
        assert names() == [f"clip{i:06d}.wav" for i in range(100, 120)]
        assert at.button(key="clips.next").disabled
        at.button(key="clips.previous").click().run()
        assert names()[0] == "clip000050.wav"
        at.multiselect(key="clips.split").set_value(["dev"]).run()  # a new filter starts at its first page
        assert indicator() == "Page 1 of 1"
        assert "40 of 120 clips match" in at.caption[0].value
        assert not at.exception, at.exception
    finally:
        st.cache_data.clear()
        st.cache_resource.clear()
        ws.close()
