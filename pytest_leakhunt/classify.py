"""What a survivor is: a subject a leak is about, harness bookkeeping, or a neutral container.

The role of a type is cached (``_TYPE_ROLE``); functions, generators,
modules and classes are judged one by one (``_DYNAMIC``). ``unaccounted`` and
``quick.quick_verdict`` end the check of almost every test without looking
for roots; ``_not_benign`` keeps the roots whose walk through neutral
containers meets a subject.
"""

from __future__ import annotations

import collections
import functools
import gc
import itertools
import sys
import types
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pytest_leakhunt.census import Survivors
from pytest_leakhunt.naming import module_of, qualified_type
from pytest_leakhunt.registries import _LRU_TYPE, is_bounded_cache, is_harness_module
from pytest_leakhunt.window import HeapWindow

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


#: Instances of these modules' types only carry state for their owner. Codec decoders sit behind an
#: untracked ``_io.IncrementalNewlineDecoder``, so the text stream that owns one is invisible to the collector.
_NEUTRAL_MODULES = frozenset({"builtins", "encodings", "codecs"})


#: Functions from these modules only wrap what their closure holds.
_WRAPPER_MODULES = frozenset({"contextlib", "functools"})


#: Never a leak themselves: they keep no referent alive (``WeakValueDictionary``, ``WeakSet``, ``finalize``).
_WEAK_MODULES = ("weakref", "_weakref", "_weakrefset")


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
    repeated_leak: Callable[[Any], list[Any] | None] = lambda obj: None
    #: extra references to assume for roots a registry would otherwise excuse
    forced: dict[int, int] = field(default_factory=dict)
    #: chains found through repeated_leak, by survivor index; cleared with the context
    chains: dict[int, list[Any]] = field(default_factory=dict)
    #: the running item: it holds the test's fixture values, so it is tried with the hottest shared holders
    item: Any = None
    #: (attribute dict, name) of shared harness holders that kept subjects in earlier checks, such as the
    #: logging plugin's capture streams; owned by the session, which clears it when its holders change
    held_at: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    #: whether pytest's stack has unwound (its temporaries gone): then builtin-typed roots are judged too
    builtin_roots: bool = False
    #: the quick verdict accounted for every subject: only roots of builtin types are left to judge
    subjects_settled: bool = False
    #: the open check window, thawed for searches that must see the old heap
    window: HeapWindow = field(default_factory=HeapWindow)
    #: names of the codec types whose objects only C state held in an earlier test (the explain stage's)
    held_by_c: set[str] = field(default_factory=set)


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


def _is_weak(obj: Any) -> bool:
    return type(obj).__module__ in _WEAK_MODULES or isinstance(obj, weakref.ref)


# What a survivor's type says about it, for the walks of _not_benign and _walk_neutral.
_NEUTRAL, _STOP, _SUBJECT, _DYNAMIC = 0, 1, 2, 3


_DYNAMIC_TYPES = (
    types.FunctionType,
    types.GeneratorType,
    types.CoroutineType,
    types.AsyncGeneratorType,
    types.ModuleType,
)


_TYPE_ROLE: dict[type, int] = {}


#: The same roles as sets, so that quick_verdict sorts a test's types with set operations:
#: types that need no further look (_NEUTRAL, _STOP) and types whose instances are subjects.
_SETTLED_TYPES: set[type] = set()


_SUBJECT_TYPES: set[type] = set()


_CODE_OF = {
    types.FunctionType: "__code__",
    types.GeneratorType: "gi_code",
    types.CoroutineType: "cr_code",
    types.AsyncGeneratorType: "ag_code",
}


def _role(obj: Any, harness_codes: frozenset[int]) -> int:
    """_NEUTRAL: walk into it; _STOP: harness, weak or module, do not walk; _SUBJECT: what leaks are about."""
    cls = type(obj)
    role = _TYPE_ROLE.get(cls)
    if role is None:
        if cls in _DYNAMIC_TYPES or cls is _LRU_TYPE or issubclass(cls, type):
            role = _DYNAMIC
        elif _is_weak(obj):
            role = _STOP
        else:
            origin = _origin(obj, harness_codes)
            role = _NEUTRAL if origin is None else _STOP if is_harness_module(origin) else _SUBJECT
        _TYPE_ROLE[cls] = role
        if role < _SUBJECT:
            _SETTLED_TYPES.add(cls)
        elif role == _SUBJECT:
            _SUBJECT_TYPES.add(cls)
    if role != _DYNAMIC:
        return role
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
    return [_TYPE_ROLE, _SETTLED_TYPES, _SUBJECT_TYPES]


