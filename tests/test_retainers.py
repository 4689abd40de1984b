"""Retainer chains: the module-globals index that saves walks of the heap."""

from __future__ import annotations

import collections
import sys
import types

import pytest

from pytest_leakhunt import census, edges, modglobals, retainers

SOURCE = """
def _make():
    cache = {}
    def remember(key, value):
        cache[key] = value
    return remember

remember = _make()

class Service:
    history = []

class Item:
    pass

class Bus:
    def __init__(self):
        self.listeners = []

BUS = Bus()
HANDLERS = [Bus()]
BIG = [Bus() for _ in range(300)]
"""


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("leakhunt_index_app")
    exec(compile(SOURCE, "leakhunt_index_app.py", "exec"), vars(module))  # noqa: S102 - our own source
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module


def test_class_attribute_and_closure_chains_are_found_and_named(app: types.ModuleType) -> None:
    index = modglobals.ModuleGlobals()
    kept, cached = app.Item(), app.Item()
    app.Service.history.append(kept)
    app.remember("k", cached)
    assert edges.describe_chain(retainers.find_chain(kept, module_globals=index)) == (
        "leakhunt_index_app",
        "Service",
        "history",
        "[0]",
    )
    assert edges.describe_chain(retainers.find_chain(cached, module_globals=index)) == (
        "leakhunt_index_app",
        "remember",
        "<closure cache>",
        "['k']",
    )


def test_index_keeps_names_not_objects(app: types.ModuleType) -> None:
    index = modglobals.ModuleGlobals()
    app.Service.history.append(app.Item())
    assert index.prefix(app.Service.history) is not None
    paths = list(index._paths.values())  # noqa: SLF001 - the property under test
    assert paths
    parts = [part for module, name, steps in paths for part in (module, name, *(x for step in steps for x in step))]
    assert all(isinstance(part, (str, int)) for part in parts)


def test_contents_of_small_globals_are_indexed_one_link_down(app: types.ModuleType) -> None:
    index = modglobals.ModuleGlobals()
    # an instance's attribute and a small list's element: no walk of the heap needed to name them
    assert index.prefix(app.BUS.listeners) is not None
    assert index.prefix(app.HANDLERS[0]) is not None
    assert index.prefix(app.BIG[5]) is None  # a big container is not looked into
    kept = app.Item()
    app.HANDLERS[0].listeners.append(kept)
    assert edges.describe_chain(retainers.find_chain(kept, module_globals=index)) == (
        "leakhunt_index_app",
        "HANDLERS",
        "[0]",
        "listeners",
        "[0]",
    )


def test_stale_index_entry_is_not_trusted(app: types.ModuleType) -> None:
    index = modglobals.ModuleGlobals()
    history = app.Service.history
    assert index.prefix(history) is not None
    app.Service.history = []  # rebound: the index still names the old list's address
    assert index.prefix(history) is None


def test_two_objects_kept_by_one_holder_are_both_traced(app: types.ModuleType) -> None:
    index = modglobals.ModuleGlobals()
    first, second = app.Item(), app.Item()
    app.remember("first", first)
    app.remember("second", second)
    chains = retainers.find_chains([first, second], module_globals=index)
    assert [edges.describe_chain(chain)[-1] for chain in chains] == ["['first']", "['second']"]


