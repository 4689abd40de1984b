"""Repeat mode: after a test's real run, run it N more times and report what every run adds and keeps.

The real run comes first and is checked as usual: its outcome is the test's,
whatever the extra runs do. The heap is then frozen once, and after each extra
run a collection and ``gc.get_objects()`` list what the extra runs have left
alive so far: counting costs what they allocated, never the size of the heap,
and needs no tracemalloc. Growth is net: a kind of object grows when the
number alive went up on every run (a slot each run replaces frees the value of
the run before, and stays at one). What grows is named by its retainer chain
from program state (a module global, a class attribute, a fixture of broader
scope); what only pytest's state holds (items, stash, user properties, warning
records, captured output) is the harness's, never the test's. Values the
collector does not track (``bytes``, ``str``, dicts of numbers) are seen as a
module-level container of the project that got longer on every run.
"""

from __future__ import annotations

import collections
import dataclasses
import gc
import statistics
import sys
import threading
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import pytest

from pytest_leakhunt import census, holders
from pytest_leakhunt.classify import is_subject
from pytest_leakhunt.harness import Harness, HarnessState, fixturedefs, user_fixture
from pytest_leakhunt.model import Leak, TestLeaks
from pytest_leakhunt.naming import module_of, qualified_type
from pytest_leakhunt.progress import Progress
from pytest_leakhunt.untracked import ContainerWatch
from pytest_leakhunt.window import HeapWindow


class Session(Protocol):
    """What repeat mode uses of the session's plugin object (``session.LeakHunt``), which registers it."""

    config: pytest.Config
    harness: Harness
    #: inside the extra runs: the runtest hooks leave them alone
    repeating: bool


#: Modules whose types are builtin values, counted when program state holds them directly (a dict appended to a
#: module list, a bound ``list.append`` subscribed to a bus, an exception kept with its traceback).
_BUILTIN_MODULES = frozenset({"builtins", "functools", "_functools", "collections", "_collections", "array", "types"})
#: Builtin types that are how code runs, not values a program keeps: a frame, a code object, a cell.
_MACHINERY = frozenset({types.FrameType, types.CodeType, types.CellType})
#: Objects of one growing kind whose retainer chains are searched, in one search for all kinds.
_SAMPLES = 4
#: Seconds a run's threads get, in all, to end before what the run left is counted.
_THREAD_SETTLE = 0.1
#: Growing kinds named in a report.
_SHOWN = 3


@dataclass(frozen=True)
class Tally:
    """What the extra runs had left alive after one of them: objects by kind, and the watched containers' lengths."""

    counts: dict[str, int]
    lengths: list[int]


def _counted(survivors: census.Survivors, codes: frozenset[int], skip: set[int]) -> Iterator[Any]:
    """The survivors repeat mode counts: subjects, and builtin values held from outside the survivors."""
    objs = survivors.objs
    for i in survivors.roots():
        obj = objs[i]
        kind = type(obj)
        if kind not in _MACHINERY and module_of(kind) in _BUILTIN_MODULES and id(obj) not in skip:
            yield obj
    yield from (obj for obj in objs if is_subject(obj, codes))


def settle_threads(known: set[int | None], budget: float = _THREAD_SETTLE) -> None:
    """Give threads a run started, and that are ending, up to *budget* seconds in all to end.

    A test that tells its server thread to stop and returns at once leaves the
    thread exiting: its state (``threading._shutdown_locks``) is not what the
    run keeps. A thread still running after that is left to the thread check.
    """
    deadline = time.monotonic() + budget
    for thread in threading.enumerate():
        if thread.ident not in known and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))


def count_alive(codes: frozenset[int], skip: set[int]) -> dict[str, int]:
    """Objects made since the freeze and alive now, by kind.

    *skip* holds the ids of our own tallies, which are young objects too.
    """
    survivors = census.Survivors()  # collects first: what is listed is alive
    try:
        return dict(collections.Counter(map(qualified_type, _counted(survivors, codes, skip))))
    finally:
        survivors.close()


