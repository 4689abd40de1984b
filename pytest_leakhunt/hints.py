"""Fix hints and fingerprints: what a leak's names say, computed from plain data only.

A hint is added when a leak's type or retainer path matches a pattern people
meet again and again; a fingerprint names a leak group without addresses or
indices, so the same leak found by fifty tests is one group, and a baseline
file can list it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re

from pytest_leakhunt.model import Leak, render_path

#: (pattern, hint), searched in "<retainer path> :: <type>"; the first match wins.
_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"<lru_cache>", "an unbounded functools.lru_cache keeps every argument and result: give it a maxsize, "
     "or call .cache_clear() in the test's teardown"),
    (r"unittest\.mock|_patch\b|:: .*Mock$", "a mock.patch started with .start() stays until .stop(): use it as a "
     "context manager, or pytest's monkeypatch fixture, which undoes itself"),
    (r"\.(handlers|filters)\[", "a handler or filter added to a logger stays until removed: call "
     "logger.removeHandler(handler) in teardown, or use the caplog fixture"),
    (r"atexit", "atexit.register keeps the callback and what it is bound to until the process exits: "
     "atexit.unregister(callback) in teardown"),
    (r"(?i)(listeners|subscribers|observers|callbacks|hooks|handlers)\b.* :: ", "a listener registered on a "
     "long-lived object stays until removed: unsubscribe in teardown, or keep a weakref.WeakMethod"),
    (r":: (.*(Error|Exception)|traceback|frame)$", "a stored exception keeps its traceback and every frame's local "
     "variables alive: store str(exc) or exc.with_traceback(None) instead"),
)  # fmt: skip

#: By kind, for resources and growth.
_KIND_HINTS = {
    "thread": "join the thread in teardown (thread.join()), after telling it to stop (a threading.Event)",
    "task": "await or cancel the task before the test ends (task.cancel(), then await it)",
    "process": "wait for the process in teardown (proc.wait() or proc.communicate()), or use subprocess.run",
    "fd": "close the descriptor (os.close) or use a with block",
}


def named(leak: Leak) -> Leak:
    """*leak* with its fix hint and fingerprint: the last step before a leak is reported, whichever check found it."""
    return dataclasses.replace(leak, hint=hint_for(leak), fingerprint=fingerprint(leak))


def hint_for(leak: Leak) -> str | None:
    """The usual fix for the pattern this leak matches, if any."""
    if leak.kind in _KIND_HINTS:
        return _KIND_HINTS[leak.kind]
    return _hint(_INDEX.sub("[#]", render_path(leak.retained_by)), leak.type)


#: A list index in a retainer path; no pattern depends on its value.
_INDEX = re.compile(r"\[\d+\]")


# A leak repeated test after test (one more entry in the same list or cache) has the same names each
# time but for an index: the patterns are searched once per distinct name.
@functools.lru_cache(maxsize=256)
def _hint(path: str, type_name: str) -> str | None:
    text = f"{path} :: {type_name}"
    return next((hint for pattern, hint in _PATTERNS if re.search(pattern, text)), None)


#: What differs between runs, tests and orders in a name: uuids, hex ids and addresses, numbers.
_VOLATILE = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
    r"|0x[0-9a-fA-F]+|\b[0-9a-fA-F]*\d[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\b|\d+"
)


def fingerprint(leak: Leak) -> str:
    """A stable name for a leak group: kind, leaked type and the long-lived holder it hangs on.

    Built from the holder the chain starts at (a module global, a class
    attribute, a registry), not from the whole chain: container keys,
    indices and the hops in between depend on what earlier tests put into the
    same container, so the same leak gets the same name in any order, in any
    subset and under xdist. A class or function defined by a test counts as
    "class" or "function", whatever its name; random parts of names (uuids,
    hex ids, numbers) are masked.
    """
    from pytest_leakhunt.growth import holder_root  # plain names only; growth imports the model, not hints

    kind_of_type = leak.type.split(" ", 1)[0] if leak.type.startswith(("class ", "function ")) else leak.type
    holder = holder_root(leak.retained_by) if leak.kind in ("object", "tracked") else render_path(leak.details)
    name = leak.name or "" if leak.kind in ("tracked", "thread", "task") else ""
    text = "|".join(_VOLATILE.sub("#", part) for part in (leak.kind, kind_of_type, holder, name))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]  # noqa: S324 - a name, not a secret
