"""Resources a test started and left running: threads, asyncio tasks, child processes, file descriptors.

Threads, tasks and processes are found among the test's surviving objects (a
running thread's ``Thread``, a pending ``Task``, a ``Popen`` whose process has
not exited), so they cost nothing when the test made none. File descriptors are
compared with the list taken before setup, which costs a read of
``/proc/self/fd`` twice per test; that is why ``fds`` is not on by default.
Results are plain ``Leak`` data; nothing here keeps the objects it looks at.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from pytest_leakhunt.model import RESOURCE_KINDS, Leak, LeakKind
from pytest_leakhunt.naming import type_name

KINDS = ("threads", "tasks", "processes", "fds")
DEFAULT_KINDS = frozenset({"threads", "tasks", "processes"})
#: Leak.kind for each resource kind
LEAK_KIND = {"threads": "thread", "tasks": "task", "processes": "process", "fds": "fd"}
assert set(LEAK_KIND.values()) == RESOURCE_KINDS
#: How long threads that are just finishing get to end before they count as left running.
GRACE_SECONDS = 0.1

_FD_DIRS = ("/proc/self/fd", "/dev/fd")


def running(objs: list[Any], kinds: frozenset[str], types_present: set[type]) -> tuple[list[Leak], set[int]]:
    """Threads, tasks and processes among *objs* (the test's survivors) that are still going.

    Also returns their ids, so the object census can leave alone what belongs
    to them (a pending task's loop handle, a running thread's arguments).
    *types_present* is the survivors' set of types, which the census computes anyway.
    """
    found: list[Leak] = []
    ids: set[int] = set()
    # A handful of distinct types, each judged once per session: the common case costs two set operations.
    # set.difference(dict) looks up each of the few types; `set - dict.keys()` went through every type ever met.
    for cls in types_present.difference(_KIND_OF):
        kind = _KIND_OF[cls] = _kind_of(cls)
        if kind is not None:
            _OF_SOME_KIND.add(cls)
    if types_present.isdisjoint(_OF_SOME_KIND):
        return found, ids
    present = set(map(_KIND_OF.__getitem__, types_present))
    for kind, finder in (("threads", _threads), ("tasks", _tasks), ("processes", _processes)):
        if kind in kinds and kind in present:
            for obj_id, leak in finder(objs):
                ids.add(obj_id)
                found.append(leak)
    return found, ids


#: (module, class) whose instances each finder looks for; a module not imported yet means none exist
_BASES = {
    "threads": (("threading", "Thread"),),
    "tasks": (("asyncio", "Task"),),
    "processes": (("subprocess", "Popen"), ("multiprocessing.process", "BaseProcess")),
}


#: Which finder cares about instances of a type, judged once per type (a base's module is imported before
#: any instance exists, so a type judged before that import has no instance of interest either).
def own_caches() -> list[Any]:
    """The kind cache, keyed by type (see ``census.own_caches``)."""
    return [_KIND_OF, _OF_SOME_KIND]


def forget_types(classes: list[type]) -> None:
    """Drop classes made during a test from the kind cache (see ``census.forget_new_types``)."""
    for cls in classes:
        _KIND_OF.pop(cls, None)
        _OF_SOME_KIND.discard(cls)


_KIND_OF: dict[type, str | None] = {}
#: The types in _KIND_OF that some finder cares about.
_OF_SOME_KIND: set[type] = set()


def _kind_of(cls: type) -> str | None:
    for name, bases in _BASES.items():
        classes = tuple(getattr(sys.modules[module], attr) for module, attr in bases if module in sys.modules)
        if classes and issubclass(cls, classes):
            return name
    return None


def _threads(objs: list[Any]) -> list[tuple[int, Leak]]:
    threading = sys.modules.get("threading")
    if threading is None:
        return []
    alive = [
        o for o in objs if isinstance(o, threading.Thread) and o.is_alive() and o is not threading.current_thread()
    ]
    deadline = time.monotonic() + GRACE_SECONDS
    for thread in alive:  # a thread on its last line is not left running
        thread.join(max(0.0, deadline - time.monotonic()))
    out = [
        (
            id(thread),
            _leak(
                thread,
                "thread",
                thread.name,
                f"target {_callable_name(getattr(thread, '_target', None) or thread.run)}",
            ),
        )
        for thread in alive
        if thread.is_alive()
    ]
    alive.clear()
    return out


def _tasks(objs: list[Any]) -> list[tuple[int, Leak]]:
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return []
    out = []
    for obj in objs:
        if isinstance(obj, asyncio.Task) and not obj.done():
            coro = obj.get_coro()
            detail = f"coroutine {getattr(coro, '__qualname__', type(coro).__name__)}"
            out.append((id(obj), _leak(obj, "task", obj.get_name(), detail)))
    obj = coro = None
    return out


def _processes(objs: list[Any]) -> list[tuple[int, Leak]]:
    subprocess = sys.modules.get("subprocess")
    process_mod = sys.modules.get("multiprocessing.process")
    out = []
    for obj in objs:
        if subprocess is not None and isinstance(obj, subprocess.Popen) and obj.poll() is None:
            args = obj.args if isinstance(obj.args, (str, bytes)) else " ".join(map(str, obj.args))
            out.append((id(obj), _leak(obj, "process", f"pid {obj.pid}", f"command {args!s:.80}")))
        elif (
            process_mod is not None
            and isinstance(obj, process_mod.BaseProcess)
            and obj.pid is not None
            and obj.is_alive()
        ):
            out.append((id(obj), _leak(obj, "process", f"pid {obj.pid}", f"process {obj.name}")))
    obj = None
    return out


def _leak(obj: Any, kind: LeakKind, name: str, detail: str) -> Leak:
    """A resource left behind: plain data, no reference to *obj* (a descriptor number is named by its kind)."""
    shown = "file descriptor" if kind == "fd" else type_name(type(obj))
    return Leak(
        type=shown, count=1, shallow_bytes=0, retained_bytes=0, retained_by=(), kind=kind, name=name, details=(detail,)
    )


def open_fds() -> frozenset[int] | None:
    """The file descriptors open now; None where the platform cannot list them."""
    for directory in _FD_DIRS:
        try:
            listed = [int(name) for name in os.listdir(directory)]
        except (OSError, ValueError):
            continue
        # the listing's own descriptor is closed again by now, and its number is free for the test
        return frozenset(fd for fd in listed if _is_open(fd))
    return None


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def new_fds(before: frozenset[int] | None) -> list[Leak]:
    """Descriptors open now that were not before setup."""
    after = open_fds()
    if before is None or after is None:
        return []
    out = []
    for fd in sorted(after - before):
        target = _fd_target(fd)
        if target is not None:
            out.append(_leak(fd, "fd", str(fd), target))
    return out


def _fd_target(fd: int) -> str | None:
    if not _is_open(fd):
        return None
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "open"


def _callable_name(func: Any) -> str:
    owner = getattr(func, "__self__", None)
    name = getattr(func, "__qualname__", None) or type(func).__qualname__
    module = getattr(func, "__module__", None) or (type(owner).__module__ if owner is not None else "")
    return f"{module}.{name}" if module else name


#: Locks a thread makes to wait on a Condition; an old Condition's waiter list holds them while it waits.
_WAIT_LOCKS = frozenset({"_thread.lock", "_thread.RLock"})


def without_thread_waits(leaks: list[Leak], found: list[Leak]) -> list[Leak]:
    """Object leaks minus the wait locks of threads reported as still running.

    A thread blocked in ``Event.wait()`` left its waiter lock in the event's
    condition: that is the running thread's state, already reported with its
    name and target.
    """
    if not any(leak.kind == "thread" for leak in found):
        return leaks
    return [leak for leak in leaks if not (leak.kind == "object" and leak.type in _WAIT_LOCKS)]


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int | None:
    """The process's resident set size now (Linux), else its peak so far; None if neither is known."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):
        return None
    return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, others KiB
