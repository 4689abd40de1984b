"""The registered plugin object: owns the runtest wrappers, reports and summary.

Only this module talks to pytest's runtest protocol. The check window opens
before the first setup hook (outermost wrapper) and closes after the last
teardown hook, when pytest asks for the teardown report, so function-scoped
fixtures count as the test's.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_leakhunt import census, classify, growth, hints, resources, retainers, roots, untracked, window
from pytest_leakhunt.config import Settings, TestPolicy, policy_for
from pytest_leakhunt.explain import Check, Explainer, untracked_growth
from pytest_leakhunt.harness import Harness
from pytest_leakhunt.model import Leak, RunTotals, TestLeaks
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
_RUNTEST_PLUGIN = "leakhunt-runtest"
#: At most this many clean shapes are remembered: a suite has a handful (a passing test, one with output...).
_MAX_CLEAN_SHAPES = 256
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
        #: the test whose check window is open (one at a time per process), and its policy
        self._window: tuple[pytest.Item, TestPolicy] | None = None
        #: whether the open window closes once the whole protocol has returned (pytest's stack unwound)
        self._unwound = False
        #: leaks of the running check whose growth a second run decides (per test; dropped after it)
        self._probe = growth.Probe()
        #: the same for the leaks of a second run, when a third must tell whether they stay
        self._probe_next = growth.Probe()
        #: inside that second run: its leaks are compared, not judged
        self._probing = False
        self._settled = growth.Settled()
        #: what a clean test's survivors look like (names and counts of types, references among them): pytest
        #: leaves the same few objects after every test, and a test that leaks leaves more
        self._clean_shapes: set[tuple[Any, ...]] = set()
        #: per check: by fingerprint, the leak a second run showed growing
        self._grown: dict[str, Leak | None] = {}
        self._earlier = growth.EarlierLeaks()
        #: per check: ids of the objects the test's leak_tracker watches and that are alive -> tracked name,
        #: and those the census already reported
        self._tracked: dict[int, str] = {}
        #: the project's module-level containers, and their lengths when the open window opened
        self._watch = untracked.ContainerWatch(str(config.rootpath))
        self._lengths: list[int] = []
        self._tracked_reported: set[int] = set()
        #: what pytest and its plugins hold, and the hook codes
        self.harness = Harness(config, self)
        self._explainer = Explainer(config, settings, self.harness, self._earlier)
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
            from pytest_leakhunt.repeat import RepeatHooks  # imported on demand: most runs never repeat

            manager.register(RepeatHooks(self), _REPEAT_PLUGIN)

    def pytest_plugin_registered(self) -> None:
        self.harness.plugin_generation += 1

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
        self.harness.known.refresh()  # the first call probes C-level caches, which needs the heap unfrozen
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
        self.harness.checks += 1
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
            for fingerprint, _, _, root_ref, leaked_ref, _ in probe.entries:
                root, leaked = root_ref(), leaked_ref()
                if root is not None and (self._settled.verdicts.get(fingerprint) == growth.GROWS or self.settings.strict):
                    self._earlier.remember([root, leaked, *gc.get_referents(root)], item.nodeid)
            root = leaked = None
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
        """Run the test's protocol again, reports dropped, and compare what it leaves with *probe*.

        Growth the second run shows only as a keyed entry (a new dict key, an
        attribute) may be a slot that every later run replaces (a registry
        keeping the first class under one name and the last under another): a
        third run tells, the same way, whether the second run's object stays.
        """
        try:
            leaks = self._run_again(item, nextitem)
            verdicts = probe.verdicts(leaks, retainers.holds)
            entries = probe.by_fingerprint()
            shown = {fp: growth.shown_again(entries[fp], leaks) for fp, verdict in verdicts.items() if verdict == growth.GROWS}
            doubtful = [fp for fp, leak in shown.items() if not entries[fp][5] and leak is not None and leak.retention != growth.GROWS]
            second, self._probe_next = self._probe_next, growth.Probe()
            if doubtful and second.entries:
                later = second.verdicts(self._run_again(item, nextitem), retainers.holds)
                for fp in doubtful:
                    if not any(later.get(e[0]) == growth.GROWS and growth.same_holder(entries[fp][1], e[1]) for e in second.entries):
                        verdicts[fp] = growth.ONCE
            # what the second run added to a growing leak is that leak too, for blaming later tests
            grows = [entries[fp][1] for fp, verdict in verdicts.items() if verdict == growth.GROWS]
            for entry in second.entries:
                if any(growth.same_holder(name, entry[1]) for name in grows):
                    self._earlier.remember([entry[3](), entry[4]()], item.nodeid)
            entry = None  # type: ignore[assignment]
            second.close()
        finally:
            self._probe_next.close()
        self._settled.verdicts.update(verdicts)
        # what grows is best shown by what the second run added: the first run also made the holder
        self._grown = {fp: leak for fp, leak in shown.items() if verdicts.get(fp) == growth.GROWS}

    def _run_again(self, item: pytest.Item, nextitem: pytest.Item | None) -> list[Leak]:
        """One more run of the test's protocol, its reports dropped: the leaks it left, unjudged."""
        policy = item.stash.get(POLICY_KEY, None) or policy_for(item, self.settings)
        self._probing = True
        try:
            self.run_protocol(item, nextitem, policy)
            again = self.close_window(item)
        finally:
            self._probing = False
        return list(again.leaks) if again is not None else []

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
        self._explainer.clear()
        self.harness.clear()

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
                leaks.extend(self._explainer.tracked(tracker, self._tracked_reported, self._heap))
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
        held_at = len(self.harness.held_at)
        probe = self._probe_next if self._probing else self._probe  # a second run's leaks: for a third to confirm
        check = Check(item, policy.ignore_types, probe, self._probing, self._tracked, self._tracked_reported)
        try:
            running, owned = resources.running(survivors.objs, policy.resources, survivors.types) if policy.resources else ([], set())
            found, more = self._census(check, survivors, owned)
            if self._lengths:
                found.extend(untracked_growth(check, found, survivors, self._watch, self._lengths))
            if not running:
                return found, more
            return [*resources.without_thread_waits(found, running), *running], more
        finally:
            self.harness.forget_new(survivors, held_at)
            survivors.close()


    def _census(self, check: Check, survivors: census.Survivors, owned: set[int]) -> tuple[list[Leak], int]:
        """Object leaks among the survivors: the fast path, then roots, then explanations.

        Roots that retain a resource already reported (*owned*: a running
        thread, a pending task) are that resource's state, not a second leak.
        """
        item, harness = check.item, self.harness
        harness.begin_check(item, survivors, self._unwound)
        codes = harness.hook_codes()
        rest, remembered = classify.unaccounted(survivors, codes, check.ignore_types, harness.held_at)
        survivors.forget_types()  # the set of their types is ours: a reference to a test's class no holder explains
        builtin = self._unwound
        if not rest and not builtin:
            return [], 0  # no subject survived, and at a teardown report builtin roots are not judged
        if harness.fresh_fixtures:
            rest, remembered = list(rest) or [], False  # the quick verdict trusts fixture holders: not these
        context = self._context(check, codes, builtin)
        quick = self._quick(survivors, context, item, rest, remembered) if rest else []
        del rest
        if quick == [] and not builtin:
            return [], 0
        context.subjects_settled = quick == []
        shape = census.shape(survivors, harness.key()) if context.subjects_settled and not harness.fresh_fixtures else None
        if shape is not None and shape in self._clean_shapes:
            return [], 0  # the same objects, by type and references, as a test found clean before
        # a known leak again, and nothing else: its chain is in context.chains already
        candidates = quick if quick else roots.find_leaked_roots(survivors, context, harness.known)
        if owned:
            candidates = _not_owned(survivors, candidates, owned)
        candidates = self._explainer.c_held(survivors, candidates, codes)
        if not candidates:
            if shape is not None and len(self._clean_shapes) < _MAX_CLEAN_SHAPES:
                self._clean_shapes.add(shape)
            return [], 0
        if any(i not in context.chains for i in candidates):
            self._heap.thaw()  # chain searches need the heap unfrozen: get_referrers skips frozen objects
        try:
            return self._explainer.explain(check, survivors, candidates, context, running=bool(owned))
        finally:
            context.chains.clear()

    def _context(self, check: Check, codes: frozenset[int], builtin: bool) -> classify.Context:
        """What the session knows about the running test, for explaining its roots."""
        item, harness = check.item, self.harness
        return classify.Context(
            holders=lambda: list(harness.holders(item)),
            shared=harness.shared_holders,
            known_leak=self._explainer.known_leak,
            harness_codes=codes,
            ignore_types=check.ignore_types,
            item=item,
            held_at=harness.held_at,
            builtin_roots=builtin,
            window=self._heap,
        )

    def _quick(
        self, survivors: census.Survivors, context: classify.Context, item: pytest.Item, rest: list[Any], remembered: bool
    ) -> list[int] | None:
        """``classify.quick_verdict`` with the hot shared holders and the item's fixture values as slots."""
        slots = self.harness.quick_slots(item)
        try:
            return classify.quick_verdict(survivors, context, slots, rest, remembered)
        finally:
            slots.clear()

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


def _not_owned(survivors: census.Survivors, candidates: list[int], owned: set[int]) -> list[int]:
    """Candidates that keep nothing of a reported thread or task (*owned*, by id).

    Such a resource, what it keeps (its target, the event it waits on) and
    what reaches into that (a bound method on its running stack) are its
    state, already reported with it.
    """
    index = survivors.index
    theirs = survivors.closure([index[key] for key in owned if index.get(key, -1) >= 0])
    return [i for i in candidates if not (survivors.closure([i]) & theirs)]


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
        repeats = hunt.config.pluginmanager.get_plugin(_REPEAT_PLUGIN) if passed and policy.repeat else None
        if repeats is not None:  # --leaks-repeat: the extra runs come after the real run and its check
            verdict = repeats.after_real_run(item, nextitem, policy.repeat, verdict)
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


