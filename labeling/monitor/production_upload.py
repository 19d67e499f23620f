"""Production batches from the Import page, run by a worker: :func:`stage_upload` keeps what the
browser sent where every worker can read it, and the ``production_import`` job runs
:func:`log_production_batch` on it (or on a log, folder or zip on the worker's machine).

The rules and limits are those of ``earmark import --production``
(:func:`labeling.monitor.production.import_production`): a prediction log names its audio relative to itself
and each line it cannot take is listed; plain audio is scored by the live model. An upload is one zip
holding a log and its audio (or audio alone), or loose audio files. Unlike the command line, the page
and its job need a live model even for a log: a batch is watched against the live model's reference.
"""

from __future__ import annotations

import contextlib
import io
import secrets
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from labeling.data.formats.folder import audio_extensions, opened
from labeling.data.formats.writers import safe_name
from labeling.data.projects import get_project
from labeling.monitor.live import live_run
from labeling.monitor.production import (
    ProductionError,
    ProductionReport,
    Progress,
    import_production,
)
from labeling.platform.storage import copy_file, is_remote_url, s3_filesystem, upload_file
from labeling.platform.workspace import Workspace

#: Uploads a job never picked up (cancelled before it started, say) are removed after this long.
KEEP_UPLOADS_S = 24 * 3600.0
LOG_SUFFIX = ".jsonl"
GONE = "the uploaded file is gone (uploads are kept a day); upload it again"


@dataclass(frozen=True)
class StagedUpload:
    ref: str  # a local path or an s3:// URL, readable by every worker
    name: str  # what the person uploaded, for messages and the batch's source


def live_model_missing(ws: Workspace, project: str | int) -> str | None:
    """Why ``project`` cannot take production traffic from the Import page yet, or None if it can."""
    with ws.db.read() as s:
        info = get_project(s, project)
        live = live_run(s, info.id)
    if live is not None:
        return None
    return (
        f"{info.name!r} has no live model yet. Production batches are watched against the deployed "
        "model: mark the run you deployed on the Monitoring page (Mark the live model), or with "
        f"`earmark live --project {info.name!r} --run ID`, then add its traffic here."
    )


def production_job_params(
    ws: Workspace,
    project: str | int,
    *,
    batch: str,
    files: Sequence[tuple[str, bytes]] = (),
    path: str = "",
    audio_root: str = "",
) -> dict[str, Any]:
    """The ``production_import`` job's parameters for what the Import page was given, with an upload
    staged for the worker. Raises :class:`ProductionError`, staging nothing, when it cannot be done."""
    name = batch.strip()
    if not name:
        raise ProductionError("name the production batch (the day it covers, e.g. 2026-11-30)")
    if len(name) > 300:
        raise ProductionError("a production batch needs a name of 1 to 300 characters")
    if bool(files) == bool(path.strip()):
        raise ProductionError(
            "upload a zip or audio files, or name a log, folder or zip on the server (one of the two)"
        )
    missing = live_model_missing(ws, project)
    if missing:
        raise ProductionError(missing)
    if files:
        if audio_root.strip():
            raise ProductionError(
                "an upload holds its own audio; the audio folder applies to a log on the server"
            )
        staged = stage_upload(ws, files)
        return {"batch": name, "upload": staged.ref, "upload_name": staged.name}
    return {"batch": name, "path": path.strip(), "audio_root": audio_root.strip() or None}


def stage_upload(ws: Workspace, files: Sequence[tuple[str, bytes]]) -> StagedUpload:
    """Keep uploaded files for a worker: one zip as it came, or loose audio files packed into one.

    Kept in ``uploads/`` of the data folder, or of the object store when audio lives in one (any
    worker reads it there). Raises :class:`ProductionError`, storing nothing, for an upload a
    production batch cannot be made of.
    """
    if not files:
        raise ProductionError("choose a zip (a prediction log and its audio) or audio files to upload")
    names = [PurePosixPath(str(name).replace("\\", "/")).name for name, _ in files]
    zips = [n for n in names if n.lower().endswith(".zip")]
    if zips and len(files) > 1:
        raise ProductionError(
            f"upload one zip on its own, or audio files without a zip (this upload holds {', '.join(zips)} "
            "and other files)"
        )
    if zips:
        data = files[0][1]
        if not zipfile.is_zipfile(io.BytesIO(data)):
            raise ProductionError(f"{names[0]} is not a zip file")
        name = names[0]
    else:
        logs = [n for n in names if n.lower().endswith(LOG_SUFFIX)]
        if logs:
            raise ProductionError(
                f"{logs[0]} names its audio by paths relative to itself: upload the log and its audio "
                "together as one zip"
            )
        exts = audio_extensions()
        not_audio = [n for n in names if PurePosixPath(n).suffix.lower().lstrip(".") not in exts]
        if not_audio:
            raise ProductionError(
                f"not audio: {', '.join(not_audio[:5])}{' …' if len(not_audio) > 5 else ''}; upload a zip "
                "holding a prediction log and its audio, or audio files for the live model to score"
            )
        data = _zipped(files)
        name = names[0] if len(files) == 1 else f"{len(files):,} audio files"
    return StagedUpload(ref=_keep(ws, data), name=name)