def samples(kinds: dict[str, int], codes: frozenset[int], skip: set[int]) -> tuple[list[Any], int]:
    """A few counted objects of each growing kind, the newest first, for the chain search (hold them briefly),
    and the shallow bytes of all the counted objects of those kinds.
    """
    survivors = census.Survivors()
    try:
        taken: collections.Counter[str] = collections.Counter()
        out = []
        size = 0
        for obj in reversed(list(_counted(survivors, codes, skip))):
            name = qualified_type(obj)
            if name in kinds:
                size += sys.getsizeof(obj)
                if taken[name] < _SAMPLES:
                    taken[name] += 1
                    out.append(obj)
        return out, size
    finally:
        survivors.close()


def growing(tallies: list[Tally]) -> tuple[dict[str, int], list[int]]:
    """Kinds and containers (by position) that went up on every run, with how many each run added (median)."""
    kinds = {}
    for name in tallies[-1].counts:
        series = [0, *(tally.counts.get(name, 0) for tally in tallies)]
        steps = [b - a for a, b in zip(series, series[1:])]
        if min(steps) > 0:
            kinds[name] = int(statistics.median(steps))
    containers = []
    for pos, _ in enumerate(tallies[0].lengths):
        series = [tally.lengths[pos] for tally in tallies]
        if min(series) >= 0 and all(b > a for a, b in zip(series, series[1:])):
            containers.append(pos)
    return kinds, containers


def _registries(hunt: Session) -> set[int]:
    """The runtime's registries, less the logging manager: a logger made per run is a logger that piles up."""
    known = hunt.harness.known
    known.refresh()
    ids = set(known.ids())
    logging = sys.modules.get("logging")
    if logging is not None:
        ids -= {id(logging.Logger.manager), id(logging.Logger.manager.loggerDict)}
    return ids


def _user_fixtures(item: pytest.Item) -> list[Any]:
    """The fixture definitions of broader scope the suite wrote that *item* uses: their values outlive it."""
    return [fixturedef for chain in fixturedefs(item) for fixturedef in chain if user_fixture(fixturedef)]


