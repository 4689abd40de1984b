"""The status line of --leaks-repeat: how many tests have re-run, and for how long, while it works."""

from __future__ import annotations

import time

import pytest


class Progress:
    """A status at the end of the terminal's current line while a test re-runs, erased before pytest writes on.

    Only on a terminal, and never on an xdist worker (the controller prints
    their results): in a log the dots and the summary's timing say the rest.
    """

    def __init__(self, config: pytest.Config) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        tty = getattr(reporter, "isatty", False)
        live = reporter is not None and bool(tty() if callable(tty) else tty) and not hasattr(config, "workerinput")
        # the writer whose current line the status leaves as it was
        self._writer = reporter._tw if live and reporter is not None else None  # noqa: SLF001
        self.start = time.monotonic()
        self.done = 0
        self.total = 0
        self._shown = 0

    def show(self) -> None:
        writer = self._writer
        if writer is None:
            return
        text = f" [leakhunt: repeating {self.done}/{self.total} tests, {time.monotonic() - self.start:.0f}s]"
        line = writer._current_line  # noqa: SLF001
        writer.write(text, flush=True)
        writer._current_line = line  # noqa: SLF001 - the status is erased: pytest's alignment must not count it
        self._shown = len(text)

    def clear(self) -> None:
        writer, n = self._writer, self._shown
        if writer is None or not n:
            return
        line = writer._current_line  # noqa: SLF001
        writer.write("\b" * n + " " * n + "\b" * n, flush=True)
        writer._current_line = line  # noqa: SLF001
        self._shown = 0