def test_the_likely_modules_are_indexed_first_and_the_rest_only_on_a_miss(
    app: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = modglobals.ModuleGlobals()
    full: list[int] = []
    real = index._add_new_modules  # noqa: SLF001 - the cost under test: indexing every module
    monkeypatch.setattr(index, "_add_new_modules", lambda: full.append(1) or real())
    kept = app.Item()
    app.Service.history.append(kept)
    # the leaked type's module (here also the holder's) explains it: the other modules are not indexed
    chain = retainers.find_chains([kept], module_globals=index)[0]
    assert edges.describe_chain(chain) == ("leakhunt_index_app", "Service", "history", "[0]")
    assert full == []
    # an object whose holder lives elsewhere: the likely modules miss, so every module is indexed
    elsewhere = types.SimpleNamespace()
    app.Service.history.append(elsewhere)
    chain = retainers.find_chains([elsewhere], module_globals=index)[0]
    assert edges.describe_chain(chain) == ("leakhunt_index_app", "Service", "history", "[1]")
    assert full == [1]


def test_holds_finds_keys_values_and_items_by_identity_only() -> None:
    class Equal:
        def __eq__(self, other: object) -> bool:
            return True  # equal to everything: only identity may count

        __hash__ = object.__hash__

    kept, other = Equal(), Equal()
    assert census.holds([other, kept], kept) and not census.holds([other], kept)
    assert census.holds({"k": kept}, kept) and census.holds({kept: 1}, kept)
    assert not census.holds({"k": other, other: 1}, kept)
    assert census.holds(collections.OrderedDict(k=kept), kept)  # a subclass: read through the collector
    namespace = types.SimpleNamespace(k=kept)
    assert census.holds(namespace, vars(namespace)) and not census.holds(namespace, kept)  # through its __dict__


def test_search_down_names_what_the_root_module_keeps_and_stays_inside_it(app: types.ModuleType) -> None:
    in_class, in_closure, in_instance, elsewhere = app.Item(), app.Item(), app.Item(), app.Item()
    app.Service.history.append(in_class)
    app.remember("k", in_closure)
    app.HANDLERS[0].listeners.append(in_instance)
    other = types.ModuleType("leakhunt_other_module")
    other.KEPT = [elsewhere]  # type: ignore[attr-defined]
    app.other = other  # the root module imports another one: its globals are that module's business
    targets = [in_class, in_closure, in_instance, elsewhere]
    found = retainers.search_down([app], targets, set())
    assert [edges.describe_chain(found[id(t)]) for t in targets[:3]] == [
        ("leakhunt_index_app", "Service", "history", "[0]"),
        ("leakhunt_index_app", "remember", "<closure cache>", "['k']"),
        ("leakhunt_index_app", "HANDLERS", "[0]", "listeners", "[0]"),
    ]
    assert id(elsewhere) not in found
    # out of budget before the third level: nothing below it is found, and the walk up takes over
    assert retainers.search_down([app], [in_instance], set(), budget=2) == {}
    # a container longer than the budget left is not opened at all (a million-entry global list)
    assert id(app.BIG[5]) in retainers.search_down([app], [app.BIG[5]], set())
    assert retainers.search_down([app], [app.BIG[5]], set(), budget=250) == {}


def test_the_first_walk_tells_which_targets_nothing_refers_to() -> None:
    # Only this frame refers to `alone`, and a search skips the frames of its own stack; `kept` is in a list.
    alone, kept = ["alone"], ["kept"]
    holder = [kept]
    unheld: set[int] = set()
    chains = retainers.find_chains([alone, kept], unheld=unheld)
    assert chains == [[alone], [kept]]  # no module reaches either
    assert unheld == {id(alone)}
    assert holder


def test_a_namespace_or_an_indexed_instance_dict_ends_the_chain_one_walk_early(
    app: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = modglobals.ModuleGlobals()
    index.prefix(app.BUS)  # the index is built before the test binds anything
    walks: list[int] = []
    real = retainers.gc.get_referrers

    def counted(*objs: object) -> list[object]:
        walks.append(len(objs))
        return real(*objs)

    monkeypatch.setattr(retainers.gc, "get_referrers", counted)
    app.LATEST = app.Item()  # a new global: the walk finds the module's namespace, which names the module
    app.BUS.current = app.Item()  # a new attribute of an indexed instance: the walk finds its dict
    chains = [retainers.find_chain(obj, module_globals=index) for obj in (app.LATEST, app.BUS.current)]
    assert [edges.describe_chain(chain)[-2:] for chain in chains] == [
        ("leakhunt_index_app", "LATEST"),
        ("BUS", "current"),
    ]
    assert walks == [1, 1]
