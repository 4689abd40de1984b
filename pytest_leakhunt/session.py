"""The registered plugin object: owns the runtest wrappers, reports and summary.

Only this module talks to pytest's runtest protocol. The check window opens
before the first setup hook (outermost wrapper) and closes after the last
teardown hook, when pytest asks for the teardown report, so function-scoped
fixtures count as the test's.
"""

from __future__ import annotations

import collections
import dataclasses
import gc
import os
import re
import sys
import types
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_leakhunt import census, growth, hints, resources, retainers, untracked, window
from pytest_leakhunt.config import Settings, TestPolicy, policy_for
from pytest_leakhunt.model import UNTRACKED, Leak, RunTotals, TestLeaks
from pytest_leakhunt.report import describe, render_summary, render_test, write_json
from pytest_leakhunt.window import HeapWindow

if TYPE_CHECKING:
    from pytest_leakhunt.baseline import Baseline
    from pytest_leakhunt.tracker import LeakTracker

POLICY_KEY = pytest.StashKey[TestPolicy]()
FAILED_KEY = pytest.StashKey[bool]()
TRACKER_KEY = pytest.StashKey["LeakTracker"]()
FDS_KEY = pytest.StashKey["frozenset[int] | None"]()
GROWTH_KEY = pytest.StashKey["Leak | None"]()

#: The verdict of every clean test: one shared object, since a clean verdict carries nothing to report.
CLEAN = TestLeaks(nodeid="", outcome="passed")

_KIND_ORDER = {"object": 0, "tracked": 1, "growth": 2}
#: At most this many retainer chains per test; each costs a walk of the heap.
MAX_CHAINS = 8
_RUNTEST_PLUGIN = "leakhunt-runtest"
_REPEAT_PLUGIN = "leakhunt-repeat"
_STATUS_PLUGIN = "leakhunt-status"


