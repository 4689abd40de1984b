"""Explain a leak: who holds it (shortest chain from a module), how big, allocated where.

Runs only for tests that leak, with the heap unfrozen: ``gc.get_referrers``
cannot see frozen referrers. Every function returns plain data; callers drop
the objects they passed in.
"""

from __future__ import annotations

import functools
import gc
import itertools
import operator
import os
import sys
import types
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tracemalloc

from pytest_leakhunt.census import attribute_dict
from pytest_leakhunt.naming import module_of, qualified_type
from pytest_leakhunt.registries import _LRU_TYPE, CONTAINERS, ELEMENT_CONTAINERS, is_harness_module

#: Levels searched upward from a leaked object.
_MAX_DEPTH = 8
#: Objects followed per level. ``gc.get_referrers(*objs)`` compares every
#: reference in the heap with each of its arguments, so a wide level is costly.
_MAX_WIDTH = 32


def find_chains(
    targets: list[Any],
    ignore: Iterable[Any] = (),
    module_globals: ModuleGlobals | None = None,
    live_harness: Iterable[Any] = (),
    likely_modules: Iterable[str] = (),
    near: Iterable[Any] = (),
    stop_at: Callable[[Any], bool] | None = None,
) -> list[list[Any]]:
    """For each target, the shortest chain from a root ([root, ..., target]); [target] if none.

    *near* are roots a test most often hangs its leaks on (its module, its
    parameters): they are searched top-down first (``search_down``), in that
    order, which looks at a bounded number of references instead of walking
    the heap.
    A direct holder of a target for which *stop_at* is true ends that
    target's search with ``[holder, target]``: the caller needs nothing above
    it (a bounded cache, which is no leak, however it is reached).

    A root is a module, or one of *live_harness*: pytest state known to be
    alive (the running item, its parameters, the session), which keeps what a
    test hangs on a parametrized value. Other pytest objects are not followed.

    A level-by-level search from all targets at once: one ``gc.get_referrers``
    call (a walk of the heap) per depth for the whole test. objgraph's
    ``find_backref_chain`` walks the heap once per object it visits and collects
    garbage first, which took minutes on a suite with a million-object heap.
    A level wider than ``_MAX_WIDTH`` is cut to that width: the chain found may
    then not be the shortest, but the search stays bounded. Branches of a
    target already explained are dropped, so the search ends as soon as every
    target is found or has nothing left to follow.
    """
    skip = {id(x) for x in ignore}
    frame: types.FrameType | None = sys._getframe()
    while frame is not None:
        skip.add(id(frame))
        frame = frame.f_back
    del frame
    live = {id(x) for x in live_harness}
    parent: dict[int, Any] = {id(t): None for t in targets}
    origin: dict[int, int] = {id(t): id(t) for t in targets}  # node -> the target it leads to
    # A holder met by the branches of several targets (one cache keeping two leaked objects)
    # leads to each of them: its links beyond the first are kept here.
    extra: dict[int, list[Any]] = {}
    found: dict[int, list[Any]] = {}
    frontier: list[Any] = list(targets)
    skip.update((id(parent), id(skip), id(found), id(targets), id(origin), id(extra)))
    globals_of = module_globals if module_globals is not None else ModuleGlobals()
    # modules looked at before the others: the caller's (the test's) and those defining the targets' types
    likely = list(dict.fromkeys([*likely_modules, *(module_of(type(t)) for t in targets)]))

    for root in near:  # one root after another: a module's global names a leak better than a parameter
        rest = [t for t in targets if id(t) not in found]
        if rest:
            found.update(search_down([root], rest, skip))
        del rest

    def chain_from(*top: Any) -> None:
        paths = [list(top)]
        while paths:
            path = paths.pop()
            below = parent[id(path[-1])]
            if below is None:  # reached a target
                found.setdefault(id(path[-1]), path)
                continue
            for link in (below, *extra.get(id(path[-1]), ())):
                if not any(node is link for node in path):
                    paths.append([*path, link])

    try:
        for depth in range(_MAX_DEPTH):
            frontier = [obj for obj in frontier if origin[id(obj)] not in found]
            del frontier[_MAX_WIDTH:]
            if not frontier:
                break
            skip.add(id(frontier))
            # Reached something a module global holds: no need to walk the heap for the last links.
            for obj in frontier:
                prefix = globals_of.prefix(obj, likely)
                if prefix is not None:
                    chain_from(*prefix, obj)
            obj = prefix = None
            frontier = [obj for obj in frontier if origin[id(obj)] not in found]
            if not frontier:
                break
            wanted = {id(o) for o in frontier}
            referrers = gc.get_referrers(*frontier)
            skip.add(id(referrers))
            following: list[Any] = []
            harness: list[Any] = []
            skip.update((id(following), id(harness)))
            for holder in referrers:
                key = id(holder)
                if key in skip:
                    continue
                in_harness = is_harness_module(type(holder).__module__)
                if in_harness and key not in live:
                    continue  # pytest's own bookkeeping is not a retention path worth naming
                # every instance refers to its class: not what keeps a class alive
                links = [ref for ref in gc.get_referents(holder) if id(ref) in wanted and ref is not type(holder)]
                if not links:
                    continue
                if depth == 0 and stop_at is not None and stop_at(holder):
                    for target in links:
                        found.setdefault(id(target), [holder, target])
                    del links, target
                    continue
                if key in parent:  # met before, from another target's branch: lead there too
                    known = {origin[key]} | {origin[id(x)] for x in extra.get(key, ())}
                    more = [x for x in links if origin[id(x)] not in known]
                    if more:
                        extra.setdefault(key, []).extend({origin[id(x)]: x for x in more}.values())
                        rooted = found.get(origin[key], ())
                        for depth, node in enumerate(rooted):  # already explained: its chain serves the others too
                            if node is holder:
                                chain_from(*rooted[: depth + 1])
                                break
                    del links, more
                    continue
                link = links[0]
                more = [x for x in links[1:] if origin[id(x)] != origin[id(link)]]
                if more:
                    extra[key] = list({origin[id(x)]: x for x in more}.values())
                del links, more
                parent[key] = link
                origin[key] = origin[id(link)]
                if isinstance(holder, types.ModuleType):
                    chain_from(holder)
                elif in_harness:
                    harness.append(holder)
                else:
                    following.append(holder)
            del referrers
            for holder in harness:  # a module at the same depth reads better
                chain_from(holder)
            harness.clear()
            following.sort(key=_holder_rank)
            frontier = following
        del frontier
        return [_prefer_application_module(found.get(id(t), [t])) for t in targets]
    finally:
        parent.clear()
        origin.clear()
        extra.clear()
        found.clear()
        skip.clear()
        if module_globals is None:
            globals_of.clear()


