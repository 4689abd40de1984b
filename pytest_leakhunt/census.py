"""Which objects outlived the test, and which of them program state holds.

The per-test hot path. Its cost is proportional to what the test allocated,
not to the heap: ``gc.freeze()`` before setup moves every existing object into
the permanent generation, so after teardown ``gc.collect()`` and
``gc.get_objects()`` only see objects created since (see ../shared/gc-facts.md
in the project's steering repo for measurements).

A survivor is a *root* when something outside the set of survivors references
it: ``sys.getrefcount`` minus the references from other survivors. Roots are
then explained away, cheapest rule first:

1. *harness closure*: the root and everything it retains is pytest/pluggy
   bookkeeping or plain builtin containers of old objects (stack temporaries,
   reports, kwargs dicts, hook generators);
2. *known holders*: every external reference comes from a registry that is
   not a leak by design (pytest's per-item and per-plugin state, fixtures of
   broader scope, ``sys.modules``, the runtime's first-use caches, the last
   failure kept in ``sys.last_*``);
3. *explain* (slow path, only when 1 and 2 leave something, in ``session``):
   unfreeze and search retainer chains; a candidate no module reaches is
   rechecked after a full collection (``recheck_orphans``), since an old object
   that turned into cyclic garbage while frozen still references new ones.

Only this module and ``retainers`` talk to ``gc``.
"""

from __future__ import annotations

import codecs
import collections
import functools
import gc
import itertools
import operator
import sys
import types
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pytest_leakhunt.window import HeapWindow

#: Module name prefixes whose objects are test-harness bookkeeping.
HARNESS_MODULES = ("_pytest", "pytest", "pluggy", "pytest_leakhunt", "xdist", "execnet", "py")

#: Types that only carry references; what they hold decides.
_NEUTRAL_TYPES: frozenset[type] = frozenset(
    {
        list,
        dict,
        tuple,
        set,
        frozenset,
        types.CellType,
        types.MethodType,
        types.TracebackType,
        types.FrameType,
        type(iter([])),
        type(reversed([])),
        type(iter(())),
        type(iter({})),
        type(iter({}.values())),
        type(iter({}.items())),
        type(iter(set())),
        collections.deque,
        collections.OrderedDict,
        collections.defaultdict,
        functools.partial,
    }
)

#: Instances of these modules' types only carry state for their owner. Codec
#: decoders sit behind an untracked ``_io.IncrementalNewlineDecoder``, so the
#: text stream that owns one is invisible to the collector.
_NEUTRAL_MODULES = frozenset({"builtins", "encodings", "codecs"})

#: Functions from these modules only wrap what their closure holds.
_WRAPPER_MODULES = frozenset({"contextlib", "functools"})

#: Never a leak themselves: they do not keep their referent alive, and weak
#: containers (``WeakValueDictionary``, ``WeakSet``, ``weakref.finalize``)
#: rely on them.
_WEAK_MODULES = ("weakref", "_weakref", "_weakrefset")

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
_CODEC_INFO: type = codecs.CodecInfo


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
            if name in self._seen_modules or module is None:
                continue
            self._seen_modules.add(name)
            in_stdlib = name.split(".")[0] in stdlib
            try:
                values = list(vars(module).values())
            except TypeError:
                continue
            # Picked out at C speed: a session imports hundreds of modules and tens of thousands of names.
            for value in itertools.compress(values, map(_IS_LRU, map(type, values))):
                # The runtime's own caches, and bounded caches anywhere: an LRU with
                # a maxsize evicts, it does not grow without bound.
                if in_stdlib or is_bounded_cache(value):
                    self._add_lru(value)
            if in_stdlib:
                self._classes_unseen.append((name, module))
            if name == "typing":
                for clear in getattr(module, "_cleanups", ()):
                    owner = getattr(clear, "__self__", None)
                    if type(owner) is _LRU_TYPE:
                        self._add_lru(owner)
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
        into.extend(r for r in gc.get_referents(wrapper) if type(r) is dict and r is not getattr(wrapper, "__dict__", None))

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


