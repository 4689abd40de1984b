"""What pytest and its plugins hold: the harness, whose references to a test's objects are never a leak.

One ``Harness`` per session: the running test's own pytest state (item,
request, setup stack, fixture definitions), the session-wide state of plugins
and config expanded once and reused until plugins change (the *harness key*),
the attributes of harness objects that kept a test's objects before, and the
code objects of every hook implementation (their generators and closures are
bookkeeping, recognised by a set lookup).
"""

from __future__ import annotations

import itertools
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_leakhunt import census, classify, quick, registries, resources, sites
from pytest_leakhunt.classify import own_caches
from pytest_leakhunt.registries import KnownHolders

#: A fresh look at the session-wide holders at most every this many checks: a leaky suite would otherwise pay
#: it on every test.
_REFRESH_EVERY = 20


class Harness:
    """The holders pytest and its plugins own, and the hook codes, cached per state of the plugins."""

    def __init__(self, config: pytest.Config, owner: object) -> None:
        self.config = config
        #: the registered plugin object: its own state is not a harness holder
        self._owner = owner
        self.known = KnownHolders()
        #: checks so far; the session-wide holders are looked at afresh at most every _REFRESH_EVERY
        self.checks = 0
        #: bumped by every plugin registration; cached harness state is rebuilt when it moves
        self.plugin_generation = 0
        #: per check: fixture definitions of broader scope whose cached value this test's setup made
        self.fresh_fixtures: list[Any] = []
        self._shared: list[Any] | None = None
        self._shared_key: tuple[int, int] = (-1, -1)
        self._shared_checked = -1000
        #: attributes of shared holders that kept a test's objects (classify.Context.held_at), for one state of plugins
        self.held_at: list[tuple[dict[str, Any], str]] = []
        self._held_at_key: tuple[int, int] = (-1, -1)
        self._codes: frozenset[int] = frozenset()
        self._code_objects: list[types.CodeType] = []
        self._codes_generation = -1

    def key(self) -> tuple[int, int]:
        """Moves when plugins are registered or a registry is learned: what was derived from harness state is stale."""
        return (self.plugin_generation, len(self.known.containers))

    def begin_check(self, item: pytest.Item, survivors: census.Survivors, unwound: bool) -> None:
        """Forget remembered attributes when the harness changed; note the fixtures this test's setup made."""
        key = self.key()
        if key != self._held_at_key:
            self.held_at.clear()  # plugins or registries changed since these were remembered
            self._held_at_key = key
        self.fresh_fixtures = fresh_fixtures(item, survivors) if unwound else []

    def holders(self, item: pytest.Item) -> Iterator[Any]:
        """Objects whose references are pytest's own per-test or per-session state."""
        yield item
        yield item.stash._storage  # noqa: SLF001 - the stash's dict is what holds values
        yield item.config.stash._storage  # noqa: SLF001
        request = getattr(item, "_request", None)
        if request:
            yield request
        yield from _setup_stack(item)
        fresh = self.fresh_fixtures
        for defs in fixturedefs(item):
            yield from (fixturedef for fixturedef in defs if fixturedef not in fresh)
        yield from own_caches()  # classes the test made are in them until the check ends
        yield from resources.own_caches()
        warnings_mod = __import__("warnings")
        log = getattr(getattr(warnings_mod, "_showwarnmsg_impl", None), "__self__", None)
        if isinstance(log, list):
            yield log

    def shared_holders(self, fresh: bool) -> list[Any]:
        """Session-wide harness state, expanded once and reused until plugins or caches change."""
        key = self.key()
        fresh = fresh and self.checks - self._shared_checked >= _REFRESH_EVERY
        if fresh or self._shared is None or key != self._shared_key:
            self._shared_checked = self.checks
            roots: list[Any] = []
            for plugin in self.config.pluginmanager.get_plugins():
                if plugin is not self._owner and not isinstance(plugin, types.ModuleType):
                    roots.extend(_state(plugin, depth=2))
            roots.extend(_state(self.config, depth=3))
            roots.extend(self.known.containers)
            self._shared = census.expand_holders(roots)
            self._shared_key = key
        return self._shared

    def quick_slots(self, item: pytest.Item) -> list[Any]:
        """The hot shared holders and the item's fixture values: what ``quick_verdict`` reads on every check."""
        slots = quick.quick_slots(self._shared) if self._shared else []
        funcargs = getattr(item, "funcargs", None)
        if type(funcargs) is dict:
            slots = [*slots, funcargs]  # the fixture values pytest keeps on the item until the next setup
        return slots

    def hook_codes(self) -> frozenset[int]:
        """Ids of the code objects of every hook implementation, and of the functions nested in pytest's plugin modules.

        A hook's generator and the runner's lambda (``call_and_report``) outlive
        every test; with their code here they are judged harness by a set lookup.
        """
        if self.plugin_generation != self._codes_generation:
            self._codes_generation = self.plugin_generation
            manager = self.config.pluginmanager
            impls = [
                impl
                for caller in vars(manager.hook).values()
                if hasattr(caller, "get_hookimpls")
                for impl in caller.get_hookimpls()
            ]
            codes = {getattr(getattr(impl.function, "__func__", impl.function), "__code__", None) for impl in impls}
            codes.discard(None)
            for plugin in manager.get_plugins():
                if isinstance(plugin, types.ModuleType) and registries.is_harness_module(plugin.__name__):
                    codes.update(_function_codes(plugin, own=False))  # the hooks among them are in already
            # pluggy runs an old-style hookwrapper inside a generator of its own, alive while the hook runs
            for name, module in list(sys.modules.items()):
                if name.startswith("pluggy.") and module is not None:
                    codes.update(_function_codes(module, own=True))
            # By identity: hashing a code object hashes its constants and names on every lookup. The objects
            # are kept so that their ids stay theirs.
            self._code_objects = list(codes)  # type: ignore[arg-type]  # None was discarded above
            self._codes = frozenset(map(id, self._code_objects))
        return self._codes

    def forget_new(self, survivors: census.Survivors, held_at: int) -> None:
        """No cache of the session keeps an object the checked test made (a Mock's class, a new plugin list).

        The holder caches can only have taken such objects in when this check
        rebuilt them (shared holders) or added to them (*held_at*: their length before).
        """
        if any(map(isinstance, survivors.objs, itertools.repeat(type))):
            resources.forget_types(classify.forget_new_types(survivors.objs))
        rebuilt = self._shared is not None and self._shared_checked == self.checks
        if not rebuilt and len(self.held_at) == held_at:
            return
        index = survivors.index
        if rebuilt and self._shared and not index.keys().isdisjoint(map(id, self._shared)):
            learned = self.known.ids()  # a cache a module imported during the test made is a registry still
            self._shared = [h for h in self._shared if id(h) not in index or id(h) in learned]  # None rebuilds
        self.held_at[:] = [(attrs, name) for attrs, name in self.held_at if id(attrs) not in index]

    def clear(self) -> None:
        self._shared = None
        self.held_at.clear()