class LeakHunt:
    """Per-session state and hooks of pytest-leakhunt."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.totals = RunTotals()
        #: inside the extra runs of --leaks-repeat: no check windows, no memory notes
        self.repeating = False
        #: the known leaks of --leaks-baseline, read (and refused if malformed) now, at configuration
        self.baseline: Baseline | None = None
        if settings.baseline_path:
            from pytest_leakhunt.baseline import Baseline  # only for --leaks-baseline
            from pytest_leakhunt.config import source

            self.baseline = Baseline.load(settings.baseline_path, source(config, "--leaks-baseline"), settings.baseline_update)
        self._checks = 0
        #: the test whose check window is open (one at a time per process), and its policy
        self._window: tuple[pytest.Item, TestPolicy] | None = None
        #: whether the open window closes once the whole protocol has returned (pytest's stack unwound)
        self._unwound = False
        #: leaks of the running check whose growth a second run decides (per test; dropped after it)
        self._probe = growth.Probe()
        #: inside that second run: its leaks are compared, not judged
        self._probing = False
        self._settled = growth.Settled()
        #: per check: by fingerprint, the leak a second run showed growing
        self._grown: dict[str, Leak | None] = {}
        self._earlier = growth.EarlierLeaks()
        #: per check: ids of the objects the test's leak_tracker watches and that are alive -> tracked name,
        #: and those the census already reported
        self._tracked: dict[int, str] = {}
        #: per check: fixture definitions of broader scope whose cached value this test's setup made
        self._fresh_fixtures: list[Any] = []
        #: the project's module-level containers, and their lengths when the open window opened
        self._watch = untracked.ContainerWatch(str(config.rootpath))
        self._lengths: list[int] = []
        self._tracked_reported: set[int] = set()
        self.known = census.KnownHolders()
        self._chains = retainers.ChainCache()
        self._globals = retainers.ModuleGlobals()
        self._shared: list[Any] | None = None
        self._shared_key: tuple[int, int] = (-1, -1)
        self._shared_checked = -1000
        #: attributes of shared holders that kept a test's objects (census.Context.held_at), for one state of plugins
        self._held_at: list[tuple[dict[str, Any], str]] = []
        self._held_at_key: tuple[int, int] = (-1, -1)
        self._harness_codes: frozenset[int] = frozenset()
        self._harness_code_objects: list[types.CodeType] = []
        self._codes_generation = -1
        #: bumped by every plugin registration; cached harness state is rebuilt when it moves
        self._plugin_generation = 0
        #: the heap window of the open check; it traces only inside, unless the user already traces the whole run
        self._heap = HeapWindow(settings.trace_depth if settings.trace and not window.tracing() else 0)

    # -- configuration-time validation ------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Policies for the tests that will run: a suite can deselect tens of thousands (click's -m 'not stress')."""
        needed = self.settings.detect_leaks
        repeats = False
        parents: dict[int, pytest.Mark | None] = {}
        for item in session.items:
            policy = item.stash[POLICY_KEY] = policy_for(item, self.settings, parents)
            needed = needed or policy.check or "leak_tracker" in getattr(item, "fixturenames", ())
            repeats = repeats or bool(policy.check and policy.repeat)
        # The runtest hooks cost a few microseconds per test: only pay them when some test is checked.
        manager = self.config.pluginmanager
        if needed and not manager.has_plugin(_RUNTEST_PLUGIN):
            manager.register(RuntestHooks(self), _RUNTEST_PLUGIN)
        if repeats and not manager.has_plugin(_REPEAT_PLUGIN):
            manager.register(RepeatHooks(self), _REPEAT_PLUGIN)

    def pytest_plugin_registered(self) -> None:
        self._plugin_generation += 1

    def open_window(self, item: pytest.Item, policy: TestPolicy, unwound: bool = False) -> None:
        """Everything alive now is old; with --leaks-trace, allocations from here on are traced.

        Tracing only inside windows keeps collection, reporting and the time
        between tests at full speed: tracemalloc slows every allocation it sees.
        """
        self._window = (item, policy)
        self._unwound = unwound
        self._lengths = self._watch.lengths() if policy.check else []
        if policy.check and "fds" in policy.resources:
            item.stash[FDS_KEY] = resources.open_fds()
        self.known.refresh()  # the first call probes C-level caches, which needs the heap unfrozen
        self._heap.open()

    def watching(self, item: pytest.Item) -> bool:
        """Whether a check window is open for *item*."""
        return self._window is not None and self._window[0] is item

    def unwinding(self, item: pytest.Item) -> bool:
        """Whether *item*'s window closes after its whole protocol, not at its teardown report."""
        return self._unwound and self.watching(item)

    def run_protocol(self, item: pytest.Item, nextitem: pytest.Item | None, policy: TestPolicy) -> list[pytest.TestReport]:
        """pytest's runtest protocol inside a check window, reports not logged (pytest-rerunfailures' way)."""
        from _pytest.runner import runtestprotocol

        self.open_window(item, policy, unwound=True)
        try:
            return runtestprotocol(item, nextitem=nextitem, log=False)
        except BaseException:
            self.close_window(item)  # interrupted (KeyboardInterrupt, pytest.exit): hand the heap back
            raise

    def close_window(self, item: pytest.Item) -> TestLeaks | None:
        """The verdict of the window *item* opened, or None when it opened none."""
        window = self._window
        if window is None or window[0] is not item:
            return None
        self._window = None
        policy = window[1]
        self._checks += 1
        try:
            verdict = self._check(item, policy)
        except Exception as exc:  # reported on the test, never raised into pytest
            verdict = TestLeaks(nodeid=item.nodeid, outcome="failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            self._heap.close()
        return verdict

    def settle(
        self, item: pytest.Item, nextitem: pytest.Item | None, verdict: TestLeaks | None, rerun: bool
    ) -> TestLeaks | None:
        """Split a verdict's leaks into those that grow (they fail) and those retained once or earlier.

        Leaks whose holder leaves it open are decided by running the test
        once more (*rerun*: only where we run the protocol and the test
        passed), once per fingerprint; without a second run they count as
        growing. With ``--leaks-strict`` everything retained fails.
        """
        probe, self._probe = self._probe, growth.Probe()
        try:
            if verdict is None or verdict is CLEAN or not verdict.leaks:
                return verdict
            leaks = [self._settled.apply(leak) for leak in verdict.leaks]
            if self.settings.strict:
                leaks = [dataclasses.replace(leak, retention=growth.GROWS) for leak in leaks]
            elif (
                rerun
                and probe.entries
                and any(leak.retention == growth.UNSETTLED for leak in leaks)
                and not any(leak.retention == growth.GROWS for leak in leaks)  # it fails anyway: no second run
            ):
                self._second_run(item, nextitem, probe)
            leaks = [growth.settle(leak, self._settled.verdicts, self._grown) for leak in leaks]
        finally:
            probe.close()
            self._grown = {}
        failing = tuple(leak for leak in leaks if leak.retention == growth.GROWS)
        kept = tuple(leak for leak in leaks if leak.retention != growth.GROWS)
        if not failing and not kept and not verdict.error:
            return CLEAN
        outcome = "failed" if failing or verdict.error else "passed"
        return dataclasses.replace(verdict, leaks=failing, retained=kept, outcome=outcome)

    def _second_run(self, item: pytest.Item, nextitem: pytest.Item | None, probe: growth.Probe) -> None:
        """Run the test's protocol again, reports dropped, and compare what it leaves with *probe*."""
        policy = item.stash.get(POLICY_KEY, None) or policy_for(item, self.settings)
        self._probing = True
        try:
            self.run_protocol(item, nextitem, policy)
            again = self.close_window(item)
        finally:
            self._probing = False
        leaks = list(again.leaks) if again is not None else []
        verdicts = probe.verdicts(leaks, retainers.holds)
        self._settled.verdicts.update(verdicts)
        # what grows is best shown by what the second run added: the first run also made the holder
        self._grown = {fp: growth.shown_again(entry, leaks) for fp, entry in probe.by_fingerprint().items() if verdicts.get(fp) == growth.GROWS}
        for fingerprint, _, _, root, leaked, _ in probe.entries:
            if verdicts.get(fingerprint) == growth.GROWS:
                self._earlier.remember([root, leaked, *gc.get_referents(root)], item.nodeid)
        root = leaked = None

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not (self.totals.checked or self.totals.allowed):
            return
        leaking = self.totals.leaking
        if leaking:
            terminalreporter.write_sep("=", "LEAKS", red=True, bold=True)
            for result in leaking:
                terminalreporter.write_sep("_", result.nodeid, red=True)
                terminalreporter.write_line(render_test(result, traced=self.settings.trace))
        terminalreporter.write_sep("=", "leakhunt summary", red=bool(leaking))
        for line in [*render_summary(self.totals), *self._baseline_lines()]:
            terminalreporter.write_line(line)

    def _baseline_lines(self) -> list[str]:
        """What the baseline let through, what in it no longer occurs, and what was written."""
        return self.baseline.lines(self.totals.baselined) if self.baseline is not None else []

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """The session's files, written whole and only if the run completed; a failure is a line of the summary."""
        from pytest_leakhunt import artifacts

        files = artifacts.current(self.config)  # registered at configuration when some file is asked for
        if files is None or hasattr(self.config, "workerinput"):
            return  # nothing to write, or a worker's findings go to the controller
        settings, totals, version = self.settings, self.totals, pytest.__version__
        if settings.report_path:
            files.finish(artifacts.REPORT, settings.report_path, lambda path: write_json(path, totals, version), exitstatus)
        if settings.html_path:
            from pytest_leakhunt import html  # only for --leaks-html

            files.finish(artifacts.HTML, settings.html_path, lambda path: html.write(path, totals, version), exitstatus)
        baseline = self.baseline
        if baseline is not None and baseline.updating:
            files.finish(artifacts.BASELINE, baseline.path, lambda _: baseline.update(totals.baselined), exitstatus)

    def pytest_unconfigure(self) -> None:
        self._earlier.clear()
        self._chains.clear()
        self._globals.clear()
        self._shared = None
        self._held_at.clear()

    # -- the check itself -----------------------------------------------------

    def _check(self, item: pytest.Item, policy: TestPolicy) -> TestLeaks:
        leaks: list[Leak] = []
        more = 0
        tracker = self._tracker_of(item)
        try:
            if policy.check:
                found, more = self._detect(item, policy)
                leaks.extend(found)
                if "fds" in policy.resources:
                    leaks.extend(resources.new_fds(item.stash.get(FDS_KEY, None)))
                # `in` first: a stash miss raises and catches a KeyError, and most tests have neither
                grew = item.stash[GROWTH_KEY] if policy.repeat and GROWTH_KEY in item.stash else None
                if grew is not None:
                    leaks.append(grew)
            if tracker is not None:
                leaks.extend(self._check_tracker(tracker))
        finally:
            self._tracked.clear()
            self._tracked_reported.clear()
            if tracker is not None:
                tracker.close()
        if not leaks:
            return CLEAN
        # objects held by program state first, then what grows per run, then resources left behind
        leaks.sort(key=lambda leak: (_KIND_ORDER.get(leak.kind, 3), -leak.retained_bytes, leak.type))
        leaks = [dataclasses.replace(leak, hint=hints.hint_for(leak), fingerprint=hints.fingerprint(leak)) for leak in leaks]
        return TestLeaks(nodeid=item.nodeid, leaks=tuple(leaks), outcome="failed", more_groups=more)

    def _detect(self, item: pytest.Item, policy: TestPolicy) -> tuple[list[Leak], int]:
        survivors = census.Survivors()
        held_at = len(self._held_at)
        try:
            running, owned = resources.running(survivors.objs, policy.resources, survivors.types) if policy.resources else ([], set())
            found, more = self._census(item, policy, survivors, owned)
            if self._lengths:
                found.extend(self._untracked_growth(found, survivors))
            if not running:
                return found, more
            return [*resources.without_thread_waits(found, running), *running], more
        finally:
            self._forget_new(survivors, held_at)
            survivors.close()

    def _forget_new(self, survivors: census.Survivors, held_at: int) -> None:
        """No cache of the session keeps an object the checked test made (a Mock's class, a new plugin list).

        The holder caches can only have taken such objects in when this check
        rebuilt them (shared holders) or added to them (*held_at*: their length before).
        """
        if any(issubclass(cls, type) for cls in survivors.types):
            resources.forget_types(census.forget_new_types(survivors.objs))
        rebuilt = self._shared is not None and self._shared_checked == self._checks
        if not rebuilt and len(self._held_at) == held_at:
            return
        index = survivors.index
        if rebuilt and self._shared and not index.keys().isdisjoint(map(id, self._shared)):
            self._shared = [h for h in self._shared if id(h) not in index]  # a list, not None: None rebuilds
        self._held_at[:] = [(attrs, name) for attrs, name in self._held_at if id(attrs) not in index]

    def _census(
        self, item: pytest.Item, policy: TestPolicy, survivors: census.Survivors, owned: set[int]
    ) -> tuple[list[Leak], int]:
        """Object leaks among the survivors: the fast path, then roots, then explanations.

        Roots that retain a resource already reported (*owned*: a running
        thread, a pending task) are that resource's state, not a second leak.
        """
        key = self._harness_key()
        if key != self._held_at_key:
            self._held_at.clear()  # plugins or registries changed since these were remembered
            self._held_at_key = key
        codes = self._hook_codes()
        self._fresh_fixtures = _fresh_fixtures(item, survivors) if self._unwound else []
        rest, remembered = census.unaccounted(survivors, codes, policy.ignore_types, self._held_at)
        builtin = self._unwound
        if not rest and not builtin:
            return [], 0  # no subject survived, and at a teardown report builtin roots are not judged
        if self._fresh_fixtures:
            rest, remembered = list(rest) or [], False  # the quick verdict trusts fixture holders: not these
        context = census.Context(
            holders=lambda: list(self._holders(item)),
            shared=self._shared_holders,
            known_leak=lambda obj: self._chains.lookup(obj, census.qualified_type(obj)),
            harness_codes=codes,
            ignore_types=policy.ignore_types,
            item=item,
            held_at=self._held_at,
            builtin_roots=builtin,
            window=self._heap,
        )
        quick = self._quick(survivors, context, item, rest, remembered) if rest else []
        del rest
        if quick == [] and not builtin:
            return [], 0
        context.subjects_settled = quick == []
        # a known leak again, and nothing else: its chain is in context.chains already
        candidates = quick if quick else census.find_leaked_roots(survivors, context, self.known)
        if owned:
            # A reported thread or task, what it keeps (its target, the event it waits on) and what reaches
            # into that (a bound method on its running stack) are its state, already reported with it.
            index = survivors.index
            theirs = survivors.closure([index[key] for key in owned if index.get(key, -1) >= 0])
            candidates = [i for i in candidates if not (survivors.closure([i]) & theirs)]
        if not candidates:
            return [], 0
        if any(i not in context.chains for i in candidates):
            self._heap.thaw()  # chain searches need the heap unfrozen: get_referrers skips frozen objects
        try:
            return self._explain(item, survivors, candidates, policy, context, running=bool(owned))
        finally:
            context.chains.clear()

    def _quick(
        self, survivors: census.Survivors, context: census.Context, item: pytest.Item, rest: list[Any], remembered: bool
    ) -> list[int] | None:
        """``census.quick_verdict`` with the hot shared holders and the item's fixture values as slots."""
        slots = census.quick_slots(self._shared) if self._shared else []
        funcargs = getattr(item, "funcargs", None)
        if type(funcargs) is dict:
            slots = [*slots, funcargs]  # the fixture values pytest keeps on the item until the next setup
        del funcargs
        try:
            return census.quick_verdict(survivors, context, slots, rest, remembered)
        finally:
            slots.clear()

    def _holders(self, item: pytest.Item) -> Iterator[Any]:
        """Objects whose references are pytest's own per-test or per-session state."""
        yield item
        yield item.stash._storage  # noqa: SLF001 - the stash's dict is what holds values
        yield item.config.stash._storage  # noqa: SLF001
        request = getattr(item, "_request", None)
        if request:
            yield request
        setupstate = getattr(item.session, "_setupstate", None)
        if setupstate is not None:
            yield setupstate
        stack = getattr(setupstate, "stack", None)
        if isinstance(stack, dict):
            yield stack
            for entry in stack.values():
                yield entry
                if isinstance(entry, tuple) and entry:
                    yield entry[0]
        fresh = self._fresh_fixtures
        for defs in _fixturedefs(item):
            yield from (fixturedef for fixturedef in defs if fixturedef not in fresh)
        yield from census.own_caches()  # classes the test made are in them until the check ends
        yield from resources.own_caches()
        warnings_mod = __import__("warnings")
        log = getattr(getattr(warnings_mod, "_showwarnmsg_impl", None), "__self__", None)
        if isinstance(log, list):
            yield log

    def _harness_key(self) -> tuple[int, int]:
        """Moves when plugins are registered or a registry is learned: what was derived from harness state is stale."""
        return (self._plugin_generation, len(self.known.containers))

    def _shared_holders(self, fresh: bool) -> list[Any]:
        """Session-wide harness state, expanded once and reused until plugins or caches change."""
        key = self._harness_key()
        # a fresh look at most every 20 checks: a leaky suite would otherwise pay it on every test
        fresh = fresh and self._checks - self._shared_checked >= 20
        if fresh or self._shared is None or key != self._shared_key:
            self._shared_checked = self._checks
            roots: list[Any] = []
            for plugin in self.config.pluginmanager.get_plugins():
                if plugin is not self and not isinstance(plugin, types.ModuleType):
                    roots.extend(_harness_state(plugin, depth=2))
            roots.extend(_harness_state(self.config, depth=3))
            roots.extend(self.known.containers)
            self._shared = census.expand_holders(roots)
            self._shared_key = key
        return self._shared

    def _hook_codes(self) -> frozenset[int]:
        """Ids of the code objects of every hook implementation, and of the functions nested in pytest's plugin modules.

        A hook's generator and the runner's lambda (``call_and_report``) outlive
        every test; with their code here they are judged harness by a set lookup.
        """
        if self._plugin_generation != self._codes_generation:
            self._codes_generation = self._plugin_generation
            impls = [
                impl
                for caller in vars(self.config.pluginmanager.hook).values()
                if hasattr(caller, "get_hookimpls")
                for impl in caller.get_hookimpls()
            ]
            codes = {getattr(getattr(impl.function, "__func__", impl.function), "__code__", None) for impl in impls}
            codes.discard(None)
            for plugin in self.config.pluginmanager.get_plugins():
                if isinstance(plugin, types.ModuleType) and census.is_harness_module(plugin.__name__):
                    codes.update(_function_codes(plugin, own=False))  # the hooks among them are in already
            # pluggy runs an old-style hookwrapper inside a generator of its own, alive while the hook runs
            for name, module in list(sys.modules.items()):
                if name.startswith("pluggy.") and module is not None:
                    codes.update(_function_codes(module, own=True))
            # By identity: hashing a code object hashes its constants and names on every lookup. The objects
            # are kept so that their ids stay theirs.
            self._harness_code_objects = list(codes)  # type: ignore[arg-type]  # None was discarded above
            self._harness_codes = frozenset(map(id, self._harness_code_objects))
        return self._harness_codes

    def _explain(
        self,
        item: pytest.Item,
        survivors: census.Survivors,
        candidates: list[int],
        policy: TestPolicy,
        context: census.Context,
        running: bool = False,
    ) -> tuple[list[Leak], int]:
        """Group leaked roots by what they keep alive and by holder; one retainer chain per group.

        With a thread or task still *running*, values of builtin types that
        nothing gc-visible holds are on its stack: its state, reported with it.
        """
        objs = survivors.objs
        chains = context.chains
        candidates = _outermost(survivors, candidates, self._harness_codes)
        units: dict[int, list[int]] = {}  # principal -> the roots that keep it
        for i in candidates:
            units.setdefault(_principal(survivors, i, self._harness_codes), []).append(i)
        by_type: dict[str, list[int]] = {}
        for p in units:
            name = census.qualified_type(objs[p])
            if name not in policy.ignore_types:
                by_type.setdefault(name, []).append(p)
        # One chain search for every group's first anchor that no cached chain explains.
        anchor_of = {p: (p if p in units[p] else units[p][0]) for p in units}
        needed = [anchor_of[p] for p in units if anchor_of[p] not in chains]
        if needed:
            # a bounded cache holding an anchor ends its search: such a cache is learned, not reported
            found = self._find_chains(item, context, [objs[a] for a in needed], [objs, candidates, units, chains, needed], census.is_bounded_cache)
            cached = []
            adopted: list[Any] = []
            for a, chain in zip(needed, found):
                if len(chain) > 1 and census.is_bounded_cache(chain[-2]):
                    # a bounded cache on some instance (a per-object lru_cache): learn it, judge again
                    self.known.adopt(chain[-2])
                    adopted.append(chain[-2])
                    cached.append(a)
                elif len(chain) > 1:
                    chains[a] = chain
            del found, chain
            if cached:
                # the adopted caches may also explain anchors no search reached (a wide cache's other entries)
                again = [a for a in needed if a in cached or a not in chains]
                still = set(census.unexplained(survivors, again, context, self.known))
                for a in again:
                    if a not in still:
                        units.pop(next(p for p in units if anchor_of[p] == a), None)
                needed = [a for a in needed if a not in again or a in still]
                by_type = {t: [p for p in ps if p in units] for t, ps in by_type.items()}
                retry = [a for a in cached if a in still]
                if retry:  # kept by more than the cache: a search around it names the other holder
                    found = self._find_chains(item, context, [objs[a] for a in retry], [objs, candidates, units, chains, needed, retry, *adopted])
                    chains.update((a, chain) for a, chain in zip(retry, found) if len(chain) > 1)
                    del found
            adopted.clear()
            registries = self.known.ids()  # a chain through a registry must not explain the next object it holds
            for a in needed:
                new = survivors.index
                if a in chains and id(chains[a][-2]) not in registries and not any(id(x) in new for x in chains[a][:-1]):
                    self._chains.store(chains[a], census.qualified_type(objs[a]))
            # values of builtin types that only pytest's own state keeps are its bookkeeping; a broader-scope
            # fixture's value this test's setup made is not: the test may have added to it
            for a in needed:
                if a not in chains:
                    continue
                p = next(p for p in units if anchor_of[p] == a)
                if _pytest_keeps(chains[a], census.is_subject(objs[p], self._harness_codes)):
                    units.pop(p)
                    by_type = {t: [q for q in ps if q != p] for t, ps in by_type.items()}
            orphans = [a for a in needed if a not in chains]
            if orphans:
                # no module reaches them: perhaps only old garbage does, which a full collection frees
                kept = set(census.recheck_orphans(survivors, orphans, context, self.known))
                if running:
                    kept = {a for a in kept if census.is_subject(objs[a], self._harness_codes)}
                by_type = {t: [p for p in ps if anchor_of[p] not in orphans or anchor_of[p] in kept] for t, ps in by_type.items()}
        leaks: list[Leak] = []
        more = 0
        drawn: list[tuple[list[Any], set[int]]] = []  # for --leaks-snapshot-dir: each group's chain and closure
        for type_name, principals in by_type.items():
            pending = list(principals)
            while pending:
                if len(leaks) >= MAX_CHAINS:
                    more += 1
                    break
                first = pending[0]
                anchor = anchor_of[first]
                chain = chains.get(anchor) or [objs[anchor]]
                segments = retainers.describe_chain(chain, ignore=[objs])
                holder = chain[-2] if len(chain) >= 2 else None
                if _RUNTIME_CACHE in segments:
                    pending = pending[1:]  # the warnings module's per-module registry: a first-use cache
                    continue
                # the object the leak is named after: the group's principal, or what a name-bound dict keeps
                shown = _inside_slot_dict(survivors, first, segments)
                if shown is None:
                    shown, shown_type = first, type_name
                else:
                    shown_type = census.qualified_type(objs[shown])
                retention, earlier = self._retention(item, chain, segments, shown_type, objs[shown])
                picture = chain if self.settings.snapshot_dir else None
                del chain
                group = [first]
                if holder is not None and len(pending) > 1:
                    held = set(map(id, gc.get_referents(holder)))
                    group += [p for p in pending[1:] if any(id(objs[r]) in held for r in units[p])]
                del holder
                pending = [p for p in pending if p not in group]
                closure = survivors.closure([r for p in group for r in units[p]])
                if retention == growth.GROWS and not self._probing:
                    self._earlier.remember([objs[j] for j in closure], item.nodeid)
                if picture is not None:
                    drawn.append((picture, closure))
                del picture
                representative = objs[shown]
                tracked = self._tracked.get(id(representative))
                if tracked is not None:
                    self._tracked_reported.add(id(representative))
                leaks.append(
                    Leak(
                        type=shown_type,
                        count=len(group),
                        shallow_bytes=retainers.shallow_size(representative),
                        retained_bytes=retainers.retained_size(objs[j] for j in closure),
                        retained_by=segments,
                        allocated_at=retainers.allocation_site(representative, str(self.config.rootpath)),
                        root_type=census.qualified_type(objs[anchor]),
                        retention=growth.GROWS if tracked is not None else retention,
                        attributed_to=earlier,
                        kind="tracked" if tracked is not None else "object",
                        name=tracked,
                    )
                )
                del representative
        if drawn:
            self._write_snapshot(item.nodeid, drawn, objs)
            drawn.clear()
        return leaks, more

    def _retention(
        self, item: pytest.Item, chain: list[Any], segments: tuple[str, ...], type_name: str, leaked: Any
    ) -> tuple[str, str | None]:
        """Whether a leak grows, is more of an earlier test's growing leak, or needs a second run to tell."""
        earlier = self._earlier.leaked_by(chain)
        if earlier is not None and earlier != item.nodeid:
            return growth.EARLIER, earlier
        holder = chain[-2] if len(chain) >= 2 else None
        retention = growth.by_holder(holder) if holder is not None else growth.UNSETTLED
        if retention == growth.UNSETTLED and not self._probing:
            draft = Leak(type=type_name, count=1, shallow_bytes=0, retained_bytes=0, retained_by=segments)
            fresh = any(chain[0] is fixturedef for fixturedef in self._fresh_fixtures)
            self._probe.add(hints.fingerprint(draft), growth.holder_root(segments), holder, chain[-1], leaked, fresh)
        return retention, None

    def _find_chains(
        self,
        item: pytest.Item,
        context: census.Context,
        targets: list[Any],
        ignore: list[Any],
        stop_at: Callable[[Any], bool] | None = None,
    ) -> list[list[Any]]:
        """``retainers.find_chains`` with what the session knows about where this test's objects can be held."""
        # pytest state known to be alive: a chain ending there is not an orphan
        live = [*context.holders(), *self._fresh_fixtures, getattr(item, "callspec", None), item.session, item.config]
        # where a test most often keeps things: its module's globals and its parameters, searched first
        module = getattr(item, "module", None)
        near = [x for x in (module, getattr(item, "callspec", None)) if x is not None]
        try:
            return retainers.find_chains(
                targets,
                ignore=[*ignore, targets, live, near],
                module_globals=self._globals,
                live_harness=live,
                likely_modules=[getattr(module, "__name__", "")],
                near=near,
                stop_at=stop_at,
            )
        finally:
            live.clear()
            near.clear()
            targets.clear()

    def _write_snapshot(self, nodeid: str, drawn: list[tuple[list[Any], set[int]]], objs: list[Any]) -> None:
        """The leaked objects of this test, their references among themselves, and their chains from modules."""
        from pytest_leakhunt import artifacts, heapsnapshot  # only for --leaks-snapshot-dir

        snapshot = heapsnapshot.Snapshot()
        for chain, closure in drawn:
            heapsnapshot.add_chain(snapshot, chain)
            heapsnapshot.add_objects(snapshot, [objs[j] for j in closure])
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_") + ".heapsnapshot"
        path = os.path.join(str(self.settings.snapshot_dir), name)
        # a snapshot that cannot be written is one warning at the end, never this test's verdict
        artifacts.register(self.config).write(artifacts.SNAPSHOT, path, snapshot.write, replace_at_end=True)

    def repeat_runs(self, item: pytest.Item, nextitem: pytest.Item | None, runs: int) -> Leak | None:
        """One warm-up and *runs* measured runs of the whole protocol, reports discarded."""
        from _pytest.runner import (
            runtestprotocol,  # the function pytest-rerunfailures reruns tests with
        )

        from pytest_leakhunt import repeat  # imported on demand: most runs never repeat

        codes = self._hook_codes()
        self.repeating = True
        try:
            measured = [
                repeat.measure(lambda: runtestprotocol(item, nextitem=nextitem, log=False), codes, str(self.config.rootpath))
                for _ in range(runs + 1)
            ]
        finally:
            self.repeating = False
        return repeat.growth(measured[1:])

    def _untracked_growth(self, found: list[Leak], survivors: census.Survivors) -> list[Leak]:
        """The project's module-level containers that got longer with values the census cannot see.

        A container a reported leak already names is that leak. A list, set
        or deque that got longer grows; a dict with more keys is decided by a
        second run, like any keyed entry.
        """
        named = [growth.holder_root(leak.retained_by) for leak in found]
        leaks = []
        for grown in self._watch.grown(self._lengths, lambda: survivors.index):
            path = f"{grown.module}.{grown.name}"
            if any(growth.same_holder(path, other) for other in named):
                continue
            retention = growth.UNSETTLED if grown.keyed and not self._probing else growth.GROWS
            leak = Leak(
                type=UNTRACKED,
                count=grown.added,
                shallow_bytes=0,
                retained_bytes=0,
                retained_by=(grown.module, grown.name),
                retention=retention,
            )
            if retention == growth.UNSETTLED:
                self._probe.add(hints.fingerprint(leak), path, None, None, None, True)
            leaks.append(leak)
        return leaks

    def _tracker_of(self, item: pytest.Item) -> LeakTracker | None:
        """The test's ``leak_tracker``, with what it watches and is still alive noted in ``_tracked``.

        A tracker whose objects are all gone is closed before the census, so
        its own bookkeeping (finalizers, records) is not taken for the test's.
        A watched object the census finds too is reported once, in the census's
        group, under its tracked name.
        """
        if TRACKER_KEY not in item.stash or self._probing:
            return None
        tracker = item.stash[TRACKER_KEY]
        del item.stash[TRACKER_KEY]
        self._heap.collect()
        alive = tracker.alive()
        if not alive:
            tracker.close()
            return None
        for watched in alive:
            obj = tracker.peek(watched)
            if obj is not None:
                self._tracked[id(obj)] = watched.name
            del obj
        return tracker

    def _check_tracker(self, tracker: LeakTracker) -> list[Leak]:
        reported = self._tracked_reported
        self._heap.collect()
        if tracker.alive():
            self._heap.collect_all()  # a frozen cycle that holds a watched object is only freed unfrozen
        leaks = []
        for watched in tracker.alive():
            obj = tracker.peek(watched)
            if obj is None or id(obj) in reported:
                continue
            chain = retainers.find_chain(obj, ignore=[tracker], module_globals=self._globals)
            segments = retainers.describe_chain(chain)
            del chain
            leaks.append(
                Leak(
                    type=watched.type,
                    count=1,
                    shallow_bytes=retainers.shallow_size(obj),
                    retained_bytes=retainers.retained_size([obj]),
                    retained_by=segments,
                    allocated_at=retainers.allocation_site(obj, str(self.config.rootpath)),
                    kind="tracked",
                    name=watched.name,
                )
            )
            del obj
        return leaks


class StatusHooks:
    """The "LEAKED" status of a test, registered by the first leak a process reports or receives.

    pytest asks every plugin for the status of each of a test's three reports;
    a suite without leaks need not pay for that.
    """

    @staticmethod
    def pytest_report_teststatus(report: pytest.TestReport) -> tuple[str, str, tuple[str, dict[str, bool]]] | None:
        # outcome "rerun" (pytest-rerunfailures) keeps its own status: the last run decides
        if report.outcome != "failed" or report.when != "teardown":
            return None
        return ("leaked", "L", ("LEAKED", {"red": True})) if failed_by_leak(report) else None


def _fixturedefs(item: pytest.Item) -> Iterator[Any]:
    """The fixture definitions the item uses, per name (the active one last)."""
    fixtureinfo = getattr(item, "_fixtureinfo", None)
    yield from getattr(fixtureinfo, "name2fixturedefs", {}).values()


def _pytest_keeps(chain: list[Any], subject: bool) -> bool:
    """Whether a chain is pytest's bookkeeping: builtin values under pytest state, or a fixture's own finalizers.

    A subject pytest keeps is a leak (hung on a parameter); a fixture of
    broader scope counts through its value only.
    """
    top = chain[0]
    if isinstance(top, types.ModuleType):
        return False
    if _user_fixture(top):  # through its value: the first link, or the second after its attribute dict
        value = getattr(top, "cached_result", None)
        return not any(link is value for link in chain[1:3])
    return not subject


def _user_fixture(obj: Any) -> bool:
    """A fixture definition of broader scope that the suite wrote: its value is program state between tests."""
    if type(obj).__name__ != "FixtureDef" or getattr(obj, "scope", "function") == "function":
        return False
    code = getattr(getattr(obj, "func", None), "__code__", None)
    return code is not None and retainers.is_user_file(code.co_filename)  # not pytest's or a plugin's


def _fresh_fixtures(item: pytest.Item, survivors: census.Survivors) -> list[Any]:
    """Fixtures of broader scope whose value this test's setup made: what the test adds to it is its own.

    Their value is still held after the test (for the tests that follow), so
    it is judged like program state rather than as pytest's.
    """
    fresh = []
    index = None
    for defs in _fixturedefs(item):
        fixturedef = defs[-1] if defs else None
        cached = getattr(fixturedef, "cached_result", None)
        if cached is None or not _user_fixture(fixturedef):
            continue
        index = survivors.index if index is None else index
        if id(cached) in index:
            fresh.append(fixturedef)
    return fresh


def _rerun_owns(item: pytest.Item, count: Callable[[pytest.Item], int | None] | None) -> bool:
    """Whether pytest-rerunfailures (its *count* of reruns, when installed) runs *item*'s protocol."""
    return bool(count is not None and count(item))


def failed_by_leak(report: pytest.TestReport) -> bool:
    """Whether the check failed this (teardown) report: the test's own failures leave it unset."""
    data = getattr(report, "leakhunt", None)
    return isinstance(data, dict) and bool(data.get("leaked"))


def show_leaked(config: pytest.Config) -> None:
    """Register StatusHooks once, before the first leaked report reaches the terminal."""
    if not config.pluginmanager.has_plugin(_STATUS_PLUGIN):
        config.pluginmanager.register(StatusHooks(), _STATUS_PLUGIN)


class RepeatHooks:
    """The extra runs of --leaks-repeat, registered only when some test to run asks for them."""

    def __init__(self, hunt: LeakHunt) -> None:
        self.hunt = hunt

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
        policy = item.stash.get(POLICY_KEY, None)
        if policy is not None and policy.check and policy.repeat:
            item.stash[GROWTH_KEY] = self.hunt.repeat_runs(item, nextitem, policy.repeat)
        return (yield)


class RuntestHooks:
    """The per-test hooks, registered only when some collected test is checked."""

    def __init__(self, hunt: LeakHunt) -> None:
        self.hunt = hunt
        self._last_rss: int | None = None
        #: RSS after each test is noted only for the reports that show it
        self._memory_notes = bool(hunt.settings.report_path or hunt.settings.html_path)
        #: a clean verdict is recorded here and its report left alone, unless that report carries data:
        #: memory notes, or an xdist worker's reports (the controller counts a crashed worker's checks from them)
        self._inline = not self._memory_notes and not hasattr(hunt.config, "workerinput")
        plugin = hunt.config.pluginmanager.get_plugin("rerunfailures")
        #: pytest-rerunfailures' count of reruns for a test, when it is installed
        self._reruns: Callable[[pytest.Item], int | None] | None = getattr(plugin, "get_reruns_count", None)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
        """Run a watched test's protocol ourselves, as pytest does, and check it once the protocol has returned.

        By then pytest's stack has unwound and ``item.funcargs`` is released:
        what is still alive is held by something that outlives the test. The
        reports are logged after the check, the teardown report carrying the
        verdict. A test that pytest-rerunfailures will rerun is left to it and
        checked at its teardown report instead (``pytest_runtest_makereport``).
        """
        hunt = self.hunt
        policy = self._policy(item)
        if policy is None or hunt.repeating or _rerun_owns(item, self._reruns):
            return None
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        reports = hunt.run_protocol(item, nextitem, policy)
        verdict = hunt.close_window(item)
        passed = not item.stash.get(FAILED_KEY, False) and all(report.passed for report in reports)
        verdict = hunt.settle(item, nextitem, verdict, rerun=passed)
        if reports and reports[-1].when == "teardown":
            self._finish(item, reports[-1], verdict)
        for report in reports:
            ihook.pytest_runtest_logreport(report=report)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, object, object]:
        """The window of a test whose protocol another plugin runs (pytest-rerunfailures)."""
        if not self.hunt.watching(item):
            policy = self._policy(item)
            if policy is not None and not self.hunt.repeating:
                self.hunt.open_window(item, policy)
        return (yield)

    def _policy(self, item: pytest.Item) -> TestPolicy | None:
        """The policy of a test that is checked or tracks objects; None for the others."""
        policy = item.stash.get(POLICY_KEY, None) or policy_for(item, self.hunt.settings)
        if policy.check or "leak_tracker" in getattr(item, "fixturenames", ()):
            return policy
        return None

    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport | None:
        """The check of a test whose protocol another plugin runs, when pytest asks for its teardown report.

        A plain implementation, not a wrapper: pytest asks three times per test,
        and a wrapper costs a generator each time. A clean test's report is left
        to pytest; a verdict to show goes on a report made here, the way
        pytest's own implementation makes it.
        """
        if call.when != "teardown" or self.hunt.repeating or self.hunt.unwinding(item):
            return None  # setup and call, an extra run, or a test whose protocol we run
        verdict = self.hunt.settle(item, None, self.hunt.close_window(item), rerun=False)
        if verdict is CLEAN and self._inline:
            self.hunt.totals.record(item.nodeid, None)
            return None
        if verdict is None and not self._memory_notes and not self._allowed(item):
            return None
        report = pytest.TestReport.from_item_and_call(item, call)
        self._annotate(item, report, verdict)
        self._note_memory(report)
        # The totals of the tests this process ran, taken here rather than in a logreport hook (one
        # call per phase); an xdist controller runs no test and gets its workers' at node shutdown.
        record(self.hunt.totals, report)
        return report

    def _finish(self, item: pytest.Item, report: pytest.TestReport, verdict: TestLeaks | None) -> None:
        """The verdict onto the teardown report pytest made, before it is logged."""
        if verdict is CLEAN and self._inline:
            self.hunt.totals.record(item.nodeid, None)
            return
        if verdict is None and not self._memory_notes and not self._allowed(item):
            return
        self._annotate(item, report, verdict)
        self._note_memory(report)
        record(self.hunt.totals, report)

    def pytest_exception_interact(self, node: pytest.Item | pytest.Collector, call: pytest.CallInfo[Any], report: pytest.TestReport | pytest.CollectReport) -> None:
        """A failed setup or call: a leak of this test then goes with its failure instead of failing it twice.

        pytest calls this only when a phase raised (not for xfail or skips), so
        passing tests pay nothing for it.
        """
        if report.failed and getattr(report, "when", None) in ("setup", "call"):
            node.stash[FAILED_KEY] = True

    def _allowed(self, item: pytest.Item) -> str | None:
        """The reason of an ``allow_leaks`` marker that switched the check off for *item*, under --detect-leaks."""
        policy = item.stash.get(POLICY_KEY, None)
        if policy is not None and policy.allowed_reason and self.hunt.settings.detect_leaks:
            return policy.allowed_reason
        return None

    def _annotate(self, item: pytest.Item, report: pytest.TestReport, verdict: TestLeaks | None) -> None:
        """The teardown report carries the verdict: a leak fails the test, and the data goes to the totals."""
        if verdict is None:
            allowed = self._allowed(item)
            if allowed:
                report.leakhunt = {"allowed": allowed}  # type: ignore[attr-defined]
            return
        data: dict[str, Any] = {"checked": True}
        if verdict.leaks and self.hunt.baseline is not None:
            known, new = self.hunt.baseline.split(verdict.leaks)
            if known:
                data["baselined"] = [[leak.fingerprint, describe(leak)] for leak in known]
                verdict = dataclasses.replace(verdict, leaks=tuple(new))
        if verdict.retained:
            data["result"] = verdict.to_json()
        if verdict.leaks or verdict.error:
            already_failed = item.stash.get(FAILED_KEY, False) or report.failed
            text = render_test(verdict, traced=self.hunt.settings.trace)
            if already_failed:
                report.sections.append(("leaks found at teardown", text))
            else:
                report.outcome = "failed"
                report.longrepr = text
                data["leaked"] = True
                show_leaked(self.hunt.config)
            data["result"] = verdict.to_json()
        report.leakhunt = data  # type: ignore[attr-defined]

    def _note_memory(self, report: pytest.TestReport) -> None:
        """With a JSON report, the process's RSS after each test: the session's memory curve."""
        if not self._memory_notes:
            return  # (the extra runs of --leaks-repeat never get here: the report hook returns first)
        rss = resources.rss_bytes()
        if rss is None:
            return
        growth = rss - self._last_rss if self._last_rss is not None else 0
        self._last_rss = rss
        data = getattr(report, "leakhunt", None)
        report.leakhunt = {**(data if isinstance(data, dict) else {}), "rss": rss, "growth": growth}  # type: ignore[attr-defined]