@dataclass
class Context:
    """What the session knows about the running test, for explaining roots."""

    #: the running test's own harness state: item, request, fixtures (called only when needed)
    holders: Callable[[], Iterable[Any]]
    #: session-wide harness state (plugins, config, first-use caches); True asks for a fresh list
    shared: Callable[[bool], list[Any]]
    #: ids of the code objects of hooks and of pytest's own functions (their generators and closures are harness)
    harness_codes: frozenset[int]
    ignore_types: frozenset[str]
    #: a verified retainer chain for an object a known leak holder keeps, else None
    known_leak: Callable[[Any], list[Any] | None] = lambda obj: None
    #: extra references to assume for roots a registry would otherwise excuse
    forced: dict[int, int] = field(default_factory=dict)
    #: chains found through known_leak, by survivor index; cleared with the context
    chains: dict[int, list[Any]] = field(default_factory=dict)
    #: the running item: it holds the test's fixture values, so it is tried with the hottest shared holders
    item: Any = None
    #: (attribute dict, name) of shared harness holders that kept subjects in earlier checks, such as the
    #: logging plugin's capture streams; owned by the session, which clears it when its holders change
    held_at: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    #: whether pytest's stack has unwound: then a root of builtin types only is judged by who holds it
    #: (at a teardown report, pytest's own stack temporaries are such roots on every test)
    builtin_roots: bool = False
    #: the quick verdict accounted for every subject: only roots of builtin types are left to judge
    subjects_settled: bool = False
    #: the open check window, thawed for searches that must see the old heap
    window: HeapWindow = field(default_factory=HeapWindow)


class Survivors:
    """The new objects still alive after teardown. Holds them strongly: close() it.

    Instances live only for the duration of one check, inside session code that
    drops them before the verdict is stored.
    """

    def __init__(self) -> None:
        HeapWindow.collect()
        self.objs: list[Any] = gc.get_objects()
        self._index: dict[int, int] | None = None
        self._internal: list[int] = []
        self._types: set[type] | None = None

    @property
    def types(self) -> set[type]:
        """The survivors' distinct types: the object census and the resource check both start here."""
        if self._types is None:
            self._types = set(map(type, self.objs))
        return self._types

    @property
    def index(self) -> dict[int, int]:
        """Survivor position by id; built on first use, since most checks end before they need it."""
        if self._index is None:
            objs = self.objs
            self._index = dict(zip(map(id, objs), range(len(objs))))
            self._index[id(objs)] = -1
            # One C-level call lists every reference between survivors (and to old objects).
            counts = collections.Counter(map(id, gc.get_referents(*objs)))
            self._internal = list(map(counts.get, map(id, objs), itertools.repeat(0)))
        return self._index

    @property
    def internal(self) -> list[int]:
        """References to each survivor from other survivors."""
        _ = self.index
        return self._internal

    def external(self, i: int) -> int:
        """References to survivor *i* from outside the survivors (our own list excluded)."""
        return sys.getrefcount(self.objs[i]) - 2 - self.internal[i]

    def roots(self) -> list[int]:
        """Survivors referenced from outside the survivors, picked out at C speed.

        ``map(sys.getrefcount, objs)`` sees two references of ours (the list and
        the iterator's item), as ``sys.getrefcount(objs[i])`` does.
        """
        objs, internal = self.objs, self.internal
        outside = map(operator.gt, map(sys.getrefcount, objs), map(operator.add, internal, itertools.repeat(2)))
        return list(itertools.compress(range(len(objs)), outside))

    def closure(self, start: Iterable[int]) -> set[int]:
        """Survivors reachable from *start* through survivors (not through old objects)."""
        seen = set(start)
        stack = list(seen)
        objs, index = self.objs, self.index
        while stack:
            i = stack.pop()
            for ref in gc.get_referents(objs[i]):
                j = index.get(id(ref))
                if j is not None and j >= 0 and j not in seen:
                    seen.add(j)
                    stack.append(j)
        return seen

    def close(self) -> None:
        self.objs.clear()
        self._index = None
        self._internal = []
        self._types = None


def module_of(obj: Any) -> str:
    """``obj.__module__`` when it is a string, else "".

    A metaclass that defines ``__module__`` for its classes (Cython's shared
    metatype does) shadows its own: the metaclass itself reports a descriptor.
    """
    module = getattr(obj, "__module__", None)
    return module if type(module) is str else ""


def qualified_type(obj: Any) -> str:
    """``module.Qualname`` of obj's type; functions and classes are named themselves."""
    if isinstance(obj, (types.FunctionType, type)):
        module = module_of(obj)
        if module not in ("", "builtins"):
            kind = "function" if isinstance(obj, types.FunctionType) else "class"
            return f"{kind} {module}.{obj.__qualname__}"
    cls = type(obj)
    module = module_of(cls)
    return cls.__qualname__ if module in ("", "builtins") else f"{module}.{cls.__qualname__}"


