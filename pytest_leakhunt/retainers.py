"""Explain a leak: who holds it (shortest chain from a module), how big, allocated where.

Runs only for tests that leak, with the heap unfrozen: ``gc.get_referrers``
cannot see frozen referrers. Every function returns plain data; callers drop
the objects they passed in.
"""

from __future__ import annotations

import collections
import gc
import os
import sys
import sysconfig
import tracemalloc
import types
import weakref
from typing import Any, Iterable

from pympler import asizeof

from pytest_leakhunt.census import _LRU_TYPE, is_harness_module, qualified_type

#: Levels searched upward from a leaked object.
_MAX_DEPTH = 8
#: Objects followed per level. ``gc.get_referrers(*objs)`` compares every
#: reference in the heap with each of its arguments, so a wide level is costly.
_MAX_WIDTH = 32


def find_chains(targets: list[Any], ignore: Iterable[Any] = (), module_globals: ModuleGlobals | None = None) -> list[list[Any]]:
    """For each target, the shortest chain from a module ([module, ..., target]); [target] if none.

    A level-by-level search from all targets at once: one ``gc.get_referrers``
    call (a walk of the heap) per depth for the whole test. objgraph's
    ``find_backref_chain`` walks the heap once per object it visits and collects
    garbage first, which took minutes on a suite with a million-object heap.
    A level wider than ``_MAX_WIDTH`` is cut to that width: the chain found may
    then not be the shortest, but the search stays bounded.
    """
    skip = {id(x) for x in ignore}
    frame: types.FrameType | None = sys._getframe()
    while frame is not None:
        skip.add(id(frame))
        frame = frame.f_back
    del frame
    parent: dict[int, Any] = {id(t): None for t in targets}
    found: dict[int, list[Any]] = {}
    frontier: list[Any] = list(targets)
    skip.update((id(parent), id(skip), id(found), id(targets)))
    globals_of = module_globals if module_globals is not None else ModuleGlobals()
    try:
        for _ in range(_MAX_DEPTH):
            if len(found) == len(targets) or not frontier:
                break
            del frontier[_MAX_WIDTH:]
            skip.add(id(frontier))
            # Reached something a module global holds: no need to walk the heap for the last links.
            for obj in frontier:
                prefix = globals_of.prefix(obj)
                if prefix is not None:
                    chain = [*prefix, obj]
                    while parent[id(chain[-1])] is not None:
                        chain.append(parent[id(chain[-1])])
                    found.setdefault(id(chain[-1]), chain)
                    del chain
            obj = prefix = None
            if len(found) == len(targets):
                break
            wanted = {id(o) for o in frontier}
            referrers = gc.get_referrers(*frontier)
            skip.add(id(referrers))
            following: list[Any] = []
            skip.add(id(following))
            for holder in referrers:
                key = id(holder)
                if key in skip or key in parent:
                    continue
                if is_harness_module(type(holder).__module__):
                    continue  # pytest's own state is not a retention path worth naming
                link = next((ref for ref in gc.get_referents(holder) if id(ref) in wanted), None)
                if link is None or link is type(holder):
                    continue  # every instance refers to its class: not what keeps a class alive
                parent[key] = link
                if isinstance(holder, types.ModuleType):
                    chain = [holder]
                    while parent[id(chain[-1])] is not None:
                        chain.append(parent[id(chain[-1])])
                    found.setdefault(id(chain[-1]), chain)
                    del chain
                else:
                    following.append(holder)
            del referrers
            following.sort(key=_holder_rank)
            frontier = following
        del frontier
        return [_prefer_application_module(found.get(id(t), [t])) for t in targets]
    finally:
        parent.clear()
        found.clear()
        skip.clear()
        if module_globals is None:
            globals_of.clear()


