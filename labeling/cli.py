"""The ``earmark`` command line: one sub-command per module in :mod:`labeling.commands`.

Each module there defines ``register(subparsers)``, adding its commands with ``set_defaults(run=...)``;
``run(args) -> int`` does the work through the same services the pages call.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import labeling.commands
import labeling.job_kinds  # registers the background job kinds
from labeling.commands import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="earmark",
        description="Earmark: a data-centric workbench for speech and audio datasets.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod in sorted(pkgutil.iter_modules(labeling.commands.__path__), key=lambda m: m.name):
        if not mod.name.startswith("_"):
            importlib.import_module(f"labeling.commands.{mod.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except UserError as exc:
        print(f"earmark: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        # The machine said no (a read-only or full disk, a missing folder): say what, not where in
        # the code.
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"earmark: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("earmark: interrupted; nothing half-written was kept", file=sys.stderr)
        return 130
    except Exception as exc:
        from labeling.platform.failures import plain_failure

        message = plain_failure(exc)
        if message is None:
            raise
        print(f"earmark: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