def _origin(obj: Any, harness_codes: frozenset[int]) -> str | None:
    """The module an object belongs to; None for containers whose contents decide."""
    cls = type(obj)
    if cls is types.FunctionType:
        if id(obj.__code__) in harness_codes:
            return "pytest"
        module = module_of(obj)
        return None if module in _WRAPPER_MODULES else module
    if cls in (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType):
        code = getattr(obj, "gi_code", None) or getattr(obj, "cr_code", None) or getattr(obj, "ag_code", None)
        if id(code) in harness_codes:
            return "pytest"
        frame = getattr(obj, "gi_frame", None) or getattr(obj, "cr_frame", None) or getattr(obj, "ag_frame", None)
        return frame.f_globals.get("__name__", "") if frame is not None else ""
    if isinstance(obj, type):
        return module_of(obj)
    module = module_of(cls)
    if cls in _NEUTRAL_TYPES or module.split(".", 1)[0] in _NEUTRAL_MODULES:
        return None
    return module


def is_subject(obj: Any, harness_codes: frozenset[int]) -> bool:
    """True for objects a leak is about: neither a plain container nor harness bookkeeping."""
    origin = _origin(obj, harness_codes)
    return origin is not None and not is_harness_module(origin) and not _is_weak(obj)


def is_harness_module(module: object) -> bool:
    """Whether *module* (a ``__module__`` value, which need not be a string: see module_of) is pytest's or ours."""
    return type(module) is str and module.split(".", 1)[0] in HARNESS_MODULES


def _is_weak(obj: Any) -> bool:
    return type(obj).__module__ in _WEAK_MODULES or isinstance(obj, weakref.ref)


# What a survivor's type says about it, for the BFS of _benign_root.
_NEUTRAL, _STOP, _SUBJECT, _DYNAMIC = 0, 1, 2, 3
_DYNAMIC_TYPES = (types.FunctionType, types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType, types.ModuleType)
_TYPE_VERDICT: dict[type, int] = {}
#: The same verdicts as sets, so that quick_verdict sorts a test's types with set operations:
#: types that need no further look (_NEUTRAL, _STOP) and types whose instances are subjects.
_SETTLED_TYPES: set[type] = set()
_SUBJECT_TYPES: set[type] = set()
_CODE_OF = {
    types.FunctionType: "__code__",
    types.GeneratorType: "gi_code",
    types.CoroutineType: "cr_code",
    types.AsyncGeneratorType: "ag_code",
}


def _verdict(obj: Any, harness_codes: frozenset[int]) -> int:
    """_NEUTRAL: walk into it; _STOP: harness, weak or module, do not walk; _SUBJECT: what leaks are about."""
    cls = type(obj)
    verdict = _TYPE_VERDICT.get(cls)
    if verdict is None:
        if cls in _DYNAMIC_TYPES or cls is _LRU_TYPE or issubclass(cls, type):
            verdict = _DYNAMIC
        elif _is_weak(obj):
            verdict = _STOP
        else:
            origin = _origin(obj, harness_codes)
            verdict = _NEUTRAL if origin is None else _STOP if is_harness_module(origin) else _SUBJECT
        _TYPE_VERDICT[cls] = verdict
        if verdict < _SUBJECT:
            _SETTLED_TYPES.add(cls)
        elif verdict == _SUBJECT:
            _SUBJECT_TYPES.add(cls)
    if verdict != _DYNAMIC:
        return verdict
    if cls is types.ModuleType:
        # one the import system loaded is the runtime's first-use cache; one a test made and registered is the test's
        return _STOP if getattr(obj, "__spec__", None) is not None else _SUBJECT
    code = _CODE_OF.get(cls)
    if code is not None and id(getattr(obj, code)) in harness_codes:
        return _STOP  # a hook's generator or a lambda of pytest's runner: the common case, kept fast
    if cls is _LRU_TYPE:
        # a bounded cache evicts by design; an unbounded one is judged by what it keeps
        return _STOP if is_bounded_cache(obj) else _NEUTRAL
    origin = _origin(obj, harness_codes)
    return _NEUTRAL if origin is None else _STOP if is_harness_module(origin) else _SUBJECT


