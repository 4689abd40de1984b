"""Registries that hold objects by design, and what counts as the harness.

The harness is pytest, pluggy, xdist and this plugin (``HARNESS_MODULES``,
``is_harness_module``, ``is_harness_file``): its objects are bookkeeping.
``KnownHolders`` are the registries of the runtime and the standard library
whose references are never a leak (``re``'s pattern cache, ``sys.last_*``,
the codec search cache, bounded ``lru_cache``s), resolved once and refreshed
on import.
"""

from __future__ import annotations

import codecs
import collections
import functools
import gc
import itertools
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pytest_leakhunt.window import HeapWindow

#: The builtin containers: what they hold decides (``isinstance``: the dicts of ``collections`` count too).
CONTAINERS = (dict, list, tuple, set, frozenset, collections.deque)
#: Those a program fills: a module-level one that gets longer is growth.
MUTABLE_CONTAINERS = (dict, list, set, collections.deque)
#: Containers by exact type whose values are holders too (a frozenset cannot have been filled since).
CONTAINER_TYPES = frozenset({*MUTABLE_CONTAINERS, tuple, collections.OrderedDict, collections.defaultdict})
#: Containers of elements, not of names: what they hold is counted, not named.
ELEMENT_CONTAINERS = tuple(kind for kind in CONTAINERS if kind is not dict)
#: containers whose elements have positions
SEQUENCES = (list, tuple, collections.deque)

#: Module name prefixes whose objects are test-harness bookkeeping.
HARNESS_MODULES = ("_pytest", "pytest", "pluggy", "pytest_leakhunt", "xdist", "execnet", "py")


# (module, attribute, kind): "container" excuses the references it holds,
# "value" excuses the object bound to the name. Missing ones are skipped:
# they differ between CPython versions.
_STDLIB_HOLDERS: tuple[tuple[str, str, str], ...] = (
    ("re", "_cache", "container"),
    ("re", "_cache2", "container"),
    ("linecache", "cache", "container"),
    ("encodings", "_cache", "container"),
    ("_strptime", "_regex_cache", "container"),
    ("_strptime", "_TimeRE_cache", "value"),
    ("urllib.parse", "_parse_cache", "container"),
    ("sys", "path_importer_cache", "container"),
    ("sys", "last_type", "value"),
    ("sys", "last_value", "value"),
    ("sys", "last_traceback", "value"),
    ("sys", "last_exc", "value"),
    ("asyncio.events", "_event_loop_policy", "value"),
    ("platform", "_uname_cache", "value"),
    ("mimetypes", "_db", "value"),
    ("urllib.request", "_opener", "value"),
    ("fnmatch", "_cache", "container"),
    ("zipimport", "_zip_directory_cache", "container"),
    ("sysconfig", "_CONFIG_VARS", "value"),
    ("tempfile", "_name_sequence", "value"),
    ("pkgutil", "_NAME_PATTERN", "value"),  # compiled by the first resolve_name()
    ("posixpath", "_varprog", "value"),  # os.path.expandvars compiles its pattern on first use
    ("posixpath", "_varprogb", "value"),
    ("ntpath", "_varprog", "value"),
    ("ntpath", "_varprogb", "value"),
    # a finished thread's state lock stays until the next start() or join() sweeps it (3.10-3.12)
    ("threading", "_shutdown_locks", "container"),
)


_LRU_TYPE: type = type(functools.lru_cache(maxsize=1)(lambda: None))


_IS_LRU = {_LRU_TYPE}.__contains__


#: a class attribute of these types may be, or wrap, an lru_cache
_MAY_WRAP_LRU = {_LRU_TYPE, classmethod, staticmethod, types.MethodType}.__contains__


def is_bounded_cache(obj: Any) -> bool:
    """An ``lru_cache`` with a maxsize: it evicts by design, it does not grow without bound."""
    return type(obj) is _LRU_TYPE and obj.cache_parameters().get("maxsize") is not None  # type: ignore[attr-defined]


def _lookup(module: str, attr: str) -> tuple[bool, Any]:
    mod = sys.modules.get(module)
    if mod is None or not hasattr(mod, attr):
        return False, None
    return True, getattr(mod, attr)


