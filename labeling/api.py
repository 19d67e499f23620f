"""Earmark from Python scripts: ``ws = api.connect(url)``, then ``ws.next_clip(...)``, ``ws.submit(...)``.

::

    from labeling import api

    ws = api.connect("sqlite:///earmark-data/earmark.db")   # or api.connect() to read EARMARK_*
    ws.create_project("digits", classes=list("0123456789"), annotations_per_clip=3)
    ws.add_user("ana", role="annotator")
    clip = ws.next_clip("digits", "ana")
    if clip is not None:
        ws.submit("digits", "ana", clip.clip_id, label="7", idempotency_key="ana-run1-0001")
    frame = ws.annotations("digits")   # long format: one row per (clip, annotator)

Every method is one transaction and goes through the same services as the pages and the command
line, with the same checks (k per clip, one annotation per person, idempotent retries, audit log).
Projects and users are given by name or id.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

import labeling.job_kinds  # noqa: F401  (registers the background job kinds)
from labeling.annotate import annotations as _annotations
from labeling.annotate import queue as _queue
from labeling.data import conventions as _conventions
from labeling.data import projects as _projects
from labeling.platform import auth as _auth
from labeling.platform.config import Settings
from labeling.platform.workspace import Workspace

__all__ = ["Client", "connect"]


def connect(
    db_url: str | None = None,
    *,
    data_dir: str | Path | None = None,
    upgrade: bool = False,
) -> Client:
    """Open an Earmark database.

    Parameters
    ----------
    db_url
        SQLAlchemy URL; default ``EARMARK_DATABASE_URL``, else the SQLite file in the data directory.
    data_dir
        Where audio lives; default ``EARMARK_DATA_DIR`` (else ``./earmark-data``).
    upgrade
        Create or migrate the schema first. Without it an out-of-date database raises
        :class:`db.migrate.SchemaOutOfDate`, naming the command that fixes it.
    """
    env = dict(os.environ)
    if data_dir is not None:
        env["EARMARK_DATA_DIR"] = str(data_dir)
    if db_url is not None:
        env["EARMARK_DATABASE_URL"] = db_url
    settings = Settings.from_env(env)
    if upgrade:
        from db.migrate import upgrade as do_upgrade

        ws = Workspace.open(settings, require_schema=False)
        do_upgrade(ws.db)
        return Client(ws)
    return Client(Workspace.open(settings))


class Client:
    """A connection to one Earmark database; see :func:`connect`. Usable as a context manager."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.workspace.close()

    # --- lookups --------------------------------------------------------------------------------------

    def _ids(self, s: Any, project: str | int, user: str | int | None = None) -> tuple[int, int | None]:
        pid = _projects.get_project(s, project).id
        uid = _auth.get_user(s, user).id if user is not None else None
        return pid, uid

    # --- projects and users ---------------------------------------------------------------------------

    def create_project(
        self,
        name: str,
        *,
        task_kind: str = "classification",
        classes: Sequence[str] = (),
        tag_groups: Mapping[str, Sequence[str]] | None = None,
        annotations_per_clip: int = 1,
        settings: Mapping[str, Any] | None = None,
    ) -> _projects.ProjectInfo:
        with self.workspace.db.write() as s:
            return _projects.create_project(
                s,
                name=name,
                task_kind=task_kind,
                classes=classes,
                tag_groups=tag_groups,
                annotations_per_clip=annotations_per_clip,
                settings=settings,
            )

    def project(self, project: str | int) -> _projects.ProjectInfo:
        with self.workspace.db.read() as s:
            return _projects.get_project(s, project)

    def add_user(
        self,
        name: str,
        *,
        role: str = "annotator",
        password: str | None = None,
        external_id: str | None = None,
    ) -> _auth.UserInfo:
        """Add an account. Without a password it can label through this API but not sign in."""
        with self.workspace.db.write() as s:
            return _auth.add_user(s, name=name, role=role, password=password, external_id=external_id)

    def users(self) -> list[_auth.UserInfo]:
        with self.workspace.db.read() as s:
            return _auth.list_users(s)

    # --- the queue ------------------------------------------------------------------------------------

    def next_clip(self, project: str | int, user: str | int) -> _queue.QueueItem | None:
        """Claim the next clip ``user`` should label (their live claim again if they hold one)."""
        with self.workspace.db.write() as s:
            pid, uid = self._ids(s, project, user)
            assert uid is not None
            return _queue.next_clip(s, pid, uid)

    def skip(self, project: str | int, user: str | int, clip_id: int) -> None:
        with self.workspace.db.write() as s:
            pid, uid = self._ids(s, project, user)
            assert uid is not None
            _queue.skip_clip(s, pid, uid, int(clip_id))

    def submit(
        self,
        project: str | int,
        user: str | int,
        clip_id: int,
        *,
        label: str | None = None,
        transcript: str | None = None,
        tags: Iterable[str] = (),
        unsure: bool = False,
        cannot_label_reason: str | None = None,
        time_spent_ms: int | None = None,
        idempotency_key: str | None = None,
    ) -> _annotations.SubmitResult:
        """Store ``user``'s annotation of a clip. Retrying with the same ``idempotency_key`` is safe.

        The result's ``status`` is ``created``, ``duplicate`` (already stored by an earlier try),
        ``already_labelled``, ``full`` (the clip has its k annotations) or ``unavailable``.
        Invalid input raises :class:`labeling.annotate.annotations.AnnotationError`.
        """
        with self.workspace.db.write() as s:
            pid, uid = self._ids(s, project, user)
            assert uid is not None
            return _annotations.submit_annotation(
                s,
                pid,
                uid,
                int(clip_id),
                label=label,
                transcript=transcript,
                tags=tags,
                unsure=unsure,
                cannot_label_reason=cannot_label_reason,
                time_spent_ms=time_spent_ms,
                idempotency_key=idempotency_key,
                source="api",
            )

    def annotations(self, project: str | int) -> pd.DataFrame:
        """All annotations of a project, long format
        (see :func:`labeling.annotate.annotations.annotations_frame`)."""
        with self.workspace.db.read() as s:
            pid, _ = self._ids(s, project)
            return _annotations.annotations_frame(s, pid)

    def set_priority(self, project: str | int, clip_ids: Iterable[int], priority: int) -> int:
        """Move clips up the queue (higher first among clips with as many annotations)."""
        with self.workspace.db.write() as s:
            pid, _ = self._ids(s, project)
            return _queue.set_priority(s, pid, clip_ids, priority)

    # --- conventions ----------------------------------------------------------------------------------

    def conventions(self, project: str | int) -> _conventions.ConventionInfo | None:
        """The current conventions of a project (None before the first version)."""
        with self.workspace.db.read() as s:
            pid, _ = self._ids(s, project)
            return _conventions.current_convention(s, pid)

    def save_conventions(
        self,
        project: str | int,
        text: str,
        *,
        note: str = "",
        rules: Mapping[str, Any] | None = None,
        author: str | int | None = None,
    ) -> _conventions.ConventionInfo:
        with self.workspace.db.write() as s:
            pid, uid = self._ids(s, project, author)
            return _conventions.save_convention(s, pid, text=text, rules=rules, note=note, author_id=uid)

    # --- production traffic ---------------------------------------------------------------------------

    def log_predictions(
        self,
        project: str | int,
        records: Iterable[Mapping[str, Any]],
        *,
        batch: str,
        audio_root: str | Path = ".",
    ) -> Any:
        """Log production requests (the records of a prediction log: ``audio`` relative to
        ``audio_root``, ``timestamp`` with a zone, ``model``, ``prediction`` or ``transcript``,
        ``confidence``, ``latency_ms``, optional ``request_id``…) into the production batch ``batch``.

        Bad records are listed in the report (``record N``: the reason); the rest lands in one
        transaction. Logging the same request again adds nothing. Returns a
        :class:`labeling.monitor.production.ProductionReport`.
        """
        from labeling.monitor.production import log_predictions

        return log_predictions(self.workspace, project, records, batch=batch, audio_root=Path(audio_root))

    def drift_check(self, project: str | int, batch: str, *, reference: str | int | None = None) -> Any:
        """Check a production batch for drift and store the check (see ``earmark drift``)."""
        from labeling.monitor.drift import run_drift_check

        return run_drift_check(self.workspace, project, batch, reference=reference)