class ModuleGlobals:
    """Objects bound to a module-level name, one or two links down, found without a walk of the heap.

    ``gc.get_referrers`` compares every reference in the heap (a million objects:
    tens of milliseconds per level), while module namespaces, the attribute
    dicts of the classes they define and the closures of their functions hold a
    few tens of thousands; most leaks sit a link or two below one of those. The
    index is built once per set of imported modules and keeps names, never
    objects; a path it offers is resolved again and checked link by link, since
    programs rebind names and addresses are reused.
    """

    def __init__(self) -> None:
        #: id of a held object -> (module name, global name, "global" | "class" | "closure", attribute or cell)
        self._paths: dict[int, tuple[str, str, str, str | int]] = {}
        self._modules = -1

    def prefix(self, obj: Any) -> list[Any] | None:
        """``[module, namespace, ...]`` down to the object that references *obj*, verified; else None."""
        if len(sys.modules) != self._modules:
            self._build()
        path = self._paths.get(id(obj))
        if path is None:
            return None
        chain = _resolve(*path)
        if chain is None or not _links_hold([*chain, obj]):
            return None
        return chain

    def clear(self) -> None:
        self._paths.clear()
        self._modules = -1

    def _build(self) -> None:
        self._modules = len(sys.modules)
        paths: dict[int, tuple[str, str, str, str | int]] = {}
        namespaces = [
            (name, vars(module))
            for name, module in list(sys.modules.items())
            if isinstance(module, types.ModuleType) and type(getattr(module, "__dict__", None)) is dict
        ]
        for name, namespace in namespaces:  # direct globals first: they make the shortest chains
            for key, value in list(namespace.items()):
                paths.setdefault(id(value), (name, key, "global", ""))
        seen: set[int] = set()
        for name, namespace in namespaces:
            for key, value in list(namespace.items()):
                if id(value) in seen:
                    continue
                seen.add(id(value))
                if isinstance(value, type):
                    for attr, inner in list(_class_attrs(value).items()):
                        paths.setdefault(id(inner), (name, key, "class", attr))
                elif type(value) is types.FunctionType and value.__closure__:
                    for position, cell in enumerate(value.__closure__):
                        try:
                            contents = cell.cell_contents
                        except ValueError:  # an empty cell
                            continue
                        paths.setdefault(id(contents), (name, key, "closure", position))
        self._paths = paths


def _class_attrs(cls: type) -> dict[str, Any]:
    """The dict a class really holds (``vars(cls)`` is a read-only proxy of it)."""
    return next((r for r in gc.get_referents(cls) if type(r) is dict and r.get("__module__") == cls.__module__), {})


def _resolve(module_name: str, key: str, kind: str, inner: str | int) -> list[Any] | None:
    module = sys.modules.get(module_name)
    namespace = getattr(module, "__dict__", None)
    if type(namespace) is not dict or key not in namespace:
        return None
    if kind == "global":
        return [module, namespace]
    value = namespace[key]
    if kind == "class" and isinstance(value, type):
        attrs = _class_attrs(value)
        return [module, namespace, value, attrs] if inner in attrs else None
    closure = getattr(value, "__closure__", None)
    if kind == "closure" and isinstance(inner, int) and closure is not None and inner < len(closure):
        return [module, namespace, value, closure, closure[inner]]
    return None


def _holder_rank(holder: Any) -> int:
    """Containers and namespaces first: they are where program state keeps things."""
    if isinstance(holder, (dict, list, tuple, set, frozenset, types.CellType)):
        return 0
    if isinstance(holder, (type, types.FunctionType, types.MethodType)):
        return 1
    return 2


def find_chain(obj: Any, ignore: Iterable[Any] = (), module_globals: ModuleGlobals | None = None) -> list[Any]:
    """Shortest reference chain from a module to *obj*; [obj] if none."""
    return find_chains([obj], ignore, module_globals)[0]


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
        """A verified chain [module, ..., holder, obj], or None."""
        for prefix in self._entries.get(type_name, ()):
            if any(ref is obj for ref in gc.get_referents(prefix[-1])) and _links_hold(prefix):
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


def _links_hold(prefix: list[Any]) -> bool:
    for parent, child in zip(prefix, prefix[1:]):
        if not any(ref is child for ref in gc.get_referents(parent)):
            return False
    return True