def own_caches() -> list[Any]:
    """This module's caches keyed by type: references from them are ours, never a reason to report."""
    return [_TYPE_VERDICT, _SETTLED_TYPES, _SUBJECT_TYPES]


def forget_new_types(objs: list[Any]) -> list[type]:
    """Drop the verdicts of classes made during the check window: no cache of ours keeps a test's class alive.

    ``unittest.mock`` makes a class for every Mock; cached strongly, each would
    outlive its test. Returns the classes, for the other caches keyed by type.
    """
    new = [obj for obj in itertools.compress(objs, map(isinstance, objs, itertools.repeat(type)))]
    for cls in new:
        if _TYPE_VERDICT.pop(cls, None) is not None:
            _SETTLED_TYPES.discard(cls)
            _SUBJECT_TYPES.discard(cls)
    return new


def unaccounted(
    survivors: Survivors,
    harness_codes: frozenset[int],
    ignore: frozenset[str],
    held_at: list[tuple[dict[str, Any], str]],
) -> tuple[list[Any], bool]:
    """The subjects among the survivors that the remembered harness attributes do not account for.

    The first stage of the quick verdict, and the end of the check of almost
    every test: every reported leak contains a subject (see ``_not_benign``),
    so a test whose survivors hold none is clean, and so is one whose subjects
    are referenced only by attributes of harness objects that kept a test's
    objects before (*held_at*: the logging plugin's per-phase capture streams),
    provided those references are all there are. An empty list means clean;
    the flag says whether the remembered attributes dismissed any subject.
    """
    objs = survivors.objs
    # types never judged count as unsettled, like functions and generators
    unsettled = survivors.types - _SETTLED_TYPES
    if not unsettled:
        return [], False
    # instances of a subject type need no call per object; functions and generators are judged one by one
    plain = unsettled & _SUBJECT_TYPES
    subjects: list[Any] = []
    # Most survivors are of settled types: pick the others out at C speed, then judge those few in order.
    for obj in itertools.compress(objs, map(unsettled.__contains__, map(type, objs))):
        if type(obj) in plain or _verdict(obj, harness_codes) == _SUBJECT:
            subjects.append(obj)
    obj = None
    if ignore:
        subjects = [obj for obj in subjects if qualified_type(obj) not in ignore]
    if not subjects or not held_at:
        return subjects, False
    # References we hold ourselves, below: survivors.objs, one list of subjects, the loop variable and
    # getrefcount's argument. A subject whose every other reference is a remembered attribute is done.
    rest = [s for s in subjects if sys.getrefcount(s) - 4 != _count_at(held_at, s)]
    return rest, len(rest) < len(subjects)


def quick_verdict(survivors: Survivors, context: Context, slots: list[Any], rest: list[Any], remembered: bool) -> list[int] | None:
    """The leaked survivors when the answer needs no search for roots, else None.

    *rest* and *remembered* are what ``unaccounted`` returned: subjects that
    the remembered attributes do not explain, and whether they explained
    others. Those referenced only by *slots* (harness holders that explained
    earlier tests, and the item's fixture values) are clean too, provided
    those references are all there are. A subject whose other references all
    come from a holder that leaked in an earlier test (``context.known_leak``:
    the same cache growing test after test) is that leak again: its chain goes
    to ``context.chains`` and its index is returned. No other survivor can then
    leak, since any path from a leaked root to a subject would end in a
    reference that is not accounted for. Anything else (None) goes to the full
    analysis.
    """
    # Each holder's references to subjects, counted once whichever view of an instance reports them
    # (3.13 reports inline attributes on the object and none on its materialized __dict__). References we
    # hold ourselves: survivors.objs, *rest*, the comprehension's variable and getrefcount's argument.
    held, by_attributes = _held_by_views(slots, rest)
    unheld = [id(s) for s in rest if sys.getrefcount(s) - 4 != held.count(id(s))]
    if not unheld:
        if by_attributes and not remembered:
            _remember(context.held_at, slots, rest)
        return []
    rest.clear()  # the caller's list too: from here on, references are counted against the survivors' own
    return _known_leaks_only(survivors, context, unheld, slots)


#: At most this many remembered attributes: a few harness objects keep a test's objects after teardown.
_MAX_HELD_AT = 16


def _count_at(held_at: list[tuple[dict[str, Any], str]], obj: Any) -> int:
    """References to *obj* from the remembered attributes; each (dict, name) is one distinct reference."""
    count = 0
    for attrs, name in held_at:
        if attrs.get(name) is obj:
            count += 1
    return count


