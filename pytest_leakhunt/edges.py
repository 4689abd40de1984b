"""How one object refers to another, in words: the labels of retainer chains and of heap snapshots' edges."""

from __future__ import annotations

import collections
import gc
import types
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pytest_leakhunt.census import referrers_of
from pytest_leakhunt.registries import _LRU_TYPE, SEQUENCES, is_harness_module

_NO_NAMESPACES: set[int] = set()


def describe_chain(chain: list[Any], ignore: Iterable[Any] = ()) -> tuple[str, ...]:
    """Readable segments for a chain: ``("shop.orders", "OrderService", "history", "[0]")``."""
    if len(chain) >= 2 and isinstance(chain[0], types.ModuleType):
        segments = [chain[0].__name__]
        namespaces = {id(vars(chain[0]))}
    elif (
        len(chain) >= 2
        and type(chain[0]).__name__ == "FixtureDef"
        and isinstance(getattr(chain[0], "argname", None), str)
    ):
        segments = [f"fixture:{chain[0].argname}"]  # the value of a fixture of broader scope
        namespaces = set()
    elif len(chain) >= 2 and is_harness_module(type(chain[0]).__module__):
        segments = [f"<pytest {type(chain[0]).__name__}>"]  # a parametrized value or fixture pytest keeps
        namespaces = set()
    else:
        return _orphan_segments(chain[-1], [*ignore, chain]) if chain else ("<unknown>",)
    prev: Any = chain[0]
    for pos in range(1, len(chain)):
        child = chain[pos]
        label = edge(prev, child, namespaces, chain[pos - 2] if pos >= 2 else None).label
        if isinstance(child, dict) and _owns_dict(prev, child):
            namespaces.add(id(child))
        if label:
            segments.append(label)
        prev = child
    return tuple(segments)


def _owns_dict(owner: Any, child: dict[Any, Any]) -> bool:
    if isinstance(owner, type):
        # vars(cls) is a read-only proxy of the very dict the class holds
        return child.get("__module__") == owner.__dict__.get("__module__", None) and child == owner.__dict__
    try:
        return vars(owner) is child or getattr(owner, "__dict__", None) is child
    except TypeError:
        return False


#: how a reference is named: an attribute or global, a dict's string key or other key (shown by its repr), a
#: position, a closure variable, a set member,
#: the object's own ``__dict__`` or closure tuple (structural: no name of its own), or another internal reference
EdgeKind = Literal["attribute", "key", "entry", "index", "closure", "member", "structural", "internal"]


@dataclass(frozen=True)
class Edge:
    """One reference parent -> child, named the way chains and heap snapshots both show it."""

    kind: EdgeKind
    name: str | int

    @property
    def label(self) -> str:
        """The segment of a retainer chain: ``history``, ``['k1']``, ``[0]``, ``<closure cb>``; '' when structural."""
        if self.kind == "attribute":
            return str(self.name)
        if self.kind == "key":
            return f"[{_short_repr(self.name)}]"
        if self.kind in ("entry", "index"):
            return f"[{self.name}]"
        if self.kind == "closure":
            return f"<closure {self.name}>"
        if self.kind == "structural":
            return ""
        return f"<{self.name}>"

    @property
    def snapshot(self) -> tuple[str, str | int]:
        """The edge type and name of a V8 heap snapshot: property, element, or internal."""
        if self.kind in ("attribute", "key", "entry", "closure"):
            return "property", self.name
        if self.kind == "index":
            return "element", self.name
        return "internal", self.name


