"""Who holds a leak: the shortest chain of references from a module (or live pytest state) down to it.

Runs only for tests that leak, with the heap unfrozen: ``gc.get_referrers``
cannot see frozen referrers. Every function returns plain data; callers drop
the objects they passed in.
"""

from __future__ import annotations

import gc
import itertools
import operator
import sys
import types
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from pytest_leakhunt.census import referrers_of
from pytest_leakhunt.modglobals import ATOMS, ModuleGlobals, class_attrs
from pytest_leakhunt.naming import module_of
from pytest_leakhunt.registries import CONTAINERS, is_harness_module

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
    unheld: set[int] | None = None,
) -> list[list[Any]]:
    """For each target, the shortest chain from a root ([root, ..., target]); [target] if none.

    *unheld*, when given, receives the ids of the targets that the first walk
    of the heap found no referrer of at all, besides the search's own: no
    object the collector sees holds them (C state does).

    *near* are roots a test most often hangs its leaks on (its module, its
    parameters): they are searched top-down first (``search_down``), in that
    order, which looks at a bounded number of references instead of walking
    the heap. A direct holder of a target for which *stop_at* is true ends
    that target's search with ``[holder, target]``: the caller needs nothing
    above it (a bounded cache, which is no leak, however it is reached).

    A root is a module, or one of *live_harness*: pytest state known to be
    alive (the running item, its parameters, the session), which keeps what a
    test hangs on a parametrized value. Other pytest objects are not followed.
    """
    search = _ChainSearch(targets, ignore, module_globals, live_harness, likely_modules, stop_at)
    try:
        search.from_near(near)
        search.upward()
        if unheld is not None:
            unheld.update(search.walked - search.referred)
        return search.chains()
    finally:
        search.close()


class _ChainSearch:
    """One level-by-level search upward from all targets at once: one ``gc.get_referrers`` per level.

    objgraph's ``find_backref_chain`` walks the heap once per object it
    visits, which took minutes on a suite with a million-object heap; here a
    level costs one walk for the whole test. A level wider than ``_MAX_WIDTH``
    is cut to that width: the chain found may then not be the shortest, but
    the search stays bounded. Branches of a target already explained are
    dropped, so the search ends as soon as every target is found or has
    nothing left to follow. Every container of the search is in ``skip``: the
    heap walk must not take the search's own references for the program's.
    """

    def __init__(
        self,
        targets: list[Any],
        ignore: Iterable[Any],
        module_globals: ModuleGlobals | None,
        live_harness: Iterable[Any],
        likely_modules: Iterable[str],
        stop_at: Callable[[Any], bool] | None,
    ) -> None:
        self.targets = targets
        self.skip = {id(x) for x in ignore}
        self.live = {id(x) for x in live_harness}
        self.stop_at = stop_at
        #: node -> the node below it on the way to a target (None at a target)
        self.parent: dict[int, Any] = {id(t): None for t in targets}
        #: node -> the target it leads to
        self.origin: dict[int, int] = {id(t): id(t) for t in targets}
        #: a holder met by the branches of several targets (one cache keeping two leaked objects) leads to each
        #: of them: its links beyond the first
        self.extra: dict[int, list[Any]] = {}
        self.found: dict[int, list[Any]] = {}
        #: ids of the targets the first walk looked for, and of those it found some referrer of
        self.walked: set[int] = set()
        self.referred: set[int] = set()
        self._own_globals = module_globals is None
        self.globals_of = module_globals if module_globals is not None else ModuleGlobals()
        #: modules looked at before the others: the caller's (the test's) and those defining the targets' types
        self.likely = list(dict.fromkeys([*likely_modules, *(module_of(type(t)) for t in targets)]))
        self.skip.update((id(self.parent), id(self.skip), id(self.found), id(targets), id(self.origin), id(self.extra)))

    def from_near(self, near: Iterable[Any]) -> None:
        """Top-down from each likely root, one after another: a module's global names a leak better than a parameter."""
        for root in near:
            rest = [t for t in self.targets if id(t) not in self.found]
            if rest:
                self.found.update(search_down([root], rest, self.skip))
            del rest

    def upward(self) -> None:
        """Level after level up from the targets not found yet, until each is found or nothing is left."""
        frontier = list(self.targets)
        self.skip.add(id(frontier))
        for depth in range(_MAX_DEPTH):
            frontier[:] = [obj for obj in frontier if self.origin[id(obj)] not in self.found][:_MAX_WIDTH]
            self._from_globals(frontier)
            frontier[:] = [obj for obj in frontier if self.origin[id(obj)] not in self.found]
            if not frontier:
                break
            frontier[:] = self._level(frontier, depth)

    def chains(self) -> list[list[Any]]:
        return [_prefer_application_module(self.found.get(id(t), [t])) for t in self.targets]

    def close(self) -> None:
        for table in (self.parent, self.origin, self.extra, self.found, self.skip, self.walked, self.referred):
            table.clear()
        if self._own_globals:
            self.globals_of.clear()

    def _skip_stack(self) -> None:
        """Our own frames refer to what we search for: they are no holders."""
        frame: types.FrameType | None = sys._getframe()
        while frame is not None:
            self.skip.add(id(frame))
            frame = frame.f_back
        del frame

    def _from_globals(self, frontier: list[Any]) -> None:
        """Reached something a module global holds: no need to walk the heap for the last links."""
        for obj in frontier:
            prefix = self.globals_of.prefix(obj, self.likely)
            if prefix is not None and not any(id(link) in self.skip for link in prefix):
                self._chain_from(*prefix, obj)
        obj = prefix = None

    def _level(self, frontier: list[Any], depth: int) -> list[Any]:
        """The holders of *frontier*, one heap walk: modules end chains, harness holders end them after the others."""
        wanted = {id(o) for o in frontier}
        self._skip_stack()
        referrers = referrers_of(frontier)
        following: list[Any] = []
        harness: list[Any] = []
        namespaces: list[Any] = []
        self.skip.update((id(referrers), id(following), id(harness), id(namespaces)))
        if depth == 0:
            self.walked.update(wanted)
        for holder in referrers:
            if id(holder) in self.skip:
                continue
            if depth == 0:
                self.referred.update(filter(wanted.__contains__, map(id, gc.get_referents(holder))))
            in_harness = is_harness_module(type(holder).__module__)
            if in_harness and id(holder) not in self.live:
                continue  # pytest's own bookkeeping is not a retention path worth naming
            if self._link(holder, wanted, depth):
                if isinstance(holder, types.ModuleType):
                    self._chain_from(holder)
                elif (module := self.globals_of.module_owning(holder)) is not None:
                    namespaces.append(module)  # the module is the next level's only holder: no walk for it
                    namespaces.append(holder)
                else:
                    (harness if in_harness else following).append(holder)
        del referrers
        for holder in harness:  # a module at the same depth reads better
            self._chain_from(holder)
        for module, namespace in zip(namespaces[::2], namespaces[1::2]):  # as the next level would have found it
            self._chain_from(module, namespace)
        module = None
        harness.clear()
        namespaces.clear()
        following.sort(key=_holder_rank)
        return following

    def _link(self, holder: Any, wanted: set[int], depth: int) -> bool:
        """Note what *holder* refers to among the level's objects; whether the search goes on from it."""
        # every instance refers to its class: not what keeps a class alive
        links = [ref for ref in gc.get_referents(holder) if id(ref) in wanted and ref is not type(holder)]
        if not links:
            return False
        if depth == 0 and self.stop_at is not None and self.stop_at(holder):
            for target in links:
                self.found.setdefault(id(target), [holder, target])
            return False
        key, origin = id(holder), self.origin
        if key in self.parent:  # met before, from another target's branch: lead there too
            self._join(holder, links)
            return False
        link = links[0]
        more = [x for x in links[1:] if origin[id(x)] != origin[id(link)]]
        if more:
            self.extra[key] = list({origin[id(x)]: x for x in more}.values())
        self.parent[key] = link
        origin[key] = origin[id(link)]
        return True

    def _join(self, holder: Any, links: list[Any]) -> None:
        """A holder met before leads to more targets; if its first target is explained, so are they."""
        key, origin = id(holder), self.origin
        known = {origin[key]} | {origin[id(x)] for x in self.extra.get(key, ())}
        more = [x for x in links if origin[id(x)] not in known]
        if not more:
            return
        self.extra.setdefault(key, []).extend({origin[id(x)]: x for x in more}.values())
        rooted = self.found.get(origin[key], ())
        for depth, node in enumerate(rooted):  # already explained: its chain serves the others too
            if node is holder:
                self._chain_from(*rooted[: depth + 1])
                break

    def _chain_from(self, *top: Any) -> None:
        """Every chain from *top* down to the targets it leads to, through ``parent`` and ``extra``."""
        paths = [list(top)]
        while paths:
            path = paths.pop()
            below = self.parent[id(path[-1])]
            if below is None:  # reached a target
                self.found.setdefault(id(path[-1]), path)
                continue
            for link in (below, *self.extra.get(id(path[-1]), ())):
                if not any(node is link for node in path):
                    paths.append([*path, link])