def _remember(held_at: list[tuple[dict[str, Any], str]], holders: list[Any], objs: list[Any]) -> None:
    """Which attributes of harness instances keep *objs*, so that later checks read them before scanning.

    Only instances' attributes: plain dicts among the holders are the item's fixture values (per test),
    which must not be kept.
    """
    wanted = set(map(id, objs))
    known = {(id(attrs), name) for attrs, name in held_at}
    for holder in holders:
        attrs = attribute_dict(holder)
        if attrs is None:
            continue
        for name, value in list(attrs.items()):
            if id(value) in wanted and type(name) is str and (id(attrs), name) not in known:
                known.add((id(attrs), name))
                held_at.append((attrs, name))
        value = None
    del held_at[:-_MAX_HELD_AT]


def _held_by(holders: list[Any], objs: list[Any]) -> list[int]:
    """The ids of *objs* that *holders* reference, once per reference."""
    return _held_by_views(holders, objs)[0]


def _held_by_views(holders: list[Any], objs: list[Any]) -> tuple[list[int], bool]:
    """``_held_by``, and whether an instance's attributes are among those references (what ``_remember`` keeps).

    Every check pays this for the logging plugin's capture streams. Containers
    report their contents; an instance reports its attributes itself, through
    its ``__dict__``, or both (3.13 with a materialized dict). When no instance
    is seen from both views, each view is read for all holders in one C call;
    otherwise each instance's larger count is taken one by one (``_refs_of``).
    """
    wanted = set(map(id, objs))
    instances: list[Any] = []
    attrs: list[dict[str, Any]] = []
    containers: list[Any] = []
    for holder in holders:
        scope = attribute_dict(holder)
        if scope is None:
            containers.append(holder)
        else:
            instances.append(holder)
            attrs.append(scope)
    holder = scope = None
    in_containers = list(filter(wanted.__contains__, map(id, gc.get_referents(*containers))))
    own = list(filter(wanted.__contains__, map(id, gc.get_referents(*instances))))
    via_dict = list(filter(wanted.__contains__, map(id, gc.get_referents(*attrs))))
    if own and via_dict:
        counted = dict.fromkeys(wanted, 1)
        own, via_dict = [id(ref) for holder in instances for ref in _refs_of(holder, counted)], []
    return [*in_containers, *own, *via_dict], bool(own or via_dict)


def _known_leaks_only(survivors: Survivors, context: Context, unheld: list[int], slots: list[Any]) -> list[int] | None:
    """The survivors that repeat a known leak, when they and what only they keep are all that is unheld.

    Each such survivor's references come from its known holder and the slots;
    everything it keeps (its closure through survivors) is referenced only from
    inside that closure and the slots; every unheld subject lies inside it.
    Then no other root can reach a subject, and the full analysis would find
    exactly these. References are counted with ``Survivors``' own bookkeeping,
    after our lists of objects are gone.
    """
    objs, index, internal = survivors.objs, survivors.index, survivors.internal
    chains: dict[int, list[Any]] = {}
    for key in unheld:
        chain = context.known_leak(objs[index[key]])
        if chain is not None:
            chains[index[key]] = chain
        del chain
    if not chains:
        return None
    closure = survivors.closure(chains)
    if any(index[key] not in closure for key in unheld):
        return None
    kept = [objs[j] for j in closure]
    from_closure = collections.Counter(map(id, gc.get_referents(*kept)))
    held = collections.Counter(_held_by(slots, kept))
    del kept
    for j in closure:
        key = id(objs[j])
        if from_closure[key] != internal[j]:
            return None  # another survivor points into what the leak keeps
        known = j in chains
        # From outside the survivors, less the reference the chain holds to its leak. The known holder
        # references it (the lookup checked) and is counted once, without scanning a cache that grows
        # test after test: a holder with two references (cache[obj] = obj) only sends the test to the
        # full analysis, never past it.
        outside = survivors.external(j) - known
        if outside != held[key] + known:
            return None
    context.chains.update(chains)
    return sorted(chains)


