"""Workspaces made once per test process and copied for each test that starts from one.

Importing recordings (decoding, measuring, hashing them) and the reports an import queues cost far
more than copying what they leave behind: the database file, the audio store and the source folders.
A test gets a copy of its own, so it may change anything in it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labeling.platform.config import Settings
from labeling.platform.workspace import Workspace

#: ``build(ws, folder)``: fills a new migrated workspace; ``folder`` holds it, and any files the test
#: will read again (recordings, prediction files) go there too.
Build = Callable[[Any, Path], None]


def _settings(folder: Path) -> Settings:
    return Settings(data_dir=folder / "data", database_url=f"sqlite:///{folder / 'earmark.db'}")


class Templates:
    """Each template is built the first time a test asks for it, in a folder under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._made: dict[str, Path] = {}

    def open(self, name: str, build: Build, dest: Path) -> Workspace:
        """A workspace in ``dest`` (``earmark.db``, ``data/`` and what ``build`` left beside them):
        a copy of template ``name``, built by ``build`` if this process has not built it yet."""
        folder = self._made.get(name)
        if folder is None:
            from tests.conftest import make_workspace

            folder = self.root / name
            ws = make_workspace(folder / "data", _settings(folder).database_url)
            try:
                build(ws, folder)
            finally:
                ws.close()  # the last connection to close checkpoints the WAL into the file
            self._made[name] = folder
        shutil.copytree(folder, dest, dirs_exist_ok=True)
        return Workspace.open(_settings(dest))
