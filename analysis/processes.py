"""Process pools for CPU-bound per-clip work: :func:`pool_context` picks how workers start and
:func:`plain_main` keeps them from running the caller's script.

    with plain_main(), ProcessPoolExecutor(2, mp_context=pool_context("analysis.drift")) as pool:
        ...
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
import threading
import types
from collections.abc import Iterator


def pool_context(preload: str) -> multiprocessing.context.BaseContext:
    """How a pool's workers start: forked when that is safe, else from a fork server that has
    imported ``preload`` (the module whose functions the workers run), else spawned.

    Forking is the cheapest start (workers inherit the imported modules), but only safe from a
    single-threaded process (a CLI, not a web server), and Python 3.12+ warns about it whenever native
    threads exist; otherwise a fork server that has imported ``preload`` is nearly as quick once it
    runs (it is started once per process and kept).
    """
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and sys.version_info < (3, 12) and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([preload])
        return context
    return multiprocessing.get_context("spawn")


@contextlib.contextmanager
def plain_main() -> Iterator[None]:
    """Keep spawned workers from re-running the caller's ``__main__`` script.

    Spawn and fork-server workers import the parent's main module by path. Under Streamlit (and its
    AppTest) ``__main__`` is the app script itself, which a worker must never run.
    """
    main = sys.modules.get("__main__")
    if main is None or not getattr(main, "__file__", None):
        yield
        return
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main
