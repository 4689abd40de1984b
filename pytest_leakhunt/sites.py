"""How big a leak is and where it was allocated: flat and retained sizes, tracemalloc sites, user files."""

from __future__ import annotations

import functools
import gc
import os
import sys
import types
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pytest_leakhunt.modglobals import class_attrs
from pytest_leakhunt.registries import ELEMENT_CONTAINERS

if TYPE_CHECKING:
    import tracemalloc


def shallow_size(obj: Any) -> int:
    """pympler's flat size, with its per-type layout kept for types that live as long as their module.

    pympler works a type's layout out again on every call unless told to keep
    it, and keeping it holds the type forever: fine for a class bound to a
    module-level name, not for one a test defined in its body.
    """
    cls = type(obj)
    module = sys.modules.get(cls.__module__)
    keep = module is not None and getattr(module, cls.__qualname__, None) is cls
    asizeof = _asizeof()
    # pympler keeps every class it sizes (in two module-level dicts): a class a test made must not outlive it
    caches = [asizeof._claskeys, asizeof._typedefs]  # noqa: SLF001
    known = [len(cache) for cache in caches]
    size = int(asizeof.flatsize(obj, save=keep))
    for cache, before in zip(caches, known, strict=True):
        if len(cache) > before:
            for key in list(cache)[before:]:
                if not isinstance(key, type):  # a wrapped class object, or its id: the class itself is sized
                    del cache[key]
    return size


@functools.cache
def _asizeof() -> Any:
    """pympler's asizeof, imported once on first use (only leaking tests are sized), not looked up per object."""
    from pympler import asizeof

    return asizeof


def retained_size(objs: Iterable[Any]) -> int:
    """Flat sizes of the objects plus the untracked values only they reference."""
    total = 0
    seen: set[int] = set()
    for obj in objs:
        total += shallow_size(obj)
        for ref in gc.get_referents(obj):
            if gc.is_tracked(ref) or id(ref) in seen or isinstance(ref, type):
                continue
            # one reference from obj, one from get_referents' list, one from `ref`, one for the call
            if sys.getrefcount(ref) <= 4:
                seen.add(id(ref))
                total += shallow_size(ref)
    return total


@functools.cache
def _library_paths() -> tuple[str, ...]:
    """Where the standard library and installed packages live; read on first use (sysconfig is slow to import)."""
    import sysconfig

    paths = {sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return tuple(os.path.normcase(os.path.realpath(p)) for p in paths if p)


_OWN_PATH = os.path.normcase(os.path.dirname(os.path.realpath(__file__)))


@functools.lru_cache(maxsize=4096)
def is_user_file(filename: str) -> bool:
    """Whether *filename* is the project's code: not ours, the standard library's or an installed package's.

    Cached by name (strings only): every check asks it of the same few fixture
    files, and resolving a path costs a system call per directory.
    """
    if not filename or filename.startswith("<"):
        return False
    path = os.path.normcase(os.path.realpath(filename))
    if path.startswith(_OWN_PATH):
        return False
    return not any(path.startswith(lib + os.sep) for lib in _library_paths())


_MANAGED_DICT = 1 << 4  # Py_TPFLAGS_MANAGED_DICT on CPython 3.11


def object_traceback(obj: Any) -> tracemalloc.Traceback | None:
    """``tracemalloc.get_object_traceback``, plus a workaround for CPython 3.11.

    3.11 puts two pointers before the GC header of instances with a managed
    ``__dict__``, and its ``get_object_traceback`` looks one header too late.
    """
    import tracemalloc

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
    import _tracemalloc  # the C half: importing tracemalloc itself loads pickle, slow for a run that does not trace

    if not _tracemalloc.is_tracing():  # started by --leaks-trace, the user, or -X tracemalloc
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


def untracked_holders() -> list[tuple[str, int, int]]:
    """Module-level containers holding values the collector does not track, made while tracing.

    ``(path, values, bytes)``, largest first. Such values (``bytes``, ``str``,
    numbers, tuples of them) are invisible to a census of the collector's
    objects; tracemalloc knows which ones were allocated since it started, so
    the containers of module globals and class attributes are searched for them.
    Costs a pass over those containers' elements: only for repeat mode.
    """
    import tracemalloc

    found: dict[str, list[int]] = {}
    for module_name, module in list(sys.modules.items()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(module, types.ModuleType) or type(namespace) is not dict:
            continue
        for key, value in list(namespace.items()):
            places = [(f"{module_name}.{key}", value)]
            if isinstance(value, type) and value.__module__ == module_name:
                places += [(f"{module_name}.{key}.{attr}", inner) for attr, inner in list(class_attrs(value).items())]
            for path, holder in places:
                if isinstance(holder, dict):
                    elements: Iterable[Any] = [*holder.keys(), *holder.values()]
                elif isinstance(holder, ELEMENT_CONTAINERS):
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
