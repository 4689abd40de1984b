"""Which objects outlived the test, and who references them: the per-test hot path.

Its cost is proportional to what the test allocated, not to the heap: the
heap window (``window``) froze every existing object, so a collection and
``gc.get_objects()`` see only objects created since. ``Survivors`` are those
objects, with the references among them counted once; the rest of this module
counts the references a list of holders has to some of them.
"""

from __future__ import annotations

import collections
import gc
import itertools
import operator
import sys
import types
from collections.abc import Iterable, Iterator
from typing import Any

from pytest_leakhunt.naming import type_name
from pytest_leakhunt.registries import CONTAINER_TYPES, CONTAINERS, ELEMENT_CONTAINERS
from pytest_leakhunt.window import HeapWindow


def shape(survivors: Survivors, harness_key: Any, without: set[int] | None = None) -> tuple[Any, ...]:
    """A name for what survived, without holding any of it: each type's name and count, and the references
    among the survivors. pytest leaves the same few objects after every passing test; a test that keeps
    anything leaves more of some type, or more references (a list that got an element). *without*: survivor
    positions left out (a known leak's objects, to ask whether the others look like a clean test's).
    """
    objs = survivors.objs if not without else [o for i, o in enumerate(survivors.objs) if i not in without]
    counts = collections.Counter(map(type, objs))
    names = sorted((type_name(cls), n) for cls, n in counts.items())
    return (harness_key, len(gc.get_referents(*objs)), *names)


class Survivors:
    """The new objects still alive after teardown. Holds them strongly: close() it.

    Instances live only for the duration of one check, inside session code that
    drops them before the verdict is stored.
    """

    def __init__(self) -> None:
        HeapWindow.collect()
        self.objs: list[Any] = gc.get_objects()
        self._index: dict[int, int] | None = None
        self._internal: list[int] = []
        self._types: set[type] | None = None

    @property
    def types(self) -> set[type]:
        """The survivors' distinct types: the object census and the resource check both start here."""
        if self._types is None:
            self._types = set(map(type, self.objs))
        return self._types

    def forget_types(self) -> None:
        """Drop the set of the survivors' types once the stages that start from it are done."""
        self._types = None

    @property
    def index(self) -> dict[int, int]:
        """Survivor position by id; built on first use, since most checks end before they need it."""
        if self._index is None:
            objs = self.objs
            self._index = dict(zip(map(id, objs), range(len(objs))))
            self._index[id(objs)] = -1
            # One C-level call lists every reference between survivors (and to old objects).
            refs = gc.get_referents(*objs)
            counts = collections.Counter(map(id, refs))
            counts.update(_code_constants(refs))
            del refs
            self._internal = list(map(counts.get, map(id, objs), itertools.repeat(0)))
        return self._index

    def has(self, obj: Any) -> bool:
        """Whether *obj* is a survivor; without building the index when nothing else needed it."""
        if self._index is not None:
            return id(obj) in self._index
        return any(map(operator.is_, self.objs, itertools.repeat(obj)))

    @property
    def internal(self) -> list[int]:
        """References to each survivor from other survivors."""
        _ = self.index
        return self._internal

    def external(self, i: int) -> int:
        """References to survivor *i* from outside the survivors (our own list excluded)."""
        return sys.getrefcount(self.objs[i]) - 2 - self.internal[i]

    def roots(self) -> list[int]:
        """Survivors referenced from outside the survivors, picked out at C speed.

        ``map(sys.getrefcount, objs)`` sees two references of ours (the list and
        the iterator's item), as ``sys.getrefcount(objs[i])`` does.
        """
        objs, internal = self.objs, self.internal
        outside = map(operator.gt, map(sys.getrefcount, objs), map(operator.add, internal, itertools.repeat(2)))
        return list(itertools.compress(range(len(objs)), outside))

    def closure(self, start: Iterable[int]) -> set[int]:
        """Survivors reachable from *start* through survivors (not through old objects)."""
        return set(self.walk(start))

    def walk(self, start: Iterable[int]) -> Iterator[int]:
        """The survivors reachable from *start* through survivors, nearest first (breadth first)."""
        seen = set(start)
        queue = collections.deque(seen)
        objs, index = self.objs, self.index
        while queue:
            i = queue.popleft()
            yield i
            for ref in gc.get_referents(objs[i]):
                j = index.get(id(ref))
                if j is not None and j >= 0 and j not in seen:
                    seen.add(j)
                    queue.append(j)

    def close(self) -> None:
        self.objs.clear()
        self._index = None
        self._internal = []
        self._types = None


def _code_constants(refs: list[Any]) -> collections.Counter[int]:
    """The references of code objects to their constants, by id of the constants: the collector does not report
    them (code objects are not tracked), so the constants of a function the test made (one of a module it imported
    first) would look held from outside.
    """
    found: collections.Counter[int] = collections.Counter()
    codes = list(itertools.compress(refs, map(operator.is_, map(type, refs), itertools.repeat(types.CodeType))))
    seen: set[int] = set()
    while codes:
        code = codes.pop()
        if id(code) not in seen:
            seen.add(id(code))
            found[id(code.co_consts)] += 1
            codes.extend(const for const in code.co_consts if type(const) is types.CodeType)
    return found


def _held_by(holders: list[Any], objs: list[Any]) -> list[int]:
    """The ids of *objs* that *holders* reference, once per reference."""
    return _held_by_views(holders, objs)[0]


