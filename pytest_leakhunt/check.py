"""One test's check: the heap window around its protocol, then census → classify → explain, into a verdict.

``Checker`` owns the window (the only place the heap is frozen and thawed
is ``window.HeapWindow``, which it holds) and runs the stages in order:
the census of what survived (``census``), the roots that program state holds
(``classify``, ``roots``), their explanation as leaks (``explain``). Between
stages only indices into the survivors and plain ``Leak`` records travel;
the survivors are dropped before the verdict leaves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from pytest_leakhunt import again, census, classify, growth, hints, quick, resources, roots, untracked, window
from pytest_leakhunt.config import Settings, TestPolicy
from pytest_leakhunt.explain import Check, Explainer
from pytest_leakhunt.harness import Harness
from pytest_leakhunt.model import CLEAN, Leak, TestLeaks
from pytest_leakhunt.stash import FDS_KEY, TRACKER_KEY
from pytest_leakhunt.watched import tracked_leaks
from pytest_leakhunt.window import HeapWindow

if TYPE_CHECKING:
    from pytest_leakhunt.tracker import LeakTracker

_KIND_ORDER = {"object": 0, "tracked": 1}
#: At most this many clean shapes are remembered: a suite has a handful (a passing test, one with output...).
_MAX_CLEAN_SHAPES = 256


class Checker:
    """The check windows of one process, one open at a time, and what the stages keep between checks."""

    def __init__(
        self,
        config: pytest.Config,
        settings: Settings,
        harness: Harness,
        earlier: growth.EarlierLeaks,
        settled: growth.Settled,
    ) -> None:
        self.harness = harness
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
        #: what a clean test's survivors look like (names and counts of types, references among them): pytest
        #: leaves the same few objects after every test, and a test that leaks leaves more
        self._clean_shapes: set[tuple[Any, ...]] = set()
        #: per check: ids of the objects the test's leak_tracker watches and that are alive -> tracked name,
        #: and those the census already reported
        self._tracked: dict[int, str] = {}
        self._tracked_reported: set[int] = set()
        #: the project's module-level containers, and their lengths when the open window opened
        self._watch = untracked.ContainerWatch(str(config.rootpath))
        self._lengths: list[int] = []
        self._earlier = earlier
        self._explainer = Explainer(config, settings, harness, earlier)
        #: the leaks checks explained through cached chains, by the shape of the survivors: the same leaks again
        self._repeats = again.Repeats(earlier, settled.retentions.__contains__, self._explainer.held_by_c.__contains__)
        #: whether a leak may be taken from an earlier check: not when each carries its own picture or trace
        self._may_repeat = not settings.snapshot_dir and not settings.trace
        #: the heap window of the open check; it traces only inside, unless the user already traces the whole run
        self._heap = HeapWindow(settings.trace_depth if settings.trace and not window.tracing() else 0)

    def clear(self) -> None:
        self._explainer.clear()
        self._repeats.clear()

    def take_probe(self) -> growth.Probe:
        """The leaks the last check left for a second run to decide; the next check starts a new probe."""
        probe, self._probe = self._probe, growth.Probe()
        return probe

    def take_next_probe(self) -> growth.Probe:
        """The same for the leaks of the last second run, for a third run to confirm."""
        probe, self._probe_next = self._probe_next, growth.Probe()
        return probe

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

    def run_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None, policy: TestPolicy
    ) -> list[pytest.TestReport]:
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

    def run_again(self, item: pytest.Item, nextitem: pytest.Item | None, policy: TestPolicy) -> list[Leak]:
        """One more run of the test's protocol, its reports dropped: the leaks it left, unjudged."""
        self._probing = True
        try:
            self.run_protocol(item, nextitem, policy)
            again = self.close_window(item)
        finally:
            self._probing = False
        return list(again.leaks) if again is not None else []

    def _check(self, item: pytest.Item, policy: TestPolicy) -> TestLeaks:
        """The stages in order: tracked objects, then census, roots and explanations, then resources."""
        leaks: list[Leak] = []
        more = 0
        tracker = self._tracker_of(item)
        try:
            if policy.check:
                found, more = self._detect(item, policy)
                leaks.extend(found)
                if "fds" in policy.resources:
                    leaks.extend(resources.new_fds(item.stash.get(FDS_KEY, None)))
            if tracker is not None:
                module_globals, rootpath = self._explainer.globals, str(self._explainer.config.rootpath)
                leaks.extend(tracked_leaks(tracker, self._tracked_reported, self._heap, module_globals, rootpath))
        finally:
            self._tracked.clear()
            self._tracked_reported.clear()
            if tracker is not None:
                tracker.close()
        if not leaks:
            return CLEAN
        # objects held by program state first, then what grows per run, then resources left behind
        leaks.sort(key=lambda leak: (_KIND_ORDER.get(leak.kind, 3), -leak.retained_bytes, leak.type))
        leaks = [leak if leak.fingerprint else hints.named(leak) for leak in leaks]  # (a known leak given again is)
        return TestLeaks(nodeid=item.nodeid, leaks=tuple(leaks), outcome="failed", more_groups=more)

    def _detect(self, item: pytest.Item, policy: TestPolicy) -> tuple[list[Leak], int]:
        survivors = census.Survivors()
        held_at = len(self.harness.held_at)
        probe = self._probe_next if self._probing else self._probe  # a second run's leaks: for a third to confirm
        check = Check(item, policy.ignore_types, probe, self._probing, self._tracked, self._tracked_reported)
        try:
            running, owned = (
                resources.running(survivors.objs, policy.resources, survivors.types)
                if policy.resources
                else ([], set())
            )
            found, more = self._census(check, survivors, owned)
            if self._lengths:
                found.extend(
                    untracked.untracked_growth(check.probe, check.probing, found, survivors, self._watch, self._lengths)
                )
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
        # what survived, by name: the same as a test found clean, or as one whose leaks all came through cached chains
        shape = None if harness.fresh_fixtures else census.shape(survivors, harness.key())
        if shape is not None and not rest and shape in self._clean_shapes:
            return [], 0  # the same objects, by type and references, as a test found clean before
        repeatable = self._may_repeat and not check.probing and not check.tracked and not owned
        if shape is not None and repeatable:
            known = self._again(check, survivors, shape, rest)
            if known is not None:
                return known, 0  # the same objects as a test whose leaks came through cached chains, held by them
        return self._judge(check, survivors, codes, rest, remembered, shape, repeatable, owned)

    def _again(
        self, check: Check, survivors: census.Survivors, shape: tuple[Any, ...], rest: list[Any]
    ) -> list[Leak] | None:
        """``again.Repeats.again`` with the registries learned and the slots the quick verdict reads.

        *rest*: our list of the subjects the census left, each of which must be accounted for.
        """
        harness = self.harness
        slots = harness.quick_slots(check.item)
        try:
            return self._repeats.again(shape, survivors, check.probe, harness.known.ids(), slots, rest)
        finally:
            slots.clear()

    def _judge(
        self,
        check: Check,
        survivors: census.Survivors,
        codes: frozenset[int],
        rest: list[Any],
        remembered: bool,
        shape: tuple[Any, ...] | None,
        repeatable: bool,
        owned: set[int],
    ) -> tuple[list[Leak], int]:
        """The quick verdict on the subjects left (*rest*), then the roots and explain stages for what it left open."""
        builtin = self._unwound
        context = self._context(check, codes, builtin)
        quick = self._quick(survivors, context, check.item, rest, remembered) if rest else []
        rest.clear()  # the caller's list too: a reference to a subject that no holder explains
        if quick == [] and not builtin:
            return [], 0
        context.subjects_settled = quick == []
        if context.subjects_settled and shape is not None and shape in self._clean_shapes:
            return [], 0  # the quick verdict accounted for every subject, and the rest looks like a clean test's
        candidates = self._candidates(survivors, context, quick, owned)
        if not candidates:
            if shape is not None and context.subjects_settled:
                self._remember_clean(shape)
            return [], 0
        return self._explain(check, survivors, candidates, context, shape if repeatable else None, bool(owned))

    def _candidates(
        self, survivors: census.Survivors, context: classify.Context, quick: list[int] | None, owned: set[int]
    ) -> list[int]:
        """The roots to explain: the quick verdict's known leaks, and the roots the roots stage finds.

        Beside a known leak again (its chain is in ``context.chains``), roots of
        builtin types are still judged, unless the other survivors look like
        those of a test whose were judged clean.
        """
        builtin = context.builtin_roots
        besides = self._shape_besides(survivors, quick) if quick and builtin else None
        if quick and (not builtin or besides in self._clean_shapes):
            candidates = quick
        else:
            candidates = roots.find_leaked_roots(survivors, context, self.harness.known)
            if quick:
                if besides is not None and set(candidates) <= set(quick):
                    self._remember_clean(besides)
                candidates = sorted({*quick, *candidates})
        return _not_owned(survivors, candidates, owned) if owned else candidates

    def _explain(
        self,
        check: Check,
        survivors: census.Survivors,
        candidates: list[int],
        context: classify.Context,
        shape: tuple[Any, ...] | None,
        running: bool,
    ) -> tuple[list[Leak], int]:
        """The explain stage; leaks that all came through cached chains are remembered by *shape* for the next test."""
        if any(i not in context.chains for i in candidates):
            self._heap.thaw()  # chain searches need the heap unfrozen: get_referrers skips frozen objects
        cached = [context.chains[i] for i in candidates if i in context.chains] if shape is not None else []
        try:
            found, more = self._explainer.explain(check, survivors, candidates, context, running=running)
        finally:
            context.chains.clear()
        if cached and shape is not None and not more:
            self._repeats.learn(shape, cached, survivors, found)
        cached.clear()
        return found, more

    def _shape_besides(self, survivors: census.Survivors, leaked: list[int]) -> tuple[Any, ...] | None:
        """The shape of the survivors outside what *leaked* keeps (None with fixture values made by this test)."""
        if self.harness.fresh_fixtures:
            return None
        return census.shape(survivors, self.harness.key(), survivors.closure(leaked))

    def _remember_clean(self, shape: tuple[Any, ...]) -> None:
        if len(self._clean_shapes) < _MAX_CLEAN_SHAPES:
            self._clean_shapes.add(shape)

    def _context(self, check: Check, codes: frozenset[int], builtin: bool) -> classify.Context:
        """What the session knows about the running test, for explaining its roots."""
        item, harness = check.item, self.harness
        return classify.Context(
            holders=lambda: list(harness.holders(item)),
            shared=harness.shared_holders,
            repeated_leak=self._explainer.repeated_leak,
            harness_codes=codes,
            ignore_types=check.ignore_types,
            item=item,
            held_at=harness.held_at,
            builtin_roots=builtin,
            window=self._heap,
            held_by_c=self._explainer.held_by_c,
        )

    def _quick(
        self,
        survivors: census.Survivors,
        context: classify.Context,
        item: pytest.Item,
        rest: list[Any],
        remembered: bool,
    ) -> list[int] | None:
        """``quick.quick_verdict`` with the hot shared holders and the item's fixture values as slots."""
        slots = self.harness.quick_slots(item)
        try:
            return quick.quick_verdict(survivors, context, slots, rest, remembered)
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
