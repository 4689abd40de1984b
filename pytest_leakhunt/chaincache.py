"""Retainer chains already found this session: the same holder keeping a new object needs no new search."""

from __future__ import annotations

import types
from typing import Any

from pytest_leakhunt.census import holds, links_hold
from pytest_leakhunt.registries import SEQUENCES


class ChainCache:
    """Retainer chains already found this session, reused when the same holder keeps a new object.

    The same leak usually repeats test after test (a listener list, a cache);
    walking the whole heap again for each would make a leaky suite crawl. An
    entry keeps the chain *without* its last element (holders, which are
    long-lived program state, never the leaked objects) and is trusted only
    after every link is checked again.
    """

    def __init__(self, limit: int = 64) -> None:
        self._entries: dict[str, list[list[Any]]] = {}
        self._limit = limit
        self._size = 0

    def lookup(self, obj: Any, type_name: str) -> list[Any] | None:
        """A verified chain [module, ..., holder, obj], or None.

        Chains that ended at an object of the same type are tried first; then
        those whose holder is a namespace (an object's attributes, a short
        dict), which keeps values of any type: a configuration object whose
        slots each test fills needs one search, not one per slot and type.
        """
        for prefix in self._entries.get(type_name, ()):
            if holds(prefix[-1], obj) and links_hold(prefix):
                return [*prefix, obj]
        for name, prefixes in self._entries.items():
            for prefix in prefixes if name != type_name else ():
                if _namespace(prefix[-1]) and holds(prefix[-1], obj) and links_hold(prefix):
                    return [*prefix, obj]
        return None

    def store(self, chain: list[Any], type_name: str) -> None:
        if len(chain) < 2 or not isinstance(chain[0], types.ModuleType) or self._size >= self._limit:
            return
        prefix = chain[:-1]
        entries = self._entries.setdefault(type_name, [])
        if not any(len(p) == len(prefix) and all(a is b for a, b in zip(p, prefix)) for p in entries):
            entries.append(prefix)
            self._size += 1

    def clear(self) -> None:
        self._entries.clear()
        self._size = 0


#: Longest dict tried as a namespace by ``ChainCache.lookup``: a cache that grows test after test is not one.
_NAMESPACE_LEN = 64


def _namespace(holder: Any) -> bool:
    """Whether *holder* keeps values under names: a short dict, or an instance with attributes of its own."""
    if isinstance(holder, dict):
        return len(holder) <= _NAMESPACE_LEN
    if isinstance(holder, (*SEQUENCES, set, frozenset, type, types.ModuleType)):
        return False
    return type(holder).__dictoffset__ != 0  # has attributes of its own (read without making its __dict__)