def _held_by_views(holders: list[Any], objs: list[Any]) -> tuple[list[int], bool]:
    """``_held_by``, and whether an instance's attributes are among those references (what ``_remember`` keeps).

    Every check pays this for the logging plugin's capture streams. Containers
    report their contents; an instance reports its attributes itself, through
    its ``__dict__``, or both (3.13 with a materialized dict). When no instance
    is seen from both views, each view is read for all holders in one C call;
    otherwise each instance's larger count is taken one by one (``_refs_of``).
    """
    wanted = set(map(id, objs))
    instances: list[Any] = []
    attrs: list[dict[str, Any]] = []
    containers: list[Any] = []
    for holder in holders:
        scope = attribute_dict(holder)
        if scope is None:
            containers.append(holder)
        else:
            instances.append(holder)
            attrs.append(scope)
    holder = scope = None
    in_containers = list(filter(wanted.__contains__, map(id, gc.get_referents(*containers))))
    own = list(filter(wanted.__contains__, map(id, gc.get_referents(*instances))))
    via_dict = list(filter(wanted.__contains__, map(id, gc.get_referents(*attrs))))
    if own and via_dict:
        counted = dict.fromkeys(wanted, 1)
        own, via_dict = [id(ref) for holder in instances for ref in _refs_of(holder, counted)], []
    return [*in_containers, *own, *via_dict], bool(own or via_dict)


def _refs_of(holder: Any, wanted: dict[int, int]) -> list[Any]:
    """The references *holder* has to wanted objects, each attribute counted once.

    Depending on the CPython version, an instance reports its attributes itself
    (inline values), through its ``__dict__``, or both (3.13 with a
    materialized dict); the larger count of the two views is the true one.
    """
    own = _wanted(gc.get_referents(holder), wanted)
    attrs = attribute_dict(holder)
    if attrs is None:
        return own
    via_dict = _wanted(gc.get_referents(attrs), wanted)
    if not own:
        return via_dict
    if not via_dict:
        return own
    merged: list[Any] = []
    for key in {id(r) for r in own} | {id(r) for r in via_dict}:
        a = [r for r in own if id(r) == key]
        b = [r for r in via_dict if id(r) == key]
        merged.extend(a if len(a) >= len(b) else b)
    return merged


def _wanted(refs: list[Any], wanted: dict[int, int]) -> list[Any]:
    # Most holders hold none of them, and some hold thousands of objects (the
    # session's items): the common answer is found at C speed.
    if wanted.keys().isdisjoint(map(id, refs)):
        return []
    return [r for r in refs if id(r) in wanted]


def attribute_dict(holder: Any) -> dict[str, Any] | None:
    """An object's own attribute dict, read without running its code (no proxy's ``__getattribute__``).

    None for containers and classes, whose references are their contents.
    """
    if isinstance(holder, (*CONTAINERS, type)):
        return None
    try:
        attrs = object.__getattribute__(holder, "__dict__")
    except Exception:  # noqa: BLE001 - no __dict__, or a descriptor that refuses
        return None
    return attrs if type(attrs) is dict else None


def expand_holders(holders: Iterable[Any]) -> list[Any]:
    """Holders plus the containers inside them, for callers that cache the expansion."""
    return list(_expand(holders, {}))


def _expand(holders: Iterable[Any], index: dict[int, int]) -> Iterator[Any]:
    """Old holders and the containers directly inside them (two levels for dicts)."""
    seen: set[int] = set()
    for holder in holders:
        if holder is None or id(holder) in index or id(holder) in seen:
            continue
        seen.add(id(holder))
        yield holder
        scope = attribute_dict(holder)
        for value in _contents(holder if scope is None else scope):
            if type(value) in CONTAINER_TYPES and id(value) not in index and id(value) not in seen:
                seen.add(id(value))
                yield value
                if type(value) is dict:
                    for sub in list(value.values()):
                        if type(sub) in CONTAINER_TYPES and id(sub) not in index and id(sub) not in seen:
                            seen.add(id(sub))
                            yield sub


def _contents(scope: Any) -> list[Any]:
    """The values of a dict, the items of a list, tuple, set or deque; nothing for anything else."""
    if isinstance(scope, dict):
        return list(scope.values())
    if isinstance(scope, ELEMENT_CONTAINERS):
        return list(scope)
    return []


def holds(holder: Any, obj: Any) -> bool:
    """Whether *holder* references *obj* (identity, never ``__eq__``).

    A holder that leaks grows by one entry per test, so this runs at C speed
    and from the end, where dicts and lists keep their newest entries; a list's
    or dict's own reverse iterator gets there without copying every reference.
    """
    kind = type(holder)
    try:
        if kind is list:
            return any(map(operator.is_, reversed(holder), itertools.repeat(obj)))
        if kind is dict:
            values, keys = reversed(holder.values()), reversed(holder.keys())
            return any(map(operator.is_, values, itertools.repeat(obj))) or any(
                map(operator.is_, keys, itertools.repeat(obj))
            )
    except RuntimeError:  # changed size while read (another thread): read it the slow way
        pass
    return any(map(operator.is_, reversed(gc.get_referents(holder)), itertools.repeat(obj)))


def references(holder: Any, obj: Any) -> int:
    """How many references *holder* has to *obj* (a dict's keys and values, else what the collector reports)."""
    same = itertools.repeat(obj)
    if type(holder) is dict:
        return sum(map(operator.is_, holder.values(), same)) + sum(map(operator.is_, holder.keys(), same))
    return sum(map(operator.is_, gc.get_referents(holder), same))


def referrers_of(targets: list[Any]) -> list[Any]:
    """What the collector sees referring to any of *targets*: one walk of the unfrozen heap.

    Some CPython versions (3.13) report the argument tuple ``gc.get_referrers``
    was called with: it is left out, as the caller's own *targets* list must be.
    """
    args = tuple(targets)
    try:
        return [holder for holder in gc.get_referrers(*args) if holder is not args] if args else []
    finally:
        del args


def links_hold(prefix: list[Any]) -> bool:
    return all(holds(parent, child) for parent, child in zip(prefix, prefix[1:]))
