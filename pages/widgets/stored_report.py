"""A report computed on older labels, shown as it is while a worker recomputes it.

The Agreement page reads its report from ``stored_reports`` (see :mod:`labeling.quality.report_store`); when
labels changed since, it shows that report with the time it was computed, queues a refresh job (if the
change did not already) and reruns by itself once the job has stored the new one. Before the first
report is stored, a page waits for the worker computing it rather than computing it itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import streamlit as st

from labeling.platform.auth import UserInfo
from labeling.platform.jobs import JobBusy, JobError, latest_job, submit_job, worker_seen
from labeling.quality.report_store import report_stamp
from pages.widgets import common

#: How often a page showing an older report looks for the new one.
POLL_S = 2.0


def stamp(project_id: int, kind: str, params: dict[str, int]) -> tuple[str, datetime] | None:
    """The stored report's digest and time: part of the page cache's key, so a new report shows."""
    with common.workspace().db.read() as s:
        return report_stamp(s, project_id, kind, params)


def _rerun_when_stored(project_id: int, kind: str, params: dict[str, int], shown: object) -> None:
    @st.fragment(run_every=POLL_S)
    def wait_for_new() -> None:
        if stamp(project_id, kind, params) != shown:
            st.rerun(scope="app")

    wait_for_new()


@dataclass(frozen=True)
class Watched:
    """A page's stored report: what it is, how to compute it in the page, and the :func:`stamp` shown."""

    kind: str
    job_kind: str
    project_id: int
    params: dict[str, int]
    recompute: Callable[[], object]
    stamp: tuple[str, datetime] | None

    def notice(
        self,
        user: UserInfo,
        computed_at: datetime,
        message: str = "Shown as computed at {when}; labels have changed since.",
    ) -> None:
        """Say the report shown (computed at ``computed_at``) predates the latest labels, queue its
        refresh once, and rerun when it lands; ``message`` says what is shown (``{when}``: the time
        it was computed), and "Compute now" computes it in the page."""
        asked = (self.project_id, computed_at)
        if st.session_state.get(f"{self.kind}.refresh_asked") != asked:
            # Once per stale report and visitor, not on every rerun: queuing is a write transaction.
            try:
                with common.workspace().db.write() as s:
                    submit_job(
                        s,
                        self.job_kind,
                        project_id=self.project_id,
                        owner_id=user.id,
                        params=dict(self.params),
                    )
            except (JobBusy, JobError):
                pass  # already queued or running (here or on another server)
            st.session_state[f"{self.kind}.refresh_asked"] = asked
        when = computed_at.strftime("%Y-%m-%d %H:%M UTC")
        self._banner(
            message.format(when=when)
            + " A background job is recomputing it; the page updates when it is done.",
            ":material/update:",
        )

    def wait(self, what: str) -> None:
        """With no report stored yet, wait for the worker computing it (``what``) instead of computing
        it here.

        Returns at once (the page then computes the report itself) unless a worker has the job in
        hand, or it is queued and a worker was busy lately (:func:`~labeling.platform.jobs.worker_seen`).
        Otherwise says so, offers "Compute now", and stops the page until the report is stored.
        """
        with common.workspace().db.read() as s:
            job = latest_job(s, self.job_kind, project_id=self.project_id)
            if job is None or not job.active or job.unclaimed:
                return
            if job.status == "queued" and not worker_seen(s):
                return
        self._banner(
            f"The {what} is being computed by a background job ({job.message.lower() or job.status}); "
            "the page shows it when it is done.",
            ":material/hourglass_top:",
        )
        st.stop()

    def _banner(self, text: str, icon: str) -> None:
        """``text`` with "Compute now" beside it; the page reruns by itself once a newer report is stored."""
        left, right = st.columns([5, 1], vertical_alignment="center")
        left.info(text, icon=icon)
        if right.button("Compute now", key=f"{self.kind}.recompute", help="Compute it in this page instead"):
            with st.spinner("Computing…"):
                self.recompute()
            st.rerun()
        _rerun_when_stored(self.project_id, self.kind, self.params, self.stamp)


def stamp_or_wait(
    *,
    kind: str,
    job_kind: str,
    project_id: int,
    params: dict[str, int],
    recompute: Callable[[], object],
    what: str,
) -> Watched:
    """The stored report's :func:`stamp` (``.stamp``); with none stored yet, first :meth:`Watched.wait`
    for the worker computing it (``what`` names it).

    When the report shown turns out older than the labels, ``.notice(user, computed_at)`` says so.
    """
    watched = Watched(kind, job_kind, project_id, dict(params), recompute, stamp(project_id, kind, params))
    if watched.stamp is None:
        watched.wait(what)
    return watched