def record(totals: RunTotals, report: pytest.TestReport) -> None:
    """Add what a teardown report says about its test to *totals*."""
    if report.when != "teardown":
        return
    data = getattr(report, "leakhunt", None)
    if not isinstance(data, dict):
        return
    if "rss" in data:
        totals.memory[report.nodeid] = (int(data["rss"]), int(data["growth"]))
    for key, text in data.get("baselined", ()):
        totals.baselined.setdefault(key, (report.nodeid, text))
    if "allowed" in data:
        totals.allow(report.nodeid, data["allowed"])
    elif data.get("checked"):
        totals.record(report.nodeid, TestLeaks.from_json(data["result"]) if "result" in data else None)


def _harness_state(obj: Any, depth: int) -> Iterator[Any]:
    """A harness object and the plain objects it owns through attributes, *depth* levels down."""
    yield obj
    if depth <= 1:
        return
    for value in list(getattr(obj, "__dict__", {}).values()):
        if isinstance(value, (type, types.ModuleType, types.FunctionType, types.MethodType, *census.CONTAINERS)):
            continue
        if hasattr(value, "__dict__") and value is not obj:
            yield from _harness_state(value, depth - 1)


def _function_codes(module: types.ModuleType, own: bool) -> Iterator[types.CodeType]:
    """The code objects nested in the functions *module* defines, and with *own* those functions' own."""
    for value in list(vars(module).values()):
        if type(value) is types.FunctionType and value.__module__ == module.__name__:
            if own:
                yield value.__code__
            yield from _nested_codes(value.__code__)