def find_leaked_roots(survivors: Survivors, context: Context, known: KnownHolders) -> list[int]:
    """Roots that neither the harness nor a known registry explains (fast path only)."""
    objs = survivors.objs
    roots = survivors.roots()
    for j in _forced_roots(survivors):
        context.forced[j] = context.forced.get(j, 0) + 1
        roots.append(j)
    if not roots:
        return []
    candidates = _not_benign(survivors, list(dict.fromkeys(roots)), context)
    if not candidates:
        return []
    # A holder that leaked in an earlier test and still keeps this object: no need to look further.
    for i in candidates:
        chain = context.known_leak(objs[i])
        if chain is not None:
            context.chains[i] = chain
        del chain
    rest = _unexplained(survivors, [i for i in candidates if i not in context.chains], context, known)
    return sorted([*context.chains, *rest])


def _forced_roots(survivors: Survivors) -> list[int]:
    """Objects that count as roots although a benign registry entry owns them.

    A logger made by ``logging.getLogger`` is the registry's, but a handler or
    filter the test hung on it is the test's.
    """
    logging = sys.modules.get("logging")
    if logging is None:
        return []
    forced = []
    index = survivors.index
    manager = logging.Logger.manager
    for obj in survivors.objs:
        if isinstance(obj, logging.Logger) and manager.loggerDict.get(obj.name) is obj:
            for attached in (*obj.handlers, *obj.filters):
                j = index.get(id(attached))
                if j is not None and j >= 0:
                    forced.append(j)
    return forced


def _not_benign(survivors: Survivors, roots: list[int], context: Context) -> list[int]:
    """The roots that retain something other than harness bookkeeping and neutral containers.

    The hot loop of every check: type verdicts are cached, and a survivor found
    benign from one root is not walked again from another.
    """
    objs = survivors.objs
    harness_codes, ignore = context.harness_codes, context.ignore_types
    verdicts = _TYPE_VERDICT
    logging = sys.modules.get("logging")
    registry = logging.Logger.manager.loggerDict if logging is not None else {}
    new_modules: set[str] | None = None
    benign: set[int] = set()
    out: list[int] = []
    builtin = context.builtin_roots
    for i in roots:
        if i in benign:
            continue
        root = objs[i]
        verdict = verdicts.get(type(root))
        if verdict is None or verdict == _DYNAMIC:
            verdict = _verdict(root, harness_codes)
        if verdict == _STOP or (verdict == _SUBJECT and context.subjects_settled) or _scratch(root):
            continue
        if verdict == _SUBJECT:
            # a logger getLogger() registered is the registry's; what a test hangs on it is forced in
            if (
                logging is not None
                and isinstance(root, (logging.Logger, logging.PlaceHolder))
                and registry.get(getattr(root, "name", None)) is root
            ):
                continue
            if isinstance(root, type) or type(root) is types.FunctionType:
                if new_modules is None:
                    new_modules = {o.__name__ for o in objs if type(o) is types.ModuleType}
                if root.__module__ in new_modules:
                    continue  # defined by a module imported for the first time
            if qualified_type(root) not in ignore:
                out.append(i)
                continue
        if _walk_neutral(survivors, i, benign, context, builtin):
            out.append(i)
    return out


def _walk_neutral(survivors: Survivors, i: int, benign: set[int], context: Context, builtin: bool) -> bool:
    """Whether a neutral root is a candidate: walk the survivors it keeps, stopping at harness and weak objects.

    A walk that meets a subject makes the root a candidate. Without one, the
    root is pytest's bookkeeping when it keeps a new harness object (reports,
    hook generators), the runtime's when it keeps only weak references or
    nothing of weight (``[]``, ``['']``: ``io.StringIO`` keeps such lists in C
    state on 3.11); otherwise, with *builtin*, it holds values of builtin types
    and whoever holds it decides. The frames of pytest's own functions, which
    a stored traceback keeps, are not walked. A benign walk's survivors are not
    walked again from another root.
    """
    objs, index = survivors.objs, survivors.index
    harness_codes, ignore, verdicts = context.harness_codes, context.ignore_types, _TYPE_VERDICT
    seen = {i}
    stack = [i]
    harness = substance = False
    while stack:
        j = stack.pop()
        if j in benign:
            harness = True
            continue
        obj = objs[j]
        verdict = verdicts.get(type(obj))
        if verdict is None or verdict == _DYNAMIC:
            verdict = _verdict(obj, harness_codes)
        if verdict == _STOP:
            harness = harness or not _is_weak(obj)
            continue  # what the harness holds is the harness's bookkeeping
        if verdict == _SUBJECT and j != i and qualified_type(obj) not in ignore:
            return True
        frame = type(obj) is types.FrameType
        if frame and is_harness_module(obj.f_globals.get("__name__")):
            continue
        substance = substance or j != i
        for ref in gc.get_referents(obj):
            k = index.get(id(ref))
            if k is not None:
                if k >= 0 and k not in seen and not (frame and _is_harness(ref, harness_codes)):
                    seen.add(k)
                    stack.append(k)
            elif builtin and not frame and not harness and is_harness_module(module_of(type(ref))):
                harness = True  # an old pytest object: a fixture definition, a node
            elif builtin and not substance and not _weightless(ref):
                substance = True
    if builtin and substance and not harness:
        return True
    benign.update(seen)
    return False


