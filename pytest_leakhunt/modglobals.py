"""An index of what module globals reach in a link or two, so most chains need no walk of the heap."""

from __future__ import annotations

import gc
import sys
import types
from collections.abc import Iterable
from typing import Any

from pytest_leakhunt.census import attribute_dict, holds, links_hold
from pytest_leakhunt.registries import is_harness_module


class ModuleGlobals:
    """Objects a module global reaches in a link or two, found without a walk of the heap.

    ``gc.get_referrers`` compares every reference in the heap (a million objects:
    tens of milliseconds per level), while module namespaces, the attribute
    dicts of the classes they define, the closures of their functions and the
    contents of small containers and instances bound there hold a few tens of
    thousands; most leaks sit a link or two below one of those. The index
    covers each module once, when it first shows up in ``sys.modules`` (a suite
    imports lazily: rebuilding it for every new module cost tens of
    milliseconds each time), and keeps names, never objects; a path it offers
    is resolved again and checked link by link, since programs rebind names
    and addresses are reused.
    """

    #: Containers and instances bigger than this are not looked into (a million-entry global list).
    SMALL = 256

    def __init__(self) -> None:
        #: id of a held object -> (module name, global name, steps from the global to it)
        self._paths: dict[int, tuple[str, str, tuple[tuple[str, Any], ...]]] = {}
        self._indexed: set[str] = set()
        self._modules = -1
        #: id of a module's namespace -> the module's name, and the size of ``sys.modules`` when it was made
        self._owners: dict[int, str] = {}
        self._owned = -1

    def prefix(self, obj: Any, likely: Iterable[str] = ()) -> list[Any] | None:
        """``[module, namespace, ...]`` down to the object that references *obj*, verified; else None.

        The *likely* modules (the test's, the leaked type's) are indexed and
        looked at first: indexing every module takes tens of milliseconds, and
        most leaks sit in one of those. The rest is indexed on a miss.
        """
        self._add_modules(likely)
        path = self._paths.get(id(obj))
        if path is None and len(sys.modules) != self._modules:
            self._add_new_modules()
            path = self._paths.get(id(obj))
        if path is None:
            return None
        chain = _resolve(*path)
        if chain is None or not links_hold([*chain, obj]):
            return None
        return chain

    def module_owning(self, namespace: Any) -> types.ModuleType | None:
        """The module whose globals *namespace* is: a chain that reaches a namespace needs no walk for the module."""
        if type(namespace) is not dict:
            return None
        if id(namespace) not in self._owners and len(sys.modules) != self._owned:
            self._owned = len(sys.modules)
            self._owners = {id(_namespace(m)): name for name, m in list(sys.modules.items())}
        module = sys.modules.get(self._owners.get(id(namespace), ""))
        return module if _namespace(module) is namespace else None

    def clear(self) -> None:
        self._paths.clear()
        self._indexed.clear()
        self._modules = -1
        self._owners.clear()
        self._owned = -1

    def _add_new_modules(self) -> None:
        self._modules = len(sys.modules)
        self._add_modules(list(sys.modules))

    def _add_modules(self, names: Iterable[str]) -> None:
        """Index the globals of modules not seen yet: direct globals first (the shortest chains), then a link below."""
        namespaces = self._namespaces(names)
        paths = self._paths
        for name, items in namespaces:
            for key, value in items:
                if type(value) not in ATOMS:
                    known = paths.get(id(value))
                    if known is None or known[2]:
                        paths[id(value)] = (name, key, ())
        seen: set[int] = set()
        for name, items in namespaces:
            for key, value in items:
                if id(value) not in seen and type(value) not in ATOMS:
                    seen.add(id(value))
                    self._add_below(value, name, key)

    def _namespaces(self, names: Iterable[str]) -> list[tuple[str, list[tuple[str, Any]]]]:
        """The globals of each module not indexed yet; pytest's own are not where a test's objects are kept."""
        namespaces = []
        for name in names:
            if name in self._indexed or name not in sys.modules:
                continue
            self._indexed.add(name)
            module = sys.modules[name]
            if (
                not is_harness_module(name)
                and isinstance(module, types.ModuleType)
                and type(getattr(module, "__dict__", None)) is dict
            ):
                namespaces.append((name, list(vars(module).items())))
        return namespaces

    def _add_below(self, value: Any, name: str, key: str) -> None:
        """A global's next link: a class's attributes, a function's closure cells, a container's items."""
        if isinstance(value, type):
            for attr, inner in list(class_attrs(value).items()):
                self._add(inner, name, key, (("class", attr),))
        elif type(value) is types.FunctionType and value.__closure__:
            for position, cell in enumerate(value.__closure__):
                try:
                    contents = cell.cell_contents
                except ValueError:  # an empty cell
                    continue
                self._add(contents, name, key, (("closure", position),))
        else:
            self._add_contents(value, name, key, ())

    def _add(self, value: Any, name: str, key: str, steps: tuple[tuple[str, Any], ...]) -> None:
        if type(value) in ATOMS:
            return
        self._paths.setdefault(id(value), (name, key, steps))
        self._add_contents(value, name, key, steps)

    def _add_contents(self, value: Any, name: str, key: str, steps: tuple[tuple[str, Any], ...]) -> None:
        """One more link: the items of a small list, tuple or dict, the attributes of an instance."""
        kind = type(value)
        if kind in (list, tuple):
            entries: Iterable[tuple[Any, Any]] = enumerate(value) if len(value) <= self.SMALL else ()
            step = "item"
        elif kind is dict:
            entries = list(value.items()) if len(value) <= self.SMALL else ()
            step = "item"
        elif isinstance(value, (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)):
            return
        else:
            attrs = attribute_dict(value)
            entries = list(attrs.items()) if attrs is not None and len(attrs) <= self.SMALL else ()
            step = "attr"
            if attrs is not None:  # what a test adds to an instance's attributes is held by that dict
                self._paths.setdefault(id(attrs), (name, key, (*steps, ("dict", ""))))
        paths = self._paths
        for inner_key, inner in entries:
            if type(inner) not in ATOMS and type(inner_key) in (str, int):
                paths.setdefault(id(inner), (name, key, (*steps, (step, inner_key))))