def _zipped(files: Sequence[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    taken: set[str] = set()
    # Audio barely compresses: stored as it is, the zip costs no CPU on the app server.
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in files:
            member = safe_name(PurePosixPath(str(name).replace("\\", "/")).name)
            stem, suffix, n = Path(member).stem, Path(member).suffix, 1
            while member.lower() in taken:
                n += 1
                member = f"{stem}-{n}{suffix}"
            taken.add(member.lower())
            zf.writestr(member, data)
    return buf.getvalue()


def _keep(ws: Workspace, data: bytes) -> str:
    name = f"production-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(6)}.zip"
    if ws.store.is_local:
        folder = ws.settings.data_dir / "uploads"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        _sweep_local(folder)
        target = folder / name
        target.write_bytes(data)
        return str(target)
    with tempfile.TemporaryDirectory(prefix="earmark-upload-") as tmp:
        local = Path(tmp) / name
        local.write_bytes(data)
        return upload_file(local, f"{ws.store.base}uploads/{name}")


def _sweep_local(folder: Path) -> None:
    cutoff = time.time() - KEEP_UPLOADS_S
    for old in folder.glob("production-*.zip"):
        with contextlib.suppress(OSError):
            if old.stat().st_mtime < cutoff:
                old.unlink()


def discard_upload(ref: str) -> None:
    """Remove a staged upload once its job is done with it (succeeded, failed or cancelled)."""
    with contextlib.suppress(OSError, FileNotFoundError):
        if is_remote_url(ref):
            s3_filesystem().rm_file(ref[len("s3://") :])
        else:
            Path(ref).unlink(missing_ok=True)


@contextmanager
def _fetched(ref: str) -> Iterator[Path]:
    """The staged upload as a local file."""
    if not is_remote_url(ref):
        if not Path(ref).is_file():
            raise ProductionError(GONE)
        yield Path(ref)
        return
    with tempfile.TemporaryDirectory(prefix="earmark-upload-") as tmp:
        local = Path(tmp) / PurePosixPath(ref).name
        try:
            copy_file(ref, local)
        except FileNotFoundError as exc:
            raise ProductionError(
                "the uploaded file is gone (uploads are kept a day); upload it again"
            ) from exc
        yield local


def _visible(path: Path, root: Path) -> bool:
    # Hidden files and macOS's resource forks (__MACOSX/._log.jsonl) are never the log.
    return not any(p.startswith(".") or p == "__MACOSX" for p in path.relative_to(root).parts)


def _from_zip(
    ws: Workspace,
    archive: Path,
    project: str | int,
    *,
    batch: str,
    source: str,
    actor_id: int | None,
    progress: Progress | None,
) -> ProductionReport:
    with opened(archive) as root:  # the import's zip limits: escapes, bombs, names too long
        logs = sorted(p for p in root.rglob(f"*{LOG_SUFFIX}") if p.is_file() and _visible(p, root))
        if len(logs) > 1:
            listed = ", ".join(p.relative_to(root).as_posix() for p in logs[:5])
            raise ProductionError(f"{source} holds {len(logs)} prediction logs ({listed}); log one at a time")
        return import_production(
            ws,
            logs[0] if logs else root,
            project,
            batch=batch,
            actor_id=actor_id,
            progress=progress,
            source=source,
        )


def log_production_batch(
    ws: Workspace,
    project: str | int,
    *,
    batch: str,
    upload: str | None = None,
    upload_name: str | None = None,
    path: str | Path | None = None,
    audio_root: str | Path | None = None,
    actor_id: int | None = None,
    progress: Progress | None = None,
) -> ProductionReport:
    """Log production batch ``batch`` of ``project`` from a staged ``upload``, or from ``path`` on
    this machine: a prediction log, a folder of audio for the live model to score (both as
    ``earmark import --production`` reads them), or a zip holding either. The caller removes the
    upload (:func:`discard_upload`) once no attempt needs it any more.

    Raises
    ------
    ProductionError
        When no live model is marked, the batch has no name, or the source cannot be read; nothing
        is logged.
    """
    if (upload is None) == (path is None):
        raise ProductionError("give either an uploaded file or a path on the server")
    name = batch.strip()
    if not name:
        raise ProductionError("name the production batch (the day it covers, e.g. 2026-11-30)")
    missing = live_model_missing(ws, project)
    if missing:
        raise ProductionError(missing)
    if upload is not None:
        if audio_root:
            raise ProductionError("an uploaded zip holds its own audio; an audio folder applies to a log")
        with _fetched(upload) as archive:
            return _from_zip(
                ws,
                archive,
                project,
                batch=name,
                source=f"upload {upload_name or PurePosixPath(upload).name}",
                actor_id=actor_id,
                progress=progress,
            )
    source = Path(str(path)).expanduser()
    root = Path(str(audio_root)).expanduser() if audio_root else None
    if source.is_file() and zipfile.is_zipfile(source):
        if root is not None:
            raise ProductionError("a zip holds its own audio; an audio folder applies to a log")
        return _from_zip(
            ws, source, project, batch=name, source=str(source), actor_id=actor_id, progress=progress
        )
    return import_production(
        ws, source, project, batch=name, audio_root=root, actor_id=actor_id, progress=progress
    )
