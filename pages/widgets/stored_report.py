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


def _recompute_button(
    kind: str, recompute: Callable[[], object], where: st.delta_generator.DeltaGenerator
) -> None:
    if where.button("Compute now", key=f"{kind}.recompute", help="Compute it in this page instead"):
        with st.spinner("Computing…"):
            recompute()
        st.rerun()


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
        """:func:`refresh_notice` for this report, computed at ``computed_at``."""
        refresh_notice(
            kind=self.kind,
            job_kind=self.job_kind,
            project_id=self.project_id,
            params=self.params,
            user=user,
            computed_at=computed_at,
            shown=self.stamp,
            recompute=self.recompute,
            message=message,
        )


def stamp_or_wait(
    *,
    kind: str,
    job_kind: str,
    project_id: int,
    params: dict[str, int],
    recompute: Callable[[], object],
    what: str,
) -> Watched:
    """The stored report's :func:`stamp` (``.stamp``); with none stored yet, first :func:`wait_for_worker`.

    When the report shown turns out older than the labels, ``.notice(user, computed_at)`` says so.
    """
    shown = stamp(project_id, kind, params)
    if shown is None:
        wait_for_worker(
            kind=kind, job_kind=job_kind, project_id=project_id, params=params, recompute=recompute, what=what
        )
    return Watched(kind, job_kind, project_id, dict(params), recompute, shown)


def wait_for_worker(
    *,
    kind: str,
    job_kind: str,
    project_id: int,
    params: dict[str, int],
    recompute: Callable[[], object],
    what: str,
) -> None:
    """With no report stored yet, wait for the worker computing it instead of computing it here.

    Returns at once (the page then computes the report itself) unless a worker has the job in hand,
    or it is queued and a worker was busy lately (:func:`~labeling.platform.jobs.worker_seen`).
    Otherwise says so, offers "Compute now", and stops the page until the report is stored.
    """
    with common.workspace().db.read() as s:
        job = latest_job(s, job_kind, project_id=project_id)
        if job is None or not job.active or job.unclaimed:
            return
        if job.status == "queued" and not worker_seen(s):
            return
    left, right = st.columns([5, 1], vertical_alignment="center")
    left.info(
        f"The {what} is being computed by a background job ({job.message.lower() or job.status}); "
        "the page shows it when it is done.",
        icon=":material/hourglass_top:",
    )
    _recompute_button(kind, recompute, right)
    _rerun_when_stored(project_id, kind, params, None)
    st.stop()


def refresh_notice(
    *,
    kind: str,
    job_kind: str,
    project_id: int,
    params: dict[str, int],
    user: UserInfo,
    computed_at: datetime,
    shown: tuple[str, datetime] | None,
    recompute: Callable[[], object],
    message: str = "Shown as computed at {when}; labels have changed since.",
) -> None:
    """Say the report predates the latest labels, queue its refresh once, and rerun when it lands.

    ``shown`` is the :func:`stamp` of the report on screen; ``recompute`` computes it in the page
    ("Compute now"); ``message`` says what is shown (``{when}``: the time it was computed).
    """
    asked = (project_id, computed_at)
    if st.session_state.get(f"{kind}.refresh_asked") != asked:
        # Once per stale report and visitor, not on every rerun: queuing is a write transaction.
        try:
            with common.workspace().db.write() as s:
                submit_job(s, job_kind, project_id=project_id, owner_id=user.id, params=dict(params))
        except (JobBusy, JobError):
            pass  # already queued or running (here or on another server)
        st.session_state[f"{kind}.refresh_asked"] = asked
    when = computed_at.strftime("%Y-%m-%d %H:%M UTC")
    left, right = st.columns([5, 1], vertical_alignment="center")
    left.info(
        message.format(when=when) + " A background job is recomputing it; the page updates when it is done.",
        icon=":material/update:",
    )
    _recompute_button(kind, recompute, right)
    _rerun_when_stored(project_id, kind, params, shown)