def _nested_codes(code: types.CodeType) -> Iterator[types.CodeType]:
    """The code objects defined inside *code*: its lambdas, inner functions and comprehensions."""
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield const
            yield from _nested_codes(const)


def _outermost(survivors: census.Survivors, candidates: list[int], harness_codes: frozenset[int]) -> list[int]:
    """Drop roots that another leaked root already retains: one leak, one report.

    A thread never joined is a root, and so is the Event its running stack
    waits on; the Event belongs to the thread's leak.
    """
    if len(candidates) < 2:
        return list(candidates)  # the common case: a test leaks one thing
    closures = {i: survivors.closure([i]) for i in candidates}
    kept: list[int] = []
    covered: set[int] = set()
    objs = survivors.objs
    # Objects a leak is about first (a Thread before the bound method the C thread state holds).
    order = sorted(candidates, key=lambda i: (not census.is_subject(objs[i], harness_codes), -len(closures[i]), i))
    for i in order:
        if i not in covered and _principal(survivors, i, harness_codes) not in covered:
            kept.append(i)
            covered |= closures[i]
    return sorted(kept)


def _inside_slot_dict(survivors: census.Survivors, first: int, segments: tuple[str, ...]) -> int | None:
    """For a plain dict bound to a name (a global, an attribute) and holding new values: its newest such value.

    A dict of plain values is not tracked by the collector until a container
    goes in, so a long-lived ``CONFIG = {}`` looks new the first time a test
    stores a list in it. What the test left is the value, not the dict:
    naming it gives the leak its real type, and lets a second run tell a
    value replaced under the same key from one added.
    """
    root = survivors.objs[first]
    index = survivors.index
    if type(root) is tuple and segments and segments[-1] == "cached_result" and root:
        value = index.get(id(root[0]), -1)  # a fixture's (value, key, exception): the value
        return value if value >= 0 else None
    if type(root) is not dict or not segments or not _names_a_slot(segments):
        return None
    inside = [index[id(value)] for value in list(root.values()) if index.get(id(value), -1) >= 0]
    return inside[-1] if inside else None


#: A global that the runtime makes and fills on first use in any module (``warnings``' registry of shown warnings).
_RUNTIME_CACHE = "__warningregistry__"


def _names_a_slot(segments: tuple[str, ...]) -> bool:
    """Whether a chain ends at a name: a global, an attribute, a ``threading.local``'s attributes."""
    return segments[-1][:1].isidentifier() or "<_local>" in segments[-2:]


def _principal(survivors: census.Survivors, i: int, harness_codes: frozenset[int]) -> int:
    """The object a leak is named after: the root, or the first subject it retains."""
    objs, index = survivors.objs, survivors.index
    queue = collections.deque([i])
    seen = {i}
    while queue:
        j = queue.popleft()
        if census.is_subject(objs[j], harness_codes):
            return j
        for ref in gc.get_referents(objs[j]):
            k = index.get(id(ref))
            if k is not None and k >= 0 and k not in seen:
                seen.add(k)
                queue.append(k)
    return i