def _setup_stack(item: pytest.Item) -> Iterator[Any]:
    """pytest's setup state and the nodes and finalizers on its stack."""
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


def _state(obj: Any, depth: int) -> Iterator[Any]:
    """A harness object and the plain objects it owns through attributes, *depth* levels down."""
    yield obj
    if depth <= 1:
        return
    for value in list(getattr(obj, "__dict__", {}).values()):
        if isinstance(value, (type, types.ModuleType, types.FunctionType, types.MethodType, *registries.CONTAINERS)):
            continue
        if hasattr(value, "__dict__") and value is not obj:
            yield from _state(value, depth - 1)


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


def fixturedefs(item: pytest.Item) -> Iterator[Any]:
    """The fixture definitions the item uses, per name (the active one last)."""
    fixtureinfo = getattr(item, "_fixtureinfo", None)
    yield from getattr(fixtureinfo, "name2fixturedefs", {}).values()


def pytest_keeps(chain: list[Any], subject: bool) -> bool:
    """Whether a chain is pytest's bookkeeping: builtin values under pytest state, or a fixture's own finalizers.

    A subject pytest keeps is a leak (hung on a parameter); a fixture of
    broader scope counts through its value only.
    """
    top = chain[0]
    if isinstance(top, types.ModuleType):
        return False
    if user_fixture(top):  # through its value: the first link, or the second after its attribute dict
        value = getattr(top, "cached_result", None)
        return not any(link is value for link in chain[1:3])
    return not subject


def user_fixture(obj: Any) -> bool:
    """A fixture definition of broader scope that the suite wrote: its value is program state between tests."""
    if type(obj).__name__ != "FixtureDef" or getattr(obj, "scope", "function") == "function":
        return False
    code = getattr(getattr(obj, "func", None), "__code__", None)
    return code is not None and sites.is_user_file(code.co_filename)  # not pytest's or a plugin's


def fresh_fixtures(item: pytest.Item, survivors: census.Survivors) -> list[Any]:
    """Fixtures of broader scope whose value this test's setup made: what the test adds to it is its own.

    Their value is still held after the test (for the tests that follow), so
    it is judged like program state rather than as pytest's.
    """
    fresh = []
    for defs in fixturedefs(item):
        fixturedef = defs[-1] if defs else None
        cached = getattr(fixturedef, "cached_result", None)
        if cached is not None and user_fixture(fixturedef) and survivors.has(cached):
            fresh.append(fixturedef)
    return fresh


class HarnessState:
    """What pytest keeps on an item per run (user properties, report sections, stash entries), put back after a run.

    The real run's reports were made already; what the extra runs add there is
    pytest's growth, not the test's, and would otherwise pile up on the item.
    """

    def __init__(self, item: pytest.Item) -> None:
        self._properties = len(item.user_properties)
        self._sections = len(item._report_sections)  # noqa: SLF001 - the list capture appends to
        self._stash = set(map(id, item.stash._storage))  # noqa: SLF001 - the stash's dict is what holds values

    def restore(self, item: pytest.Item) -> None:
        del item.user_properties[self._properties :]
        del item._report_sections[self._sections :]  # noqa: SLF001
        storage = item.stash._storage  # noqa: SLF001
        for key in [key for key in storage if id(key) not in self._stash]:
            del storage[key]