def forget_new_types(objs: list[Any]) -> list[type]:
    """Drop the roles of classes made during the check window: no cache of ours keeps a test's class alive.

    ``unittest.mock`` makes a class for every Mock; cached strongly, each would
    outlive its test. Returns the classes, for the other caches keyed by type.
    """
    new = [obj for obj in itertools.compress(objs, map(isinstance, objs, itertools.repeat(type)))]
    for cls in new:
        if _TYPE_ROLE.pop(cls, None) is not None:
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
        if type(obj) in plain or _role(obj, harness_codes) == _SUBJECT:
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


def _count_at(held_at: list[tuple[dict[str, Any], str]], obj: Any) -> int:
    """References to *obj* from the remembered attributes; each (dict, name) is one distinct reference."""
    count = 0
    for attrs, name in held_at:
        if attrs.get(name) is obj:
            count += 1
    return count


def _not_benign(survivors: Survivors, roots: list[int], context: Context) -> list[int]:
    """The roots that retain something other than harness bookkeeping and neutral containers.

    The hot loop of every check: type roles are cached, and a survivor found
    benign from one root is not walked again from another. Its rules stay in
    one function on purpose: it runs for every root of every test, and a call
    per rule would cost more than the rules.
    """
    objs = survivors.objs
    harness_codes, ignore = context.harness_codes, context.ignore_types
    roles = _TYPE_ROLE
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
        role = roles.get(type(root))
        if role is None or role == _DYNAMIC:
            role = _role(root, harness_codes)
        if role == _STOP or (role == _SUBJECT and context.subjects_settled) or _scratch(root):
            continue
        if role == _SUBJECT:
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

    Like ``_not_benign``, one function on purpose: the walk visits every
    survivor a root keeps, and each branch is one test of its type.
    """
    objs, index = survivors.objs, survivors.index
    harness_codes, ignore, roles = context.harness_codes, context.ignore_types, _TYPE_ROLE
    seen = {i}
    stack = [i]
    harness = substance = False
    while stack:
        j = stack.pop()
        if j in benign:
            harness = True
            continue
        obj = objs[j]
        role = roles.get(type(obj))
        if role is None or role == _DYNAMIC:
            role = _role(obj, harness_codes)
        if role == _STOP:
            harness = harness or not _is_weak(obj)
            continue  # what the harness holds is the harness's bookkeeping
        if role == _SUBJECT and j != i and qualified_type(obj) not in ignore:
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
    role = _TYPE_ROLE.get(type(obj))
    if role is None or role == _DYNAMIC:
        role = _role(obj, harness_codes)
    return role == _STOP and not _is_weak(obj)


def _scratch(root: Any) -> bool:
    """An empty list or dict, a list of empty strings (a C object's scratch buffer), or warnings filters.

    The filters list ``warnings.catch_warnings`` made is kept by the C half of
    ``warnings`` until the next warning, after the block restored the old
    one: the runtime's state, not worth a walk of the heap.
    """
    kind = type(root)
    if kind is list:
        return not root or all(type(value) is str and not value for value in root) or all(map(_is_filter, root))
    return kind is dict and not root


#: the first item of a warnings filter
_WARNING_ACTIONS = frozenset({"default", "error", "ignore", "always", "all", "module", "once"})


def _is_filter(entry: Any) -> bool:
    """``(action, message, category, module, lineno)``, as ``warnings.filters`` holds them."""
    return type(entry) is tuple and len(entry) == 5 and type(entry[0]) is str and entry[0] in _WARNING_ACTIONS


def _weightless(value: Any) -> bool:
    """Referents that give a root no weight of its own: None, empty strings, booleans, classes, weak references."""
    if type(value) is types.FunctionType:  # weakref.finalize's exit hook, which atexit keeps from its first use
        return module_of(value) in _WEAK_MODULES
    return value is None or type(value) in (bool, type) or (type(value) is str and not value) or _is_weak(value)
