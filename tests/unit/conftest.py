"""librosa as an independent reference, run in child processes that share one numba cache."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

LibrosaChild = Callable[[str, np.ndarray], list]


@pytest.fixture(scope="session")
def librosa_numba_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A numba cache for the librosa children of the whole run, shared by the xdist workers.

    Importing librosa compiles its ufuncs, and yin and pyin compile their kernels: some twenty seconds
    of CPU into an empty cache, a few from a filled one. Under xdist the workers' temporary folders sit
    side by side in one folder of the run, where the cache goes; a run without xdist has its own."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    cache = root / "librosa-numba"
    cache.mkdir(exist_ok=True)
    return cache


@pytest.fixture
def run_librosa(librosa_numba_cache: Path, tmp_path: Path) -> LibrosaChild:
    """Run ``code`` with librosa in a child process, the signals in ``ys``; return what it prints as JSON.

    A child, because librosa's numba kernels have crashed test workers on a fresh install, and a crash
    there fails one test only. The JIT stays on: with it off, numba 0.68 cannot import librosa unless
    another process compiled its ufuncs into the cache first, which made a test pass or fail by the
    order the suite ran in. One child at a time holds the cache: two processes compiling the same
    kernel into one cache at once is what crashed; whichever comes first compiles what it needs and
    the others load it."""

    def run(code: str, signals: np.ndarray) -> list:
        np.save(tmp_path / "signals.npy", signals)
        env = {**os.environ, "NUMBA_CACHE_DIR": str(librosa_numba_cache)}
        env.pop("NUMBA_DISABLE_JIT", None)
        script = "import json, sys, numpy as np, librosa\nys = np.load(sys.argv[1])\n" + code
        with (librosa_numba_cache / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            out = subprocess.run(
                [sys.executable, "-c", script, str(tmp_path / "signals.npy")],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            ).stdout
        return json.loads(out)

    return run
