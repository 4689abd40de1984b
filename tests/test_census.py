"""The census's explanation step, unit by unit."""

from __future__ import annotations

from typing import Any

from pytest_leakhunt import census


class Thing:
    pass


def test_a_holder_tried_twice_explains_its_reference_once() -> None:
    """A harness holder among the hottest ones is also in the full list: it must not count twice."""
    harness: list[Any] = []
    program: list[Any] = []
    census.begin()
    try:
        thing = Thing()
        harness.append(thing)
        program.append(thing)  # the leak: one reference nobody explains
        del thing
        survivors = census.Survivors()
        try:
            (i,) = [k for k, obj in enumerate(survivors.objs) if type(obj) is Thing]
            context = census.Context(
                holders=lambda: [],
                shared=lambda fresh: [harness],
                harness_codes=frozenset(),
                ignore_types=frozenset(),
            )
            assert census.unexplained(survivors, [i], context, census.KnownHolders()) == [i]
        finally:
            survivors.close()
    finally:
        census.end()
        harness.clear()
        program.clear()


class Registry:
    def __init__(self) -> None:
        self.entries: dict[str, Any] = {}  # empty: untracked until its first object arrives


def test_a_registry_dict_that_just_became_tracked_is_explained_by_its_owner() -> None:
    registry = Registry()
    shared = [registry, registry.entries]  # the session's list of harness holders, as the plugin keeps it
    census.begin()
    try:
        registry.entries["first"] = Thing()  # the old dict is now tracked: it looks new
        survivors = census.Survivors()
        try:
            (i,) = [k for k, obj in enumerate(survivors.objs) if obj is registry.entries]
            context = census.Context(
                holders=lambda: [],
                shared=lambda fresh: shared,
                harness_codes=frozenset(),
                ignore_types=frozenset(),
            )
            assert census.unexplained(survivors, [i], context, census.KnownHolders()) == []
        finally:
            survivors.close()
    finally:
        census.end()