#: References a top-down search looks at before it gives up: a few milliseconds at most, where one walk of a
#: large heap takes tens.
_DOWN_BUDGET = 20_000


def search_down(
    roots: list[Any], targets: list[Any], skip: set[int], budget: int = _DOWN_BUDGET
) -> dict[int, list[Any]]:
    """Shortest chains [root, ..., target] from *roots* down to the *targets* it reaches, by id of target.

    Breadth first through containers, instances, the closures of functions and
    the attributes of classes defined in a root module; never into other
    modules, pytest's objects or ids in *skip*. At most *budget* references
    are looked at (a container bigger than what is left is not opened) and
    ``_MAX_DEPTH`` levels: what is not found is left to the walk up from the
    targets. The budget, the skips and the chain building share one loop on
    purpose: each reference looked at is counted once, where it is looked at.
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
                    if key in parent or key in skip or type(ref) in ATOMS:
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
        return [class_attrs(obj)] if obj.__module__ in own_modules else []
    return [ref for ref in gc.get_referents(obj) if ref is not kind]


def _worth_descending(obj: Any) -> bool:
    """Program state a leak can hang on; not another module, a code object, or pytest's own objects."""
    if isinstance(obj, (types.ModuleType, types.CodeType, types.FrameType, types.BuiltinFunctionType, weakref.ref)):
        return False
    return not is_harness_module(type(obj).__module__)


def _holder_rank(holder: Any) -> int:
    """Containers and namespaces first: they are where program state keeps things."""
    if isinstance(holder, (*CONTAINERS, types.CellType)):
        return 0
    if isinstance(holder, (type, types.FunctionType, types.MethodType)):
        return 1
    return 2


def find_chain(obj: Any, ignore: Iterable[Any] = (), module_globals: ModuleGlobals | None = None) -> list[Any]:
    """Shortest reference chain from a module to *obj*; [obj] if none."""
    return find_chains([obj], ignore, module_globals)[0]


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
