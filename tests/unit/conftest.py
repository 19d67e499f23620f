"""librosa as an independent reference, run in child processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

LibrosaChild = Callable[[str, np.ndarray], list]


@pytest.fixture
def run_librosa(tmp_path: Path) -> LibrosaChild:
    """Run ``code`` with librosa in a child process, the signals in ``ys``; return what it prints as JSON.

    A child, because librosa's numba kernels have crashed test workers on a fresh install, and a crash
    there fails one test only. The JIT stays on: with it off, numba 0.68 cannot import librosa unless
    another process compiled its ufuncs into the cache first, which made a test pass or fail by the
    order the suite ran in. The child compiles into, or loads from, this test process's own numba
    cache (``NUMBA_CACHE_DIR``, see tests/conftest.py), which nothing else uses while it runs: the
    first reference of a run pays librosa's compilation, the others load it."""

    def run(code: str, signals: np.ndarray) -> list:
        np.save(tmp_path / "signals.npy", signals)
        env = {**os.environ}
        env.pop("NUMBA_DISABLE_JIT", None)
        script = "import json, sys, numpy as np, librosa\nys = np.load(sys.argv[1])\n" + code
        out = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "signals.npy")],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout
        return json.loads(out)

    return run
