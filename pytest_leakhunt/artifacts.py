"""The plugin's files: checked before the run, written whole, and never worth a verdict.

Every output (JSON report, HTML page, baseline, heap snapshots) goes through
here. Paths are checked when pytest is configured, so a typo fails in a second
rather than after an hour of tests. A file is written under a temporary name in
its own directory and renamed over the old one, so a reader sees the old file
or the whole new one, never a part. An error while writing is one line in the
terminal summary, never a traceback in place of the verdicts and the summary.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import pytest

_PLUGIN_NAME = "leakhunt-artifacts"
#: marks our temporary files, so an error about one is not shown with its made-up name
_TEMP_MARK = ".leakhunt-"
#: a session that ended this way did not run to the end: its session-level files are not written
_INCOMPLETE = (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)


@dataclass(frozen=True)
class Kind:
    """One sort of output: what users call it, and whether a run that could not write it fails."""

    label: str
    #: read by CI after the run: a missing or stale one must not pass unnoticed
    required: bool


REPORT = Kind("JSON report", required=True)
HTML = Kind("HTML report", required=True)
BASELINE = Kind("baseline", required=True)
SNAPSHOT = Kind("heap snapshot", required=False)
_KINDS = {kind.label: kind for kind in (REPORT, HTML, BASELINE, SNAPSHOT)}


@dataclass(frozen=True)
class Problem:
    """The first file of one kind that could not be written, and how many failed."""

    kind: Kind
    path: str
    reason: str
    count: int = 1

    def line(self) -> str:
        severity = "error" if self.kind.required else "warning"
        if self.count == 1:
            return f"leakhunt: {severity}: could not write the {self.kind.label} {self.path!r}: {self.reason}"
        return (
            f"leakhunt: {severity}: could not write {self.count} {self.kind.label}s, "
            f"the first {self.path!r}: {self.reason}"
        )


# -- writing -------------------------------------------------------------------


def write_text(path: str, text: str) -> None:
    """Write *text* to *path* whole or not at all: a temporary file in the same directory, then ``os.replace``.

    A device or pipe (``/dev/stdout``) cannot be replaced and is written in
    place. Raises OSError; the temporary file never outlives the call.
    """
    if os.path.exists(path) and not os.path.isfile(path):
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        return
    target = os.path.realpath(path)  # a symlink to a file: the file is replaced, the link kept
    fd, temp = _create_temp(os.path.dirname(target), os.path.basename(target))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())  # the rename must not land before the data
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temp, stat.S_IMODE(os.stat(target).st_mode))  # replacing keeps the file's permissions
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _create_temp(directory: str, name: str) -> tuple[int, str]:
    """A new file next to where *name* goes, open for writing (mode 0o666 less the umask, like ``open``)."""
    for _ in range(100):
        temp = os.path.join(directory, f".{name}{_TEMP_MARK}{os.getpid()}-{os.urandom(4).hex()}.tmp")
        try:
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), temp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {directory!r}")


def reason(exc: BaseException) -> str:
    """One line for a failed write, without Python internals or our temporary file's name."""
    if isinstance(exc, OSError) and exc.strerror:
        named = exc.filename if isinstance(exc.filename, str) and _TEMP_MARK not in exc.filename else None
        return f"{exc.strerror}: {named!r}" if named else exc.strerror
    return f"{type(exc).__name__}: {exc}"


class Artifacts:
    """The outputs of one process: written through here, failures kept as one line each for the summary.

    Registered as a plugin when some output is asked for. A file written
    during the run (a heap snapshot) that would replace an older one is kept
    aside until the session completes: an interrupted run adds files but
    changes none. An xdist worker sends its failures to the controller.
    """

    def __init__(self) -> None:
        #: by kind: the first failure and a count
        self.problems: dict[str, Problem] = {}
        #: files not written because the run did not complete
        self.skipped: list[tuple[Kind, str]] = []
        #: (kind, written aside, path it replaces once the run completes)
        self.staged: list[tuple[Kind, str, str]] = []

    def write(self, kind: Kind, path: str, write: Callable[[str], object], replace_at_end: bool = False) -> bool:
        """Call ``write(path)``; an error becomes a line of the summary, never a traceback or a lost verdict.

        With *replace_at_end*, an existing *path* is only replaced when the session completes.
        """
        target = _staged_name(path) if replace_at_end and os.path.lexists(path) else path
        try:
            write(target)
        except Exception as exc:  # noqa: BLE001 - an output is never worth the results it reports
            self.add(Problem(kind, path, reason(exc)))
            return False
        if target != path:
            self.staged.append((kind, target, path))
        return True

    def finish(self, kind: Kind, path: str, write: Callable[[str], object], exitstatus: int) -> bool:
        """A file written at the end of the session, only if the session completed (no file changes otherwise)."""
        if exitstatus in _INCOMPLETE:
            self.skipped.append((kind, path))
            return False
        return self.write(kind, path, write)

    def commit(self, exitstatus: int) -> None:
        """Put the files kept aside in place if the session completed, else drop them."""
        staged, self.staged = self.staged, []
        for kind, aside, path in staged:
            if exitstatus in _INCOMPLETE:
                self.skipped.append((kind, path))
                with contextlib.suppress(OSError):
                    os.unlink(aside)
                continue
            try:
                os.replace(aside, path)
            except OSError as exc:
                self.add(Problem(kind, path, reason(exc)))
                with contextlib.suppress(OSError):
                    os.unlink(aside)

    def add(self, problem: Problem) -> None:
        first = self.problems.get(problem.kind.label)
        if first is not None:
            problem = Problem(first.kind, first.path, first.reason, first.count + problem.count)
        self.problems[problem.kind.label] = problem

    def lines(self) -> list[str]:
        lines = [problem.line() for problem in self.problems.values()]
        if self.skipped:
            by_kind: dict[Kind, list[str]] = {}
            for kind, path in self.skipped:
                by_kind.setdefault(kind, []).append(path)
            parts = [
                f"the {kind.label} {paths[0]!r}" if len(paths) == 1 else f"{len(paths)} {kind.label}s"
                for kind, paths in by_kind.items()
            ]
            names = " and ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 1 else parts)
            verb = "was" if len(self.skipped) == 1 else "were"
            lines.append(
                f"leakhunt: the run did not complete, so {names} {verb} not written; files already there are unchanged"
            )
        return lines

    def to_json(self) -> list[list[Any]]:
        return [[p.kind.label, p.path, p.reason, p.count] for p in self.problems.values()]

    def merge_json(self, data: object) -> None:
        """Failures an xdist worker sent; anything unexpected in *data* is ignored."""
        for row in data if isinstance(data, list) else ():
            if isinstance(row, list) and len(row) == 4 and row[0] in _KINDS:
                self.add(Problem(_KINDS[row[0]], str(row[1]), str(row[2]), int(row[3])))

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> Generator[None, None, None]:
        """Files kept aside go in place before anything reports on them; after the session's own files
        are written, a run that passed but lost a file CI reads exits 1, as a failed ``--cov-fail-under`` does."""
        self.commit(exitstatus)
        try:
            return (yield)
        finally:
            if session.exitstatus == pytest.ExitCode.OK and any(p.kind.required for p in self.problems.values()):
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    @pytest.hookimpl(trylast=True)  # under the leakhunt summary
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for line in self.lines():
            terminalreporter.write_line(
                line, **({"yellow": True} if line.startswith("leakhunt: warning") else {"red": True})
            )


