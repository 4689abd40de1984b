"""The census's explanation step, unit by unit."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from pytest_leakhunt import census, classify, ctables, roots
from pytest_leakhunt.registries import KnownHolders
from pytest_leakhunt.window import YOUNG_COLLECT, HeapWindow


class Thing:
    pass


class Registry:
    def __init__(self) -> None:
        self.entries: dict[str, Any] = {}  # empty: untracked until its first object arrives


def _left_unexplained(during_test: Callable[[], None], is_candidate: Callable[[Any], bool], shared: list[Any]) -> bool:
    """Run *during_test* inside a check window and ask whether the one candidate survivor stays unexplained."""
    HeapWindow().open()
    try:
        during_test()
        survivors = census.Survivors()
        try:
            (i,) = [k for k, obj in enumerate(survivors.objs) if is_candidate(obj)]
            context = classify.Context(
                holders=lambda: [],
                shared=lambda fresh: shared,
                harness_codes=frozenset(),
                ignore_types=frozenset(),
            )
            return roots.unexplained(survivors, [i], context, KnownHolders()) == [i]
        finally:
            survivors.close()
    finally:
        HeapWindow().close()


def test_a_holder_tried_twice_explains_its_reference_once() -> None:
    """A harness holder among the hottest ones is also in the full list: it must not count twice."""
    harness: list[Any] = []
    program: list[Any] = []

    def keep() -> None:
        thing = Thing()
        harness.append(thing)
        program.append(thing)  # the leak: one reference nobody explains

    try:
        assert _left_unexplained(keep, lambda obj: type(obj) is Thing, [harness])
    finally:
        harness.clear()
        program.clear()


def test_a_holder_named_twice_in_one_list_explains_its_reference_once() -> None:
    """Holders are read a batch at a time: the same holder twice in one batch counts once, as one by one."""
    thing = Thing()
    shared = [thing]
    need = roots._Need({})
    need.left[id(thing)] = 2  # our list, and a reference nobody accounts for
    need.settle_with([shared, shared, []], expanded=True)
    assert need.left == {id(thing): 1}


def test_a_registry_dict_that_just_became_tracked_is_explained_by_its_owner() -> None:
    registry = Registry()
    shared = [registry, registry.entries]  # the session's list of harness holders, as the plugin keeps it

    def fill() -> None:
        registry.entries["first"] = Thing()  # the old dict is now tracked: it looks new

    assert not _left_unexplained(fill, lambda obj: obj is registry.entries, shared)


def test_references_from_holders_are_counted_once_per_reference_whatever_the_view() -> None:
    """Holders of every kind at once: some views report the subject, some do not, depending on the version.

    Once its __dict__ is materialized, an instance reports its attributes through it on 3.10-3.12 and
    itself on 3.13; the dict and the list report theirs directly. On 3.10-3.12 both views hold subjects
    here, which takes the per-holder count; on 3.13 only one does, which takes the one-call count.
    """
    subject, other = Thing(), Thing()
    holder = Thing()
    holder.kept = subject  # type: ignore[attr-defined]
    holder.__dict__["again"] = subject
    holders: list[Any] = [holder, {"a": subject, "b": other}, [subject], Registry()]
    held = census._held_by(holders, [subject, other])
    assert held.count(id(subject)) == 4
    assert held.count(id(other)) == 1


class Node:
    """A weakly referenceable object in a reference cycle: only the collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_the_window_garbage_is_freed_even_after_the_test_collected_it_into_generation_2() -> None:
    """A test's own gc.collect() moves its live objects to generation 2: the census must then collect it too."""
    was_enabled = gc.isenabled()
    gc.disable()  # no automatic collection may decide which path the census takes
    HeapWindow().open()
    try:
        promoted = Node()
        gc.collect(1)  # what the test does: `promoted`, still alive, moves to generation 2
        young = Node()
        gone = [weakref.ref(promoted), weakref.ref(young)]
        del promoted, young  # both are cyclic garbage now
        census.Survivors().close()
        assert [ref() for ref in gone] == [None, None]
    finally:
        HeapWindow().close()
        if was_enabled:
            gc.enable()


@pytest.mark.skipif(not YOUNG_COLLECT, reason="the cheap collection is only exact with three generations")
def test_the_census_of_a_test_that_promoted_nothing_frees_its_garbage_without_a_full_collection() -> None:
    """A full collection also empties the interpreter's free lists: the census avoids it when it can."""
    was_enabled = gc.isenabled()
    gc.disable()
    HeapWindow().open()
    try:
        young = Node()
        gone = weakref.ref(young)
        del young
        full_before = gc.get_stats()[2]["collections"]
        census.Survivors().close()
        assert gone() is None
        assert gc.get_stats()[2]["collections"] == full_before
    finally:
        HeapWindow().close()
        if was_enabled:
            gc.enable()


def test_dicts_a_class_keeps_in_c_are_recognised_and_nothing_else() -> None:
    # a type defined in C without the collector's support (as C extensions' types are before 3.13): its dict
    type_dict = next(d for d in gc.get_referents(int.__dict__) if type(d) is dict)
    assert ctables.is_c_type_dict(type_dict)
    assert not ctables.is_c_type_dict(dict(type_dict))  # a copy is a program's
    assert not ctables.is_c_type_dict({"__doc__": None, "name": "x"})

    class Base:
        pass

    class Child(Base):
        pass

    tables = [d for d in gc.get_referrers(weakref.ref(Child)) if type(d) is dict]
    assert [ctables.is_subclass_table(d) for d in tables] == [True]
    # not the shape: more or fewer than the subclasses of one class, a class under another's address
    assert not ctables.is_subclass_table({id(Child): weakref.ref(Child), id(Base): weakref.ref(Base)})
    assert not ctables.is_subclass_table({id(Base): weakref.ref(Base)})
    assert not ctables.is_subclass_table({id(Child): weakref.ref(Base)})
    assert not ctables.is_c_type_dict(next(d for d in gc.get_referents(Child) if type(d) is dict))


def test_odd_objects_are_read_without_running_their_code_or_raising() -> None:
    from unittest import mock

    class Meta(type):
        @property
        def __bases__(cls) -> tuple[object, ...]:  # type: ignore[override]
            return (object, "x")

    class Odd(metaclass=Meta):
        pass

    class Under(Odd):
        pass

    fake = mock.Mock(spec=type)
    table = next(d for d in gc.get_referrers(weakref.ref(Under)) if type(d) is dict)
    assert ctables.is_subclass_table(table)
    assert not ctables.is_subclass_table({id(fake): weakref.ref(fake)})

    class Descriptor:
        @property
        def __objclass__(self) -> type:
            raise RuntimeError("read")

    assert not ctables.is_c_type_dict({"__repr__": Descriptor()})
