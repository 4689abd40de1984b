"""Growth the collector cannot see: the project's module-level containers that gain untracked values.

``str``, ``bytes``, ``bytearray``, numbers, and tuples or dicts of those are
not tracked by the collector, so a census of ``gc.get_objects()`` never sees
a test append them to a global list. What it can see cheaply is the length of
the containers the project keeps at module level (lists, dicts, sets, deques,
and the container a module-level ``ContextVar`` holds): read before and after
each checked test, a container that got longer holds more than before.

Only modules of the project under test are watched (files under the
rootdir that are not installed packages): a library's caches are its own
business, and watching every module would cost more than the check. The
watch keeps names, never the containers: it holds nothing a test made.
"""

from __future__ import annotations

import collections
import contextvars
import itertools
import operator
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_leakhunt import growth, hints
from pytest_leakhunt.census import Survivors
from pytest_leakhunt.model import UNTRACKED, Leak
from pytest_leakhunt.registries import MUTABLE_CONTAINERS
from pytest_leakhunt.sites import is_user_file


@dataclass(frozen=True)
class Grown:
    """One watched container that is longer after the test: by how much, and whether it is keyed."""

    module: str
    name: str
    added: int
    keyed: bool


@dataclass
class ContainerWatch:
    """Names of the project's module-level containers, refreshed when modules are imported."""

    rootdir: str
    #: (module name, global name) of each watched global
    _names: list[tuple[str, str]] = field(default_factory=list)
    #: the same names by module, in the same order: each module's are read in one C-level pass
    _groups: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    _modules: int = -1
    _seen: set[str] = field(default_factory=set)

    def lengths(self) -> list[int]:
        """The current length of every watched container (-1 where the name no longer holds one)."""
        self._refresh()
        return _lengths(self._values())

    def grown(self, before: list[int], new: Callable[[], dict[int, int]]) -> list[Grown]:
        """Containers longer now than in *before* (their lengths when the test started) with nothing *new* in them.

        *new()* indexes the census's survivors by id: a container that holds
        one of them got longer with something the census has judged already
        (reported, ignored, explained), so it is not counted twice.
        """
        values = self._values()
        out = []
        for pos in itertools.compress(range(len(before)), map(operator.gt, _lengths(values), before)):
            module, name = self._names[pos]
            container = _container(values[pos])
            if before[pos] >= 0 and not _holds_any(container, new()):
                out.append(Grown(module, name, len(container) - before[pos], isinstance(container, dict)))
        return out

    def named(self, pos: int) -> tuple[str, Any]:
        """``module.name`` of the watched container at *pos* (as in ``lengths()``), and the container now."""
        module, name = self._names[pos]
        namespace = getattr(sys.modules.get(module), "__dict__", None)
        return f"{module}.{name}", _container(namespace.get(name)) if type(namespace) is dict else None

    def _values(self) -> list[Any]:
        """The value of every watched global now (None where its module is gone), in the order of ``_names``."""
        modules = sys.modules
        values: list[Any] = []
        for module, names in self._groups:
            namespace = getattr(modules.get(module), "__dict__", None)
            if type(namespace) is dict:
                values.extend(map(namespace.get, names))
            else:
                values.extend(itertools.repeat(None, len(names)))
        return values

    def _refresh(self) -> None:
        if len(sys.modules) == self._modules:
            return
        self._modules = len(sys.modules)
        root = os.path.normcase(os.path.realpath(self.rootdir)) + os.sep
        for module_name, module in list(sys.modules.items()):
            if module_name in self._seen:
                continue
            self._seen.add(module_name)
            filename = getattr(module, "__file__", None)
            if not isinstance(filename, str) or not _in_project(filename, root):
                continue
            names = [
                name
                for name, value in list(getattr(module, "__dict__", {}).items())
                if _container(value) is not None and not name.startswith("__")
            ]
            if names:
                self._names.extend((module_name, name) for name in names)
                self._groups.append((module_name, tuple(names)))


def _in_project(filename: str, root: str) -> bool:
    # is_user_file resolves the path once per file name and turns away libraries before this resolves it again
    return is_user_file(filename) and os.path.normcase(os.path.realpath(filename)).startswith(root)


def _container(value: Any) -> Any:
    """The container a watched global stands for: itself, or the value of a ``ContextVar``; else None."""
    if isinstance(value, contextvars.ContextVar):
        value = value.get(None)
    if isinstance(value, collections.deque) and value.maxlen is not None:
        return None
    return value if isinstance(value, MUTABLE_CONTAINERS) else None


def _holds_any(container: Any, new: dict[int, int]) -> bool:
    items = [*container.keys(), *container.values()] if isinstance(container, dict) else list(container)
    return not new.keys().isdisjoint(map(id, items))


#: Globals of these exact types are their own container: their length is read without a call of ours.
_PLAIN = frozenset({list, dict, set})


def _lengths(values: list[Any]) -> list[int]:
    """The length of each value's container, -1 where it stands for none (read for every checked test)."""
    return [len(value) if type(value) in _PLAIN else _length(value) for value in values]


def _length(value: Any) -> int:
    container = _container(value)
    return -1 if container is None else len(container)


def untracked_growth(
    probe: growth.Probe,
    probing: bool,
    found: list[Leak],
    survivors: Survivors,
    watch: ContainerWatch,
    lengths: list[int],
) -> list[Leak]:
    """The project's module-level containers that got longer with values the census cannot see.

    A container a reported leak already names is that leak. A list, set
    or deque that got longer grows; a dict with more keys is decided by a
    second run, like any keyed entry (noted in *probe*, unless this is that
    run: *probing*).
    """
    named = [growth.holder_root(leak.retained_by) for leak in found]
    leaks = []
    for grown in watch.grown(lengths, lambda: survivors.index):
        path = f"{grown.module}.{grown.name}"
        if any(growth.same_holder(path, other) for other in named):
            continue
        retention = growth.UNSETTLED if grown.keyed and not probing else growth.GROWS
        leak = Leak(
            type=UNTRACKED,
            count=grown.added,
            shallow_bytes=0,
            retained_bytes=0,
            retained_by=(grown.module, grown.name),
            retention=retention,
        )
        if retention == growth.UNSETTLED:
            probe.add(hints.fingerprint(leak), path, None, None, None, True)
        leaks.append(leak)
    return leaks


__all__ = ["ContainerWatch", "Grown", "untracked_growth"]