def _namespace(module: Any) -> dict[str, Any] | None:
    """A module's globals, read without running code of an odd entry of ``sys.modules``; None for anything else."""
    if not issubclass(type(module), types.ModuleType):
        return None
    try:
        namespace = object.__getattribute__(module, "__dict__")
    except Exception:  # noqa: BLE001 - a module object without its dict
        return None
    return namespace if type(namespace) is dict else None


ATOMS = frozenset({str, bytes, int, float, complex, bool, type(None)})


def class_attrs(cls: type) -> dict[str, Any]:
    """The dict a class really holds (``vars(cls)`` is a read-only proxy of it)."""
    return next((r for r in gc.get_referents(cls) if type(r) is dict and r.get("__module__") == cls.__module__), {})


def _resolve(module_name: str, key: str, steps: tuple[tuple[str, Any], ...]) -> list[Any] | None:
    """The objects from the module down to the one that holds the last step's value.

    One branch per kind of step the index records (a class attribute, a
    closure cell, an instance attribute, a container item): each checks that
    the link still holds, since programs rebind names and reuse addresses.
    """
    module = sys.modules.get(module_name)
    namespace = getattr(module, "__dict__", None)
    if type(namespace) is not dict or key not in namespace:
        return None
    chain: list[Any] = [module, namespace]
    value = namespace[key]
    for kind, inner in steps:
        if kind == "class" and isinstance(value, type):
            members = class_attrs(value)
            if inner not in members:
                return None
            chain += [value, members]
            value = members[inner]
        elif kind == "closure" and type(value) is types.FunctionType:
            closure = value.__closure__
            if closure is None or inner >= len(closure):
                return None
            chain += [value, closure, closure[inner]]
            try:
                value = closure[inner].cell_contents
            except ValueError:
                return None
        elif kind == "dict":
            attrs = attribute_dict(value)
            if attrs is None:
                return None
            chain.append(value)
            value = attrs
        elif kind == "attr":
            attrs = attribute_dict(value)
            if attrs is None or inner not in attrs:
                return None
            # an instance reports its attributes itself or through its __dict__, by version
            chain += [value] if holds(value, attrs[inner]) else [value, attrs]
            value = attrs[inner]
        elif (
            kind == "item"
            and type(value) is dict
            and inner in value
            or kind == "item"
            and type(value) in (list, tuple)
            and isinstance(inner, int)
            and inner < len(value)
        ):
            chain.append(value)
            value = value[inner]
        else:
            return None
    return chain
