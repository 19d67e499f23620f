"""What a demo step is given: the project, its size and seed, progress, and what earlier steps made."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class DemoContext:
    project: str
    size: str | int
    random_state: int
    progress: Callable[[str, int, int], None] | None
    facts: dict[str, Any] = field(default_factory=dict)  # what earlier steps made, for later ones

    def report(self, stage: str) -> Callable[[int, int], None] | None:
        if self.progress is None:
            return None
        progress = self.progress
        return lambda done, total: progress(stage, done, total)