#: References a top-down search looks at before it gives up: a few milliseconds at most, where one walk of a
#: large heap takes tens.
_DOWN_BUDGET = 20_000


def search_down(roots: list[Any], targets: list[Any], skip: set[int], budget: int = _DOWN_BUDGET) -> dict[int, list[Any]]:
    """Shortest chains [root, ..., target] from *roots* down to the *targets* it reaches, by id of target.

    Breadth first through containers, instances, the closures of functions and
    the attributes of classes defined in a root module; never into other
    modules, pytest's objects or ids in *skip*. At most *budget* references
    are looked at (a container bigger than what is left is not opened) and
    ``_MAX_DEPTH`` levels: what is not found is left to the walk up from the
    targets.
    """
    wanted = {id(t) for t in targets}
    parent: dict[int, Any] = {id(r): None for r in roots}
    modules = [r for r in roots if isinstance(r, types.ModuleType)]
    own_modules = {m.__name__ for m in modules}
    namespaces = {id(vars(m)) for m in modules}
    found: dict[int, list[Any]] = {}
    frontier = [r for r in roots if id(r) not in skip]
    skip = {*skip, id(parent), id(frontier), id(found), id(roots)}
    try:
        for _ in range(_MAX_DEPTH):
            following: list[Any] = []
            skip.add(id(following))
            for obj in frontier:
                if budget <= 0:
                    return found
                if isinstance(obj, CONTAINERS) and len(obj) >= budget:
                    continue  # a million-entry global list would cost more than the walk it saves
                refs = _down_from(obj, own_modules, namespaces)
                budget -= 1 + len(refs)
                for ref in refs:
                    key = id(ref)
                    if key in parent or key in skip or type(ref) in _ATOMS:
                        continue
                    parent[key] = obj
                    if key in wanted:
                        chain = [ref]
                        while chain[-1] is not None:
                            chain.append(parent[id(chain[-1])])
                        found[key] = chain[-2::-1]
                        if len(found) == len(wanted):
                            return found
                    elif _worth_descending(ref):
                        following.append(ref)
            frontier = following
            if not frontier:
                break
        return found
    finally:
        parent.clear()