def _is_harness(obj: Any, harness_codes: frozenset[int]) -> bool:
    """A new harness object (a request, a report) that a test's frame refers to: not what the test keeps."""
    verdict = _TYPE_VERDICT.get(type(obj))
    if verdict is None or verdict == _DYNAMIC:
        verdict = _verdict(obj, harness_codes)
    return verdict == _STOP and not _is_weak(obj)


def _scratch(root: Any) -> bool:
    """An empty list or dict, or a list of empty strings: a C object's scratch buffer, not worth a walk."""
    kind = type(root)
    if kind is list:
        return not root or all(type(value) is str and not value for value in root)
    return kind is dict and not root


def _weightless(value: Any) -> bool:
    """Referents that give a root no weight of its own: None, empty strings, booleans, classes, weak references."""
    if type(value) is types.FunctionType:  # weakref.finalize's exit hook, which atexit keeps from its first use
        return module_of(value) in _WEAK_MODULES
    return value is None or type(value) in (bool, type) or (type(value) is str and not value) or _is_weak(value)


def _unexplained(survivors: Survivors, candidates: list[int], context: Context, known: KnownHolders) -> list[int]:
    """Candidates with an external reference that no known holder accounts for.

    Holders are tried from the most to the least likely and the walk stops as
    soon as every candidate is accounted for. The session-wide holders come
    from a cache; only when something is left unexplained are they gathered
    afresh, since a plugin may have swapped an attribute since.
    """
    objs = survivors.objs
    known.refresh()
    registries = known.ids()  # an untracked cache dict looks new once filled
    forced = context.forced
    need: dict[int, int] = {}
    for i in candidates:
        if id(objs[i]) not in registries:
            need[id(objs[i])] = survivors.external(i) + forced.get(i, 0)
    index = survivors.index
    scanned: set[int] = set()  # a holder's references count once, however many lists name it

    def settle_with(holders: Iterable[Any], expanded: bool = False) -> bool:
        hits: list[Any] = []
        done = False
        for holder in (h for h in holders if id(h) not in index) if expanded else _expand(holders, index):
            if id(holder) in scanned:
                continue
            scanned.add(id(holder))
            hit = False
            for ref in _refs_of(holder, need):
                key = id(ref)
                left = need.get(key)
                if left is not None:
                    hit = True
                    if left <= 1:
                        del need[key]
                    else:
                        need[key] = left - 1
            if hit and expanded:
                hits.append(holder)
            if not need:
                done = True
                break
        if hits and isinstance(holders, list):
            _promote(holders, hits)
        return done

    shared = context.shared(False)
    if not settle_with([*shared[:HOT], context.item], expanded=True) and not settle_with(context.holders()):
        # a value bound to a known name is excused once: a one-item list stands for the binding
        bindings = [[value] for value in known.values() if id(value) in need]
        if bindings:
            settle_with(bindings)
        if need and not settle_with(shared, expanded=True):
            settle_with(context.shared(True), expanded=True)
        if need:
            # our own lists of holders are references too (to a registry dict that just became tracked)
            settle_with([shared, context.shared(False), known.containers], expanded=True)
    caches = known.class_caches() if need else []
    if caches:
        # a cache dict that its first entry made tracked is new, and a registry
        for key in known.ids() & need.keys():
            del need[key]
        settle_with(caches)
    if need and any(isinstance(objs[i], _CODEC_INFO) for i in candidates if id(objs[i]) in need):
        settle_with(known.codec_cache(context.window), expanded=True)
    return [i for i in candidates if id(objs[i]) in need]


#: How many of the most recently useful shared holders are tried before the test's own.
HOT = 4
#: Longest container among the hot holders that ``quick_verdict`` reads on every check; a longer one (``re``'s
#: pattern cache once a test has filled it) cost tens of microseconds per test and is left to the full analysis.
QUICK_SLOT_LEN = 64


