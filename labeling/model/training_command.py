"""Bring your own training code: call :func:`run_training_command`.

A project names its training command in ``settings["training_command"]``, a command line with the
placeholders ``{manifest}`` and ``{predictions}``, and the files that ARE its code in
``settings["training_files"]``. Earmark writes the dataset version's manifest (JSON Lines: ``clip_id,
sha256, audio_path, label, transcript, tags, split, metadata``), runs the command without a shell (the line is
split with :func:`shlex.split`; placeholders are substituted inside single arguments, so a path with
spaces stays one argument), with a timeout, and imports the predictions file it wrote (``clip_id``
plus ``label`` and/or ``transcript``, optional ``confidence``; CSV or JSON Lines, as
:func:`labeling.model.runs.import_external_predictions` reads) as a run of kind ``command``.

The run's code fingerprint is the SHA-256 of the command line and of every named file's contents, so
two runs with equal fingerprints ran the same code, and :func:`labeling.model.compare.compare_runs` can tell
a data-only change from a code change for your model as for the built-in one.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
from sqlalchemy import select, update

from db.models import Clip, ModelRun
from labeling.data.projects import get_project
from labeling.data.versions import VersionError, get_version, version_frame
from labeling.model.runs import RunError, RunSummary, get_run, import_external_predictions
from labeling.platform.workspace import Workspace

PLACEHOLDERS = ("{manifest}", "{predictions}")


class TrainingCommandError(RunError):
    """The training command is missing, failed or wrote no predictions; the message says why."""


def training_fingerprint(command: str, files: list[str], *, cwd: Path) -> tuple[str, dict[str, str]]:
    """SHA-256 over the command line and each named file's contents; also ``{file: sha256}``."""
    digest = hashlib.sha256(command.encode())
    hashes = {}
    for name in sorted(files):
        path = Path(name) if Path(name).is_absolute() else cwd / name
        if not path.is_file():
            raise TrainingCommandError(f"training file {name!r} does not exist (looked in {path.parent})")
        hashes[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        digest.update(b"\0" + name.encode() + b"\0" + hashes[name].encode())
    return digest.hexdigest(), hashes


def write_manifest(ws: Workspace, version_id: int, path: Path) -> int:
    """Write a dataset version as JSON Lines for a training command; returns the number of clips.

    One line per clip: ``clip_id, sha256, audio_path`` (the stored file, absolute), ``label,
    transcript, tags, split, metadata`` as frozen in the version.
    """
    with ws.db.read() as s:
        frame = version_frame(s, version_id)
        keys = dict(
            s.execute(select(Clip.id, Clip.storage_key).where(Clip.id.in_(frame["clip_id"].tolist()))).all()
        )
    with path.open("w", encoding="utf-8") as fh:
        for r in frame.itertuples(index=False):
            record = {
                "clip_id": int(r.clip_id),
                "sha256": r.sha256,
                "audio_path": str(ws.store.path(keys[r.clip_id])),
                "label": None if pd.isna(r.label) else r.label,
                "transcript": None if pd.isna(r.transcript) else r.transcript,
                "tags": list(r.tags or []),
                "split": r.split,
                "metadata": dict(r.metadata or {}),
            }
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return len(frame)


def run_training_command(
    ws: Workspace,
    project: str | int,
    version: str | int,
    *,
    name: str | None = None,
    timeout_s: float = 3600.0,
    cwd: Path | None = None,
    actor_id: int | None = None,
) -> RunSummary:
    """Run the project's training command on a dataset version and store its predictions as a run.

    Parameters
    ----------
    project
        Name or id; its settings hold ``training_command`` and ``training_files``.
    version
        Dataset version (name or id) to train on; its manifest is what the command reads.
    timeout_s
        The command is killed after this long.
    cwd
        Working directory of the command, and where relative ``training_files`` are found
        (default: the current directory).

    Raises
    ------
    TrainingCommandError
        When no command is configured, a training file is missing, the command cannot start, times
        out, exits with an error (its last lines of stderr are quoted) or writes no predictions.
    """
    cwd = Path(cwd or Path.cwd())
    with ws.db.read() as s:
        info = get_project(s, project)
        try:
            v = get_version(s, info.id, version)
        except VersionError as exc:
            raise TrainingCommandError(str(exc)) from exc
    command = str(info.settings.get("training_command") or "").strip()
    if not command:
        raise TrainingCommandError(
            f"project {info.name!r} has no training command; set settings['training_command'] to a command "
            "line with {manifest} and {predictions}"
        )
    if "{predictions}" not in command:
        raise TrainingCommandError(
            "the training command must name {predictions}, where it writes its predictions"
        )
    files = [str(f) for f in info.settings.get("training_files") or []]
    fingerprint, file_hashes = training_fingerprint(command, files, cwd=cwd)
    try:
        template = shlex.split(command)
    except ValueError as exc:
        raise TrainingCommandError(f"the training command cannot be parsed: {exc}") from exc

    with tempfile.TemporaryDirectory(prefix="earmark-train-") as tmp:
        manifest = Path(tmp) / "manifest.jsonl"
        predictions = Path(tmp) / "predictions.jsonl"
        write_manifest(ws, v.id, manifest)
        args = [
            a.replace("{manifest}", str(manifest)).replace("{predictions}", str(predictions))
            for a in template
        ]
        try:
            done = subprocess.run(
                args, cwd=cwd, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except FileNotFoundError as exc:
            raise TrainingCommandError(f"cannot start {template[0]!r}: no such program") from exc
        except subprocess.TimeoutExpired as exc:
            raise TrainingCommandError(
                f"the training command ran longer than {timeout_s:g} s and was stopped"
            ) from exc
        if done.returncode != 0:
            tail = "\n".join((done.stderr or "").strip().splitlines()[-5:])
            raise TrainingCommandError(f"the training command exited with status {done.returncode}:\n{tail}")
        if not predictions.is_file() or predictions.stat().st_size == 0:
            raise TrainingCommandError(
                f"the training command wrote no predictions to {{predictions}} ({predictions.name})"
            )
        run_name = name or f"command: {Path(template[0]).name} on {v.name}"
        summary = import_external_predictions(
            ws, info.id, predictions, name=run_name, fingerprint=fingerprint, version=v.id, actor_id=actor_id
        )
    with ws.db.write() as s:
        s.execute(
            update(ModelRun)
            .where(ModelRun.id == summary.id)
            .values(
                kind="command",
                params={"command": command, "files": file_hashes, "dataset_version": v.name},
            )
        )
    with ws.db.read() as s:
        out = get_run(s, summary.id)
    return RunSummary(**{**out.__dict__, "problems": summary.problems})