def edge(parent: Any, child: Any, namespaces: set[int] = _NO_NAMESPACES, grandparent: Any = None) -> Edge:
    """How *parent* refers to *child*; a dict whose id is in *namespaces* is a namespace (its keys are names).

    One branch per kind of container, in order of likelihood: a dispatch on
    type would only move the branches into a table, since lists, tuples and
    closures need to see the grandparent or search from the end.
    """
    if isinstance(child, dict) and _owns_dict(parent, child):
        # an instance's or module's __dict__; a class's is the dict behind its mappingproxy
        return Edge("structural", "dict" if isinstance(parent, type) else "__dict__")
    if isinstance(parent, dict):
        return _dict_edge(parent, child, id(parent) in namespaces)
    if isinstance(parent, types.FunctionType) and child is parent.__closure__:
        return Edge("structural", "tuple")
    if isinstance(parent, SEQUENCES):
        return _sequence_edge(parent, child, grandparent)
    if isinstance(parent, (set, frozenset)):
        return Edge("member", "member")
    if isinstance(parent, types.CellType):
        return Edge("structural", type(child).__name__)
    if type(parent) is _LRU_TYPE:
        return Edge("internal", "lru_cache")
    if isinstance(parent, types.MethodType):
        return Edge("attribute", "__self__" if parent.__self__ is child else "__func__")
    if isinstance(child, types.CellType) and isinstance(parent, types.FunctionType):
        for name, cell in zip(parent.__code__.co_freevars, parent.__closure__ or ()):
            if cell is child:
                return Edge("closure", name)
    if child is type(parent):
        return Edge("internal", "__class__")
    return _attribute_edge(parent, child)


def _dict_edge(parent: dict[Any, Any], child: Any, namespace: bool) -> Edge:
    for key, value in reversed(parent.items()):  # the newest entries are last: a leak was just added
        if value is child:
            if isinstance(key, str):
                return Edge("attribute" if namespace else "key", key)
            return Edge("entry", _short_repr(key))
    return Edge("internal", "key")


def _sequence_edge(parent: list[Any] | tuple[Any, ...] | collections.deque[Any], child: Any, grandparent: Any) -> Edge:
    if isinstance(parent, tuple) and isinstance(grandparent, types.FunctionType) and grandparent.__closure__ is parent:
        for name, cell in zip(grandparent.__code__.co_freevars, parent):
            if cell is child:
                return Edge("closure", name)
        return Edge("structural", type(child).__name__)
    for i in range(len(parent) - 1, -1, -1):  # appended last, found first
        if parent[i] is child:
            return Edge("index", i)
    return Edge("internal", "item")


def _attribute_edge(parent: Any, child: Any) -> Edge:
    try:
        attrs = vars(parent)
    except TypeError:
        attrs = {}
    for key, value in attrs.items():
        if value is child:
            return Edge("attribute", str(key))
    for name in getattr(type(parent), "__slots__", ()):
        if getattr(parent, name, None) is child:
            return Edge("attribute", str(name))
    return Edge("internal", type(parent).__name__)


def _short_repr(key: Any) -> str:
    if isinstance(key, weakref.ref):
        target = key()
        return f"<weakref to {type(target).__qualname__}>" if target is not None else "<dead weakref>"
    text = repr(key)
    return text if len(text) <= 40 else text[:37] + "..."


#: The name of a holder the collector cannot see: C state (a C extension's, the thread's context) or a stack.
HELD_OUTSIDE = "<held outside Python objects: C state or a thread's stack>"


def _orphan_segments(obj: Any, ignore: Iterable[Any]) -> tuple[str, ...]:
    """No module reaches it: name its direct holders instead (a thread's stack, C state)."""
    names = holder_names([obj], [*ignore])[0]
    return names if names else (HELD_OUTSIDE,)


def holder_names(targets: list[Any], ignore: list[Any]) -> list[tuple[str, ...] | None]:
    """Each target's direct holder, named by its type (the first name in order), in one walk of the heap.

    A target held only by frames (a thread's stack) is named as held outside;
    None means nothing the collector sees holds it at all. *ignore* lists our
    own containers.
    """
    skip = {id(x) for x in ignore}
    skip.add(id(targets))
    position = {id(t): k for k, t in enumerate(targets)}
    names: list[set[str]] = [set() for _ in targets]
    seen = [False] * len(targets)
    for holder in referrers_of(targets):
        if id(holder) in skip:
            continue
        for ref in gc.get_referents(holder):
            k = position.get(id(ref))
            if k is None:
                continue
            seen[k] = True
            if not isinstance(holder, types.FrameType) and (type(holder) is not list or holder):
                names[k].add(f"<{type(holder).__name__}>")
    holder = None
    return [tuple(sorted(n)[:1]) or (HELD_OUTSIDE,) if held else None for n, held in zip(names, seen)]
