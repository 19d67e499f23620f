"""Shared fixtures: the FSDD recordings, and throwaway SQLite / PostgreSQL databases.

Shared data lives beside the project (``../shared``), which a user's clone does not have: tests that
need it skip there, but fail under CI (``CI=true``), where it must be present.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FSDD_DIR = ROOT.parent / "shared" / "data" / "fsdd"


def running_in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need(condition: bool, reason: str) -> None:
    """Skip when a resource is missing on a user's machine; fail when it is missing in CI."""
    if condition:
        return
    if running_in_ci():
        pytest.fail(f"{reason} (required under CI)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    need((FSDD_DIR / "recordings").is_dir(), "the shared FSDD recordings are not beside this clone")
    return FSDD_DIR