def _down_from(obj: Any, own_modules: set[str], namespaces: set[int]) -> list[Any]:
    """What a top-down search follows from *obj*.

    A root module's globals but not its dunders (``__builtins__``), a
    function's closure, the attributes of a class the root module defines,
    and otherwise the references of the object, less its class (every
    instance refers to it; that is not what keeps anything alive).
    """
    kind = type(obj)
    if kind is dict and id(obj) in namespaces:
        return [value for key, value in list(obj.items()) if not (type(key) is str and key.startswith("__"))]
    if kind is types.FunctionType:
        return [obj.__closure__] if obj.__closure__ else []
    if isinstance(obj, type):
        return [_class_attrs(obj)] if obj.__module__ in own_modules else []
    return [ref for ref in gc.get_referents(obj) if ref is not kind]


def _worth_descending(obj: Any) -> bool:
    """Program state a leak can hang on; not another module, a code object, or pytest's own objects."""
    if isinstance(obj, (types.ModuleType, types.CodeType, types.FrameType, types.BuiltinFunctionType, weakref.ref)):
        return False
    return not is_harness_module(type(obj).__module__)


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
        if chain is None or not _links_hold([*chain, obj]):
            return None
        return chain

    def clear(self) -> None:
        self._paths.clear()
        self._indexed.clear()
        self._modules = -1

    def _add_new_modules(self) -> None:
        self._modules = len(sys.modules)
        self._add_modules(list(sys.modules))

    def _add_modules(self, names: Iterable[str]) -> None:
        paths = self._paths
        namespaces = []
        for name in names:
            if name in self._indexed or name not in sys.modules:
                continue
            self._indexed.add(name)
            module = sys.modules[name]
            if is_harness_module(name):
                continue  # pytest's own globals: not where a test's objects are kept
            if isinstance(module, types.ModuleType) and type(getattr(module, "__dict__", None)) is dict:
                namespaces.append((name, list(vars(module).items())))
        for name, items in namespaces:  # direct globals win: they make the shortest chains
            for key, value in items:
                if type(value) not in _ATOMS:
                    known = paths.get(id(value))
                    if known is None or known[2]:
                        paths[id(value)] = (name, key, ())
        seen: set[int] = set()
        for name, items in namespaces:
            for key, value in items:
                if id(value) in seen or type(value) in _ATOMS:
                    continue
                seen.add(id(value))
                if isinstance(value, type):
                    for attr, inner in list(_class_attrs(value).items()):
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
        if type(value) in _ATOMS:
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
        paths = self._paths
        for inner_key, inner in entries:
            if type(inner) not in _ATOMS and type(inner_key) in (str, int):
                paths.setdefault(id(inner), (name, key, (*steps, (step, inner_key))))


_ATOMS = frozenset({str, bytes, int, float, complex, bool, type(None)})


def _class_attrs(cls: type) -> dict[str, Any]:
    """The dict a class really holds (``vars(cls)`` is a read-only proxy of it)."""
    return next((r for r in gc.get_referents(cls) if type(r) is dict and r.get("__module__") == cls.__module__), {})