def quick_slots(shared: list[Any]) -> list[Any]:
    """The hot shared holders cheap enough to read on every check: instances and short containers."""
    return [h for h in shared[:HOT] if not isinstance(h, CONTAINERS) or len(h) <= QUICK_SLOT_LEN]


def _promote(holders: list[Any], hits: list[Any]) -> None:
    """Most recently useful first: the same plugin state explains test after test."""
    for holder in reversed(hits):
        for k, existing in enumerate(holders):
            if existing is holder:
                holders.insert(0, holders.pop(k))
                break


def _refs_of(holder: Any, wanted: dict[int, int]) -> list[Any]:
    """The references *holder* has to wanted objects, each attribute counted once.

    Depending on the CPython version, an instance reports its attributes itself
    (inline values), through its ``__dict__``, or both (3.13 with a
    materialized dict); the larger count of the two views is the true one.
    """
    own = _wanted(gc.get_referents(holder), wanted)
    attrs = attribute_dict(holder)
    if attrs is None:
        return own
    via_dict = _wanted(gc.get_referents(attrs), wanted)
    if not own:
        return via_dict
    if not via_dict:
        return own
    merged: list[Any] = []
    for key in {id(r) for r in own} | {id(r) for r in via_dict}:
        a = [r for r in own if id(r) == key]
        b = [r for r in via_dict if id(r) == key]
        merged.extend(a if len(a) >= len(b) else b)
    return merged


def _wanted(refs: list[Any], wanted: dict[int, int]) -> list[Any]:
    # Most holders hold none of them, and some hold thousands of objects (the
    # session's items): the common answer is found at C speed.
    if wanted.keys().isdisjoint(map(id, refs)):
        return []
    return [r for r in refs if id(r) in wanted]


def attribute_dict(holder: Any) -> dict[str, Any] | None:
    """An object's own attribute dict, read without running its code (no proxy's ``__getattribute__``).

    None for containers and classes, whose references are their contents.
    """
    if isinstance(holder, (*CONTAINERS, type)):
        return None
    try:
        attrs = object.__getattribute__(holder, "__dict__")
    except Exception:  # noqa: BLE001 - no __dict__, or a descriptor that refuses
        return None
    return attrs if type(attrs) is dict else None


CONTAINERS = (dict, list, tuple, set, frozenset, collections.deque)


def expand_holders(holders: Iterable[Any]) -> list[Any]:
    """Holders plus the containers inside them, for callers that cache the expansion."""
    return list(_expand(holders, {}))


def _expand(holders: Iterable[Any], index: dict[int, int]) -> Iterator[Any]:
    """Old holders and the containers directly inside them (two levels for dicts)."""
    seen: set[int] = set()
    for holder in holders:
        if holder is None or id(holder) in index or id(holder) in seen:
            continue
        seen.add(id(holder))
        yield holder
        scope = attribute_dict(holder)
        if scope is None:
            scope = holder
        values: Iterable[Any] = ()
        if isinstance(scope, dict):
            values = list(scope.values())
        elif isinstance(scope, (list, tuple, set, collections.deque)):
            values = list(scope)
        for value in values:
            if type(value) in _CONTAINER_EXACT and id(value) not in index and id(value) not in seen:
                seen.add(id(value))
                yield value
                if type(value) is dict:
                    for sub in list(value.values()):
                        if type(sub) in _CONTAINER_EXACT and id(sub) not in index and id(sub) not in seen:
                            seen.add(id(sub))
                            yield sub


_CONTAINER_EXACT = frozenset({dict, list, tuple, set, collections.deque, collections.OrderedDict, collections.defaultdict})


def unexplained(survivors: Survivors, candidates: list[int], context: Context, known: KnownHolders) -> list[int]:
    """Candidates still unexplained, e.g. after ``known`` adopted a holder."""
    return _unexplained(survivors, candidates, context, known)


def recheck_orphans(survivors: Survivors, orphans: list[int], context: Context, known: KnownHolders) -> list[int]:
    """Collect the whole heap and keep the orphans still referenced from outside.

    An old object that turned into cyclic garbage while frozen is only freed
    unfrozen, and until then it keeps the new objects it points to. Paid only
    for leaks no module reaches: a chain from a module proves the object alive.
    """
    context.window.collect_all()
    return _unexplained(survivors, orphans, context, known)
