"""Starts the browser tests' Streamlit servers by forking an interpreter that has the app's modules.

A fresh ``python -m streamlit run app.py`` spends its first seconds importing Streamlit, and its first
page several more importing what the pages import (pandas, plotly, scikit-learn, the app's services):
some 5-15 s per server on a busy two-core machine, paid again by every browser test. This process
imports all that once; for each request it forks a child that takes the test's environment, working
folder and log file, and then runs ``streamlit run`` exactly as the command line would. The app's
own modules (``app.py``, ``pages/``) are not imported here: Streamlit runs them in the child.

Protocol: one JSON object per line on stdin (``{"env": {...}, "args": [...], "log": "..."}``); the
reply is the child's process id on a line of its own. The children are not this process's to wait
for: they are reaped as they exit, and the test stops them by process id. Run with
``python -m tests.browser.server_farm`` from the repository root; end of input ends it.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def imported_by_app() -> list[str]:
    """The modules ``app.py`` and ``pages/`` import, except the pages' own."""
    names: set[str] = {"streamlit.web.cli"}
    for path in [ROOT / "app.py", *sorted((ROOT / "pages").rglob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
    return sorted(n for n in names if n.split(".")[0] not in {"pages", "__future__"})


def preload() -> None:
    for name in imported_by_app():
        # A module that fails to import fails in the server too, where the test sees it.
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def serve(request: dict[str, Any]) -> None:
    """In the forked child: become ``streamlit run`` with the test's environment; never returns."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the server's own subprocesses are its to wait for
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(null)
        os.close(log)
        from streamlit.web import cli

        sys.argv = ["streamlit", *request["args"]]
        cli.main(args=request["args"], prog_name="streamlit")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def main() -> None:
    preload()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # exited children are reaped by the kernel
    replies = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        replies.flush()
        pid = os.fork()
        if pid == 0:
            serve(request)
        replies.write(f"{pid}\n")
        replies.flush()


if __name__ == "__main__":
    main()