def _resolve(module_name: str, key: str, steps: tuple[tuple[str, Any], ...]) -> list[Any] | None:
    """The objects from the module down to the one that holds the last step's value."""
    module = sys.modules.get(module_name)
    namespace = getattr(module, "__dict__", None)
    if type(namespace) is not dict or key not in namespace:
        return None
    chain: list[Any] = [module, namespace]
    value = namespace[key]
    for kind, inner in steps:
        if kind == "class" and isinstance(value, type):
            members = _class_attrs(value)
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
        elif kind == "attr":
            attrs = attribute_dict(value)
            if attrs is None or inner not in attrs:
                return None
            # an instance reports its attributes itself or through its __dict__, by version
            chain += [value] if holds(value, attrs[inner]) else [value, attrs]
            value = attrs[inner]
        elif kind == "item" and type(value) is dict and inner in value or kind == "item" and type(value) in (list, tuple) and isinstance(inner, int) and inner < len(value):
            chain.append(value)
            value = value[inner]
        else:
            return None
    return chain


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
            if holds(prefix[-1], obj) and _links_hold(prefix):
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


def holds(holder: Any, obj: Any) -> bool:
    """Whether *holder* references *obj* (identity, never ``__eq__``).

    A holder that leaks grows by one entry per test, so this runs at C speed
    and from the end, where dicts and lists keep their newest entries; a list's
    or dict's own reverse iterator gets there without copying every reference.
    """
    kind = type(holder)
    try:
        if kind is list:
            return any(map(operator.is_, reversed(holder), itertools.repeat(obj)))
        if kind is dict:
            values, keys = reversed(holder.values()), reversed(holder.keys())
            return any(map(operator.is_, values, itertools.repeat(obj))) or any(map(operator.is_, keys, itertools.repeat(obj)))
    except RuntimeError:  # changed size while read (another thread): read it the slow way
        pass
    return any(map(operator.is_, reversed(gc.get_referents(holder)), itertools.repeat(obj)))


def _links_hold(prefix: list[Any]) -> bool:
    return all(holds(parent, child) for parent, child in zip(prefix, prefix[1:]))


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
        if isinstance(namespace, dict) and any(map(operator.is_, namespace.values(), itertools.repeat(target))):
            return [module, namespace, *chain[2:]]
    return chain


def describe_chain(chain: list[Any], ignore: Iterable[Any] = ()) -> tuple[str, ...]:
    """Readable segments for a chain: ``("shop.orders", "OrderService", "history", "[0]")``."""
    if len(chain) >= 2 and isinstance(chain[0], types.ModuleType):
        segments = [chain[0].__name__]
        namespaces = {id(vars(chain[0]))}
    elif len(chain) >= 2 and type(chain[0]).__name__ == "FixtureDef" and isinstance(getattr(chain[0], "argname", None), str):
        segments = [f"fixture:{chain[0].argname}"]  # the value of a fixture of broader scope
        namespaces = set()
    elif len(chain) >= 2 and is_harness_module(type(chain[0]).__module__):
        segments = [f"<pytest {type(chain[0]).__name__}>"]  # a parametrized value or fixture pytest keeps
        namespaces = set()
    else:
        return _orphan_segments(chain[-1], [*ignore, chain]) if chain else ("<unknown>",)
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
        return child.get("__module__") == owner.__dict__.get("__module__", None) and child == owner.__dict__
    try:
        return vars(owner) is child or getattr(owner, "__dict__", None) is child
    except TypeError:
        return False


def _edge(parent: Any, child: Any, namespaces: set[int], grandparent: Any) -> str:
    """The label of the reference parent -> child, '' when it is structural (obj -> its __dict__)."""
    if isinstance(child, dict) and _owns_dict(parent, child):
        return ""
    if isinstance(parent, dict):
        for key, value in reversed(parent.items()):  # the newest entries are last: a leak was just added
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
        for i in range(len(parent) - 1, -1, -1):  # appended last, found first
            if parent[i] is child:
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
            return str(name)
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


def is_user_file(filename: str) -> bool:
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


__all__ = [
    "allocation_site",
    "describe_chain",
    "find_chain",
    "qualified_type",
    "retained_size",
    "shallow_size",
]


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
                places += [(f"{module_name}.{key}.{attr}", inner) for attr, inner in list(_class_attrs(value).items())]
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