def _is_test_module(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return last.startswith("test_") or last.endswith("_test") or last == "conftest"


def _prefer_application_module(chain: list[Any]) -> list[Any]:
    """Start at the module that owns a global rather than a test that imported it.

    ``from shop.events import bus`` in a test binds the same object in two
    namespaces, and both chains are equally short; the application's reads better.
    """
    if len(chain) < 3 or not isinstance(chain[0], types.ModuleType) or not _is_test_module(chain[0].__name__):
        return chain
    target = chain[2]
    for name, module in list(sys.modules.items()):
        if module is None or _is_test_module(name) or name.split(".")[0] in ("__main__", "sys"):
            continue
        namespace = getattr(module, "__dict__", None)
        if isinstance(namespace, dict) and any(value is target for value in namespace.values()):
            return [module, namespace, *chain[2:]]
    return chain


def describe_chain(chain: list[Any], ignore: Iterable[Any] = ()) -> tuple[str, ...]:
    """Readable segments for a chain: ``("shop.orders", "OrderService", "history", "[0]")``."""
    if len(chain) < 2 or not isinstance(chain[0], types.ModuleType):
        return _orphan_segments(chain[-1], [*ignore, chain]) if chain else ("<unknown>",)
    segments = [chain[0].__name__]
    namespaces = {id(vars(chain[0]))}
    prev: Any = chain[0]
    for pos in range(1, len(chain)):
        child = chain[pos]
        label = _edge(prev, child, namespaces, chain[pos - 2] if pos >= 2 else None)
        if isinstance(child, dict) and _owns_dict(prev, child):
            namespaces.add(id(child))
        if label:
            segments.append(label)
        prev = child
    return tuple(segments)


def _owns_dict(owner: Any, child: dict[Any, Any]) -> bool:
    if isinstance(owner, type):
        # vars(cls) is a read-only proxy of the very dict the class holds
        return child.get("__module__", None) == owner.__dict__.get("__module__", None) and child == owner.__dict__
    try:
        return vars(owner) is child or getattr(owner, "__dict__", None) is child
    except TypeError:
        return False


def _edge(parent: Any, child: Any, namespaces: set[int], grandparent: Any) -> str:
    """The label of the reference parent -> child, '' when it is structural (obj -> its __dict__)."""
    if isinstance(child, dict) and _owns_dict(parent, child):
        return ""
    if isinstance(parent, dict):
        for key, value in parent.items():
            if value is child:
                if id(parent) in namespaces and isinstance(key, str):
                    return key
                return f"[{_short_repr(key)}]"
        return "<key>"
    if isinstance(parent, types.FunctionType) and child is parent.__closure__:
        return ""
    if isinstance(parent, (list, tuple)):
        if isinstance(parent, tuple) and isinstance(grandparent, types.FunctionType) and grandparent.__closure__ is parent:
            names = grandparent.__code__.co_freevars
            for name, cell in zip(names, parent):
                if cell is child:
                    return f"<closure {name}>"
            return ""
        for i, value in enumerate(parent):
            if value is child:
                return f"[{i}]"
        return "<item>"
    if isinstance(parent, (set, frozenset)):
        return "<member>"
    if isinstance(parent, types.CellType):
        return ""
    if type(parent) is _LRU_TYPE:
        return "<lru_cache>"
    if isinstance(parent, types.MethodType):
        return "__self__" if parent.__self__ is child else "__func__"
    if isinstance(child, types.CellType) and isinstance(parent, types.FunctionType):
        names = parent.__code__.co_freevars
        for name, cell in zip(names, parent.__closure__ or ()):
            if cell is child:
                return f"<closure {name}>"
    try:
        attrs = vars(parent)
    except TypeError:
        attrs = {}
    for key, value in attrs.items():
        if value is child:
            return str(key)
    for name in getattr(type(parent), "__slots__", ()):
        if getattr(parent, name, None) is child:
            return name
    return f"<{type(parent).__name__}>"


def _short_repr(key: Any) -> str:
    if isinstance(key, weakref.ref):
        target = key()
        return f"<weakref to {type(target).__qualname__}>" if target is not None else "<dead weakref>"
    text = repr(key)
    return text if len(text) <= 40 else text[:37] + "..."


def _orphan_segments(obj: Any, ignore: Iterable[Any]) -> tuple[str, ...]:
    """No module reaches it: name its direct holders instead (a thread's stack, C state)."""
    skip = {id(x) for x in ignore}
    holders = [r for r in gc.get_referrers(obj) if not isinstance(r, types.FrameType) and id(r) not in skip]
    names = sorted({f"<{type(r).__name__}>" for r in holders if type(r) is not list or r})
    return tuple(names[:1]) if names else ("<held outside Python objects: C state or a thread's stack>",)


def shallow_size(obj: Any) -> int:
    return int(asizeof.flatsize(obj))


def retained_size(objs: Iterable[Any]) -> int:
    """Flat sizes of the objects plus the untracked values only they reference."""
    total = 0
    seen: set[int] = set()
    for obj in objs:
        total += asizeof.flatsize(obj)
        for ref in gc.get_referents(obj):
            if gc.is_tracked(ref) or id(ref) in seen or isinstance(ref, type):
                continue
            # one reference from obj, one from get_referents' list, one from `ref`, one for the call
            if sys.getrefcount(ref) <= 4:
                seen.add(id(ref))
                total += asizeof.flatsize(ref)
    return total


_LIBRARY_PATHS = tuple(
    os.path.normcase(os.path.realpath(p))
    for p in {sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    if p
)
_OWN_PATH = os.path.normcase(os.path.dirname(os.path.realpath(__file__)))


def is_user_file(filename: str) -> bool:
    if not filename or filename.startswith("<"):
        return False
    path = os.path.normcase(os.path.realpath(filename))
    if path.startswith(_OWN_PATH):
        return False
    return not any(path.startswith(lib + os.sep) for lib in _LIBRARY_PATHS)


_MANAGED_DICT = 1 << 4  # Py_TPFLAGS_MANAGED_DICT on CPython 3.11


def object_traceback(obj: Any) -> tracemalloc.Traceback | None:
    """``tracemalloc.get_object_traceback``, plus a workaround for CPython 3.11.

    3.11 puts two pointers before the GC header of instances with a managed
    ``__dict__``, and its ``get_object_traceback`` looks one header too late.
    """
    trace = tracemalloc.get_object_traceback(obj)
    if trace is not None or sys.version_info[:2] != (3, 11) or not type(obj).__flags__ & _MANAGED_DICT:
        return trace
    try:
        import ctypes

        lookup = ctypes.pythonapi._PyTraceMalloc_GetTraceback
        lookup.restype = ctypes.py_object
        lookup.argtypes = [ctypes.c_uint, ctypes.c_size_t]
        raw = lookup(0, id(obj) - 4 * ctypes.sizeof(ctypes.c_void_p))
    except (AttributeError, OSError, ImportError):
        return None
    return tracemalloc.Traceback(raw) if raw else None


def allocation_site(obj: Any, rootdir: str) -> str | None:
    """``file:line`` of the innermost user frame that allocated *obj*, if tracemalloc saw it."""
    if not tracemalloc.is_tracing():
        return None
    trace = object_traceback(obj)
    if trace is None:
        return None
    frames = list(trace)  # oldest first
    chosen = next((f for f in reversed(frames) if is_user_file(f.filename)), frames[-1] if frames else None)
    if chosen is None:
        return None
    return site(chosen.filename, chosen.lineno, rootdir)


def site(filename: str, lineno: int, rootdir: str) -> str:
    """``file:line``, the file relative to *rootdir* when it lies inside it."""
    try:
        rel = os.path.relpath(filename, rootdir)
        if not rel.startswith(".."):
            filename = rel
    except ValueError:
        pass
    return f"{filename.replace(os.sep, '/')}:{lineno}"


__all__ = [
    "allocation_site",
    "describe_chain",
    "find_chain",
    "qualified_type",
    "retained_size",
    "shallow_size",
]


_ELEMENT_CONTAINERS = (list, tuple, set, frozenset, collections.deque)


def untracked_holders() -> list[tuple[str, int, int]]:
    """Module-level containers holding values the collector does not track, made while tracing.

    ``(path, values, bytes)``, largest first. Such values (``bytes``, ``str``,
    numbers, tuples of them) are invisible to a census of the collector's
    objects; tracemalloc knows which ones were allocated since it started, so
    the containers of module globals and class attributes are searched for them.
    Costs a pass over those containers' elements: only for repeat mode.
    """
    found: dict[str, list[int]] = {}
    for module_name, module in list(sys.modules.items()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(module, types.ModuleType) or type(namespace) is not dict:
            continue
        for key, value in list(namespace.items()):
            places = [(f"{module_name}.{key}", value)]
            if isinstance(value, type) and value.__module__ == module_name:
                places += [(f"{module_name}.{key}.{attr}", inner) for attr, inner in list(_class_attrs(value).items())]
            for path, holder in places:
                if isinstance(holder, dict):
                    elements: Iterable[Any] = [*holder.keys(), *holder.values()]
                elif isinstance(holder, _ELEMENT_CONTAINERS):
                    elements = list(holder)
                else:
                    continue
                for element in elements:
                    if not gc.is_tracked(element) and tracemalloc.get_object_traceback(element) is not None:
                        entry = found.setdefault(path, [0, 0])
                        entry[0] += 1
                        entry[1] += sys.getsizeof(element)
            places.clear()
    return sorted(((path, n, size) for path, (n, size) in found.items()), key=lambda item: -item[2])