def _staged_name(path: str) -> str:
    """Where a file waits for the end of the session: a hidden name beside *path*."""
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}{_TEMP_MARK}staged-{os.getpid()}-{os.urandom(4).hex()}")


_KEY = pytest.StashKey[Artifacts]()


def current(config: pytest.Config) -> Artifacts | None:
    """The process's Artifacts if some output was asked for."""
    return config.stash.get(_KEY, None)


def register(config: pytest.Config) -> Artifacts:
    """The process's Artifacts, registered on first use (at configuration, when some output is asked for)."""
    found = config.stash.get(_KEY, None)
    if found is None:
        found = config.stash[_KEY] = Artifacts()
        config.pluginmanager.register(found, _PLUGIN_NAME)
    return found


# -- checks at configuration time ------------------------------------------------


def check_file(value: Any, where: str) -> str:
    """A file the run will write: not a directory, in an existing directory that takes new files."""
    path = _named(value, where, "a file path")
    if os.path.isdir(path):
        raise pytest.UsageError(f"{where}: {path!r} is a directory, expected a file path")
    if os.path.exists(path) and not os.path.isfile(path):  # a device or a pipe: written in place
        if not os.access(path, os.W_OK):
            raise pytest.UsageError(f"{where}: cannot write {path!r}: permission denied")
        return path
    directory = os.path.dirname(os.path.realpath(path))
    if not os.path.isdir(directory):
        blocker = _nearest(directory)
        if os.path.isdir(blocker):
            raise pytest.UsageError(f"{where}: cannot write {path!r}: directory {directory!r} does not exist")
        raise pytest.UsageError(f"{where}: cannot write {path!r}: {blocker!r} is a file, not a directory")
    _probe(directory, f"{where}: cannot write {path!r}")
    return path


def check_directory(value: Any, where: str) -> str:
    """A directory the run will write into: one that exists and takes new files, or that can be created."""
    path = _named(value, where, "a directory")
    if os.path.isdir(path):
        _probe(path, f"{where}: cannot write into {path!r}")
        return path
    if os.path.lexists(path):
        raise pytest.UsageError(f"{where}: {path!r} is a file, expected a directory")
    blocker = _nearest(os.path.abspath(path))
    if not os.path.isdir(blocker):
        raise pytest.UsageError(f"{where}: cannot create directory {path!r}: {blocker!r} is a file, not a directory")
    _probe(blocker, f"{where}: cannot create directory {path!r}")
    return path


def check_distinct(named: list[tuple[str, str]]) -> None:
    """No two of the (path, where) outputs are one file: the last one written would replace the others."""
    seen: dict[object, tuple[str, str]] = {}
    for path, where in named:
        key = _identity(path)
        if key in seen:
            first, first_where = seen[key]
            raise pytest.UsageError(
                f"{where}: {path!r} is the same file as {first_where} ({first!r}); give each its own path"
            )
        seen[key] = (path, where)


def check_named(value: Any, where: str) -> str:
    """A file the run only reads: named, at least (what it holds is its reader's business)."""
    return _named(value, where, "a file path")


def _named(value: Any, where: str, what: str) -> str:
    path = str(value).strip()
    if not path:
        raise pytest.UsageError(f"{where}: expected {what}, got an empty value")
    return path


def _nearest(path: str) -> str:
    """*path* or its closest ancestor that exists (a file there is why a directory cannot be)."""
    while not os.path.lexists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def _probe(directory: str, prefix: str) -> None:
    """Create and remove a file in *directory*: ``os.access`` says yes to root even in ``/proc``."""
    try:
        fd, temp = _create_temp(directory, "probe")
    except OSError as exc:
        raise pytest.UsageError(f"{prefix}: cannot create files in {directory!r}: {reason(exc)}") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(temp)


def _identity(path: str) -> object:
    """What makes two names one file: device and inode when it exists, else its resolved path."""
    try:
        info = os.stat(path)
    except OSError:
        return os.path.normcase(os.path.realpath(path))
    return (info.st_dev, info.st_ino)