@dataclass
class KnownHolders:
    """Registries that hold objects by design; resolved once, refreshed on import."""

    containers: list[Any] = field(default_factory=list)
    _seen_modules: set[str] = field(default_factory=set)
    _module_count: int = -1
    _probed: bool = False
    _codec_probed: bool = False
    _ids: set[int] = field(default_factory=set)
    _ids_for: int = -1
    #: stdlib modules whose classes have not been looked into for cached methods yet
    _classes_unseen: list[tuple[str, Any]] = field(default_factory=list)
    _class_caches: list[Any] = field(default_factory=list)

    def refresh(self) -> None:
        """Pick up caches of stdlib modules imported since the last call (cheap when none)."""
        if len(sys.modules) == self._module_count:
            return
        self._module_count = len(sys.modules)
        if not self._probed:
            self._probed = True
            self.containers.extend(_struct_caches())
        stdlib: frozenset[str] = getattr(sys, "stdlib_module_names", frozenset())
        for name, module in list(sys.modules.items()):
            if name not in self._seen_modules and module is not None:
                self._seen_modules.add(name)
                self._scan(name, module, name.split(".")[0] in stdlib)
        self._add_stdlib_containers()

    def _scan(self, name: str, module: Any, in_stdlib: bool) -> None:
        """A newly imported module's LRU caches: the runtime's own, and bounded ones anywhere (they evict)."""
        try:
            values = list(vars(module).values())
        except TypeError:
            return
        # Picked out at C speed: a session imports hundreds of modules and tens of thousands of names.
        for value in itertools.compress(values, map(_IS_LRU, map(type, values))):
            if in_stdlib or is_bounded_cache(value):
                self._add_lru(value)
        if in_stdlib:
            self._classes_unseen.append((name, module))
        if name == "typing":
            for clear in getattr(module, "_cleanups", ()):
                owner = getattr(clear, "__self__", None)
                if type(owner) is _LRU_TYPE:
                    self._add_lru(owner)

    def _add_stdlib_containers(self) -> None:
        """The logging manager and the stdlib's module-level registries, once their modules are imported."""
        logging = sys.modules.get("logging")
        if logging is not None and not any(c is logging.Logger.manager for c in self.containers):
            self.containers.append(logging.Logger.manager)
        for module_name, attr, kind in _STDLIB_HOLDERS:
            if kind != "container":
                continue
            found, value = _lookup(module_name, attr)
            if found and not any(value is c for c in self.containers):
                self.containers.append(value)

    def class_caches(self) -> list[Any]:
        """The cached methods of stdlib classes (importlib.metadata's FastPath) and their cache dicts.

        Looking into every class of every stdlib module costs milliseconds and
        is rarely needed, so it waits until some object is left unexplained.
        Kept apart from ``containers``: learning them must not make the session
        rebuild the harness state it derived from those.
        """
        unseen, self._classes_unseen = self._classes_unseen, []
        for name, module in unseen:
            values = list(vars(module).values())
            for value in itertools.compress(values, map(isinstance, values, itertools.repeat(type))):
                if value.__module__ != name:
                    continue
                attrs = list(vars(value).values())
                for attr in itertools.compress(attrs, map(_MAY_WRAP_LRU, map(type, attrs))):
                    wrapped = getattr(attr, "__func__", attr)
                    if type(wrapped) is _LRU_TYPE:
                        self._add_lru(wrapped, self._class_caches)
        return self._class_caches

    def adopt(self, holder: Any) -> None:
        """A registry found the slow way (a bounded cache on some instance): explain it cheaply next time."""
        if type(holder) is _LRU_TYPE:
            self._add_lru(holder)
        elif not any(holder is c for c in self.containers):
            self.containers.append(holder)

    def ids(self) -> set[int]:
        count = len(self.containers) + len(self._class_caches)
        if self._ids_for != count:
            self._ids = {id(c) for c in (*self.containers, *self._class_caches)}
            self._ids_for = count
        return self._ids

    def _add_lru(self, wrapper: Any, into: list[Any] | None = None) -> None:
        into = self.containers if into is None else into
        into.append(wrapper)
        # the cache dict itself holds the keys
        into.extend(
            r for r in gc.get_referents(wrapper) if type(r) is dict and r is not getattr(wrapper, "__dict__", None)
        )

    def values(self) -> Iterator[Any]:
        for module, attr, kind in _STDLIB_HOLDERS:
            if kind == "value":
                found, value = _lookup(module, attr)
                if found and value is not None:
                    yield value

    def codec_cache(self, window: HeapWindow) -> list[Any]:
        """The codec search cache, found the first time a new ``CodecInfo`` needs explaining.

        It lives in C state with no Python name; asking who holds a known entry
        finds it, at the price of a walk of the whole (unfrozen) heap, so only
        tests that looked up a codec for the first time pay it, once.
        """
        if self._codec_probed:
            return []
        self._codec_probed = True
        window.thaw()  # get_referrers does not see frozen objects, and the cache is old
        entry = codecs.lookup("utf-8")
        found = [r for r in gc.get_referrers(entry) if type(r) is dict and "utf_8" in r]
        self.containers.extend(found)
        return found


def _struct_caches() -> list[Any]:
    """The struct module's format cache: C state, reachable from the module object."""
    struct_mod = sys.modules.get("_struct")
    if struct_mod is None:
        return []
    return [r for r in gc.get_referents(struct_mod) if type(r) is dict]


def is_harness_module(module: object) -> bool:
    """Whether *module* (a ``__module__`` value, which need not be a string: see module_of) is pytest's or ours."""
    return type(module) is str and module.split(".", 1)[0] in HARNESS_MODULES
