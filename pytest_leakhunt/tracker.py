"""The ``leak_tracker`` registry: watch chosen objects, holding none of them.

Like JavaScript's FinalizationRegistry (and LeakCanary's ObjectWatcher): each
watched object gets a ``weakref.finalize`` whose callback only records a token.
Whatever has not been finalized after teardown and a collection is a leak.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pytest_leakhunt.naming import type_name

_NOT_WEAKREFABLE = "leak_tracker.track() needs an object that can be weakly referenced, and {type} objects cannot be. "
#: builtin containers whose subclasses can be weakly referenced
_SUBCLASSABLE = {list: "list", dict: "dict", set: "set"}


def _not_weakrefable(cls: type) -> str:
    """What to do instead, for a value that cannot be weakly referenced."""
    text = _NOT_WEAKREFABLE.format(type=repr(cls.__qualname__))
    base = next((name for kind, name in _SUBCLASSABLE.items() if issubclass(cls, kind)), None)
    if base is not None:
        return (
            text
            + "Track the object that owns it, or build it as a subclass: "
            + f"`class Tracked{base.capitalize()}({base}): pass`."
        )
    if cls.__module__ == "builtins":
        return text + "Track the object that owns it: numbers, strings and tuples cannot be watched."
    return text + "Track the object that owns it, or add '__weakref__' to the class's __slots__."


@dataclass(frozen=True)
class Watched:
    token: int
    name: str
    type: str


class LeakTracker:
    """Watches objects a test expects to be gone once it has torn down."""

    def __init__(self) -> None:
        self._counter = itertools.count()
        self._collected: set[int] = set()
        self._watched: list[tuple[Watched, weakref.finalize[Any, Any]]] = []

    def track(self, obj: Any, name: str | None = None) -> Any:
        """Watch *obj*; returns it unchanged so calls can be inlined."""
        cls = type(obj)
        try:
            weakref.ref(obj)
        except TypeError:
            raise TypeError(_not_weakrefable(cls)) from None
        token = next(self._counter)
        qualname = type_name(cls)
        watched = Watched(token=token, name=name or f"{qualname}#{token}", type=qualname)
        finalizer = weakref.finalize(obj, self._collected.add, token)
        finalizer.atexit = False
        self._watched.append((watched, finalizer))
        return obj

    def __len__(self) -> int:
        return len(self._watched)

    def alive(self) -> list[Watched]:
        """Watched objects not finalized yet."""
        return [w for w, f in self._watched if w.token not in self._collected and f.alive]

    def peek(self, watched: Watched) -> Any:
        """Return the live object: a strong reference the caller must drop promptly."""
        for w, finalizer in self._watched:
            if w.token == watched.token:
                info = finalizer.peek()
                return None if info is None else info[0]
        return None

    def close(self) -> None:
        """Forget everything; detached finalizers hold nothing."""
        for _, finalizer in self._watched:
            finalizer.detach()
        self._watched.clear()

    def __iter__(self) -> Iterator[Watched]:
        return iter(w for w, _ in self._watched)
