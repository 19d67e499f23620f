"""Progress of multi-stage work on the command line: a bar per stage on a terminal, and plain lines
(each stage as it starts, then every tenth of the way) when stderr is a file or a pipe, so a log or
``make run`` shows what is happening instead of nothing for minutes."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from labeling.platform.progress import progress_text


class StageReporter:
    """``progress(stage, done, total)`` callbacks written to ``stream`` (stderr by default)."""

    def __init__(self, *, quiet: bool = False, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self._stage: str | None = None
        self._bar: Any = None
        self._tenths = -1

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.quiet:
            return
        if stage != self._stage:
            self.close()
            self._stage, self._tenths = stage, -1
            if self.tty:
                from tqdm import tqdm

                self._bar = tqdm(
                    total=max(total, 1), desc=stage, file=self.stream, leave=False, mininterval=0.3
                )
        if self._bar is not None:
            self._bar.n = done
            self._bar.refresh()
            return
        tenths = 10 * done // total if total > 1 else 0
        if tenths > self._tenths:  # the start, every tenth of the way, and the end
            self._tenths = tenths
            self.stream.write(progress_text(stage, done, total) + "\n")
            self.stream.flush()

    def say(self, line: str) -> None:
        """A line of its own (a step that starts or ends), above any bar."""
        if self.quiet:
            return
        self.close()
        self._stage = None
        self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