def untracked_added(
    watch: ContainerWatch, containers: list[int], before: list[int], runs: int
) -> tuple[str, int, int] | None:
    """The first watched container that grew on every run with values the collector does not track.

    Its name, and the values and bytes each run added (the newest elements:
    lists, deques and dicts keep their order). Tracked values are counted by kind.
    """
    for pos in containers:
        where, value = watch.named(pos)
        added = len(value) - before[pos] if value is not None else 0
        if added <= 0 or isinstance(value, set):
            continue
        newest = [element for element in list(value)[-added:] if not gc.is_tracked(element)]
        values = [value[key] for key in newest] if isinstance(value, dict) else newest
        size = sum(map(sys.getsizeof, newest)) + (sum(map(sys.getsizeof, values)) if values is not newest else 0)
        count = len(newest)
        newest.clear()
        values.clear()
        if count:
            return where, max(1, count // runs), size // runs
    return None


def growth_leak(
    kinds: dict[str, int], paths: dict[str, str], untracked: tuple[str, int, int] | None, runs: int, size: int
) -> Leak | None:
    """One growth finding for the test: the kinds program state keeps (*size* bytes a run), and the untracked
    values of a container."""
    blamed = sorted(
        ((count, name) for name, count in kinds.items() if name in paths), key=lambda item: (-item[0], item[1])
    )
    if not blamed and untracked is None:
        return None
    parts = [f"+{count} {name}" for count, name in blamed[:_SHOWN]]
    holder = paths[blamed[0][1]] if blamed else None
    size = size if blamed else 0
    if untracked is not None:
        where, values, more = untracked
        size += more
        parts.append(f"+{values} untracked value{'' if values == 1 else 's'}")
        holder = holder or f"{where}[...]"
    top_count, top_type = blamed[0] if blamed else (untracked[1] if untracked else 0, "untracked values")
    return Leak(
        type=top_type,
        count=top_count,
        shallow_bytes=0,
        retained_bytes=size,
        retained_by=(),
        holder=holder,
        kind="growth",
        details=tuple(parts),
        runs=runs,
    )


def with_growth(item: pytest.Item, verdict: TestLeaks | None, leak: Leak) -> TestLeaks:
    """The real run's verdict with the growth added: growth fails the test, the real run's leaks stay as they were."""
    from pytest_leakhunt import hints

    leak = hints.named(leak)
    if verdict is None:
        return TestLeaks(nodeid=item.nodeid, leaks=(leak,), outcome="failed")
    return dataclasses.replace(verdict, nodeid=item.nodeid, leaks=(*verdict.leaks, leak), outcome="failed")


class RepeatHooks:
    """The extra runs of --leaks-repeat, registered only when some test to run asks for them."""

    def __init__(self, hunt: Session) -> None:
        self.hunt = hunt
        self._watch = ContainerWatch(str(hunt.config.rootpath))
        self.progress = Progress(hunt.config)
        self._holders = holders.ProgramHolders()
        self._runs = 0

    def after_real_run(
        self, item: pytest.Item, nextitem: pytest.Item | None, runs: int, verdict: TestLeaks | None
    ) -> TestLeaks | None:
        """Run a passed test *runs* more times and add what grew on every run to its verdict."""
        progress = self.progress
        if not progress.total:
            progress.total = _repeated(item.session)
        progress.show()
        try:
            leak = self.measure(item, nextitem, runs, holders.explained(verdict))
        finally:
            progress.clear()
            progress.done += 1
            self._runs += runs
        return verdict if leak is None else with_growth(item, verdict, leak)

    def measure(
        self, item: pytest.Item, nextitem: pytest.Item | None, runs: int, explained: dict[str, str]
    ) -> Leak | None:
        """The extra runs, reports dropped, inside one frozen-heap window; the growth they show, or None.

        A growing kind the real run's check already traced to program state
        (*explained*: type -> path) takes that path, and the kinds growing
        beside it are taken to be what it keeps; only when none is explained
        are they searched for, which costs walks of the heap.
        """
        from _pytest.runner import runtestprotocol  # the function pytest-rerunfailures reruns tests with

        hunt = self.hunt
        codes = hunt.harness.hook_codes()
        state = HarnessState(item)
        before = self._watch.lengths()
        skip: set[int] = set()  # made before the window opens: ids of our own young objects go in it
        threads = {thread.ident for thread in threading.enumerate()}
        tallies: list[Tally] = []
        window = HeapWindow()
        hunt.repeating = True
        window.open()
        try:
            for _ in range(runs):
                runtestprotocol(item, nextitem=nextitem, log=False)
                state.restore(item)
                settle_threads(threads)
                tally = Tally(count_alive(codes, skip), self._watch.lengths())
                skip.update((id(tally), id(tally.counts), id(tally.lengths)))
                tallies.append(tally)
            kinds, containers = growing(tallies)
            found, size = samples(kinds, codes, skip) if kinds else ([], 0)
            paths = {kind: path for kind, path in explained.items() if kind in kinds}
            if paths:
                found.clear()
            window.thaw()  # the chain search must see the old heap
            if found:
                paths.update(self._holders.paths(found, _registries(hunt), _user_fixtures(item)))
            untracked = untracked_added(self._watch, containers, before, runs)
        finally:
            window.close()
            hunt.repeating = False
            tallies.clear()
        return growth_leak(kinds, paths, untracked, runs, size // runs)

    def pytest_unconfigure(self) -> None:
        self._holders.clear()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.progress.done:
            seconds = time.monotonic() - self.progress.start
            terminalreporter.write_line(
                f"leakhunt repeat: {self._runs} extra runs of {self.progress.done} tests, "
                f"{seconds:.1f}s since the first"
            )


def _repeated(session: pytest.Session) -> int:
    """How many of the session's tests re-run: the total of the progress status."""
    from pytest_leakhunt.stash import POLICY_KEY

    policies = (item.stash.get(POLICY_KEY, None) for item in session.items)
    return sum(1 for policy in policies if policy is not None and policy.check and policy.repeat)
