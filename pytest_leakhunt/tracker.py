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

_NOT_WEAKREFABLE_HINT = (
    "leak_tracker.track() needs an object that can be weakly referenced, and "
    "{type} objects cannot be. Track the object that owns it instead, or use a "
    "subclass (e.g. `class Tracked{name}({name}): pass`); for a class with __slots__, "
    "add '__weakref__' to its slots."
)


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
            raise TypeError(_NOT_WEAKREFABLE_HINT.format(type=repr(cls.__qualname__), name=cls.__name__.capitalize())) from None
        token = next(self._counter)
        qualname = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
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
