"""Which survivors program state holds: roots that neither the harness nor a known registry explains.

A survivor is a *root* when something outside the set of survivors references
it. Roots are explained away, cheapest rule first: a walk that meets only
harness bookkeeping and neutral containers (``classify``), then the known
holders, which must account for every outside reference: the running test's
pytest state, the session-wide harness state, the registries of the runtime.
A candidate no module reaches is rechecked after a full collection
(``recheck_orphans``), since an old object that turned into cyclic garbage
while frozen still references new ones.
"""

from __future__ import annotations

import codecs
import contextvars
import gc
import itertools
import sys
import threading
from collections.abc import Iterable
from typing import Any

from pytest_leakhunt import edges
from pytest_leakhunt.census import Survivors, _expand, _refs_of, attribute_dict, references
from pytest_leakhunt.classify import Context, _not_benign, is_subject
from pytest_leakhunt.ctables import is_c_type_dict
from pytest_leakhunt.growth import appends
from pytest_leakhunt.naming import qualified_type
from pytest_leakhunt.quick import HOT
from pytest_leakhunt.registries import KnownHolders

_CODEC_INFO: type = codecs.CodecInfo


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
    candidates = [i for i in candidates if not is_c_type_dict(objs[i])]
    if not candidates:
        return []
    # A holder that leaked in an earlier test and still keeps this object: no need to look further,
    # unless the object has other references, which known holders must then account for.
    partial: list[int] = []  # candidates whose cached chain's holder does not account for every reference
    through: dict[int, int] = {}
    for i in candidates:
        if i in context.chains:
            continue  # the quick verdict's: a known leak again, every reference to it accounted for
        outside = survivors.external(i) + context.forced.get(i, 0)  # before a chain of ours references it
        chain = context.repeated_leak(objs[i])
        if chain is not None:
            through[i] = references(chain[-2], objs[i])
            if outside <= through[i] or appends(chain[-2]):  # a list keeping it is what would grow
                context.chains[i] = chain
            else:
                partial.append(i)
        del chain
    rest = [i for i in candidates if i not in context.chains and i not in partial]
    rest = unexplained(survivors, [*partial, *_not_held_by_c(survivors, rest, context)], context, known, through)
    for i in partial:
        # accounted for by known holders: the cached chain explains it; else the explain stage searches for it.
        # Looked up again rather than kept: held across the accounting, the chain would be one more reference.
        chain = context.repeated_leak(objs[i]) if i not in rest else None
        if chain is not None:
            context.chains[i] = chain
        del chain
    return sorted([*context.chains, *rest])


def _not_held_by_c(survivors: Survivors, candidates: list[int], context: Context) -> list[int]:
    """The candidates left once objects of a type only C state held before are set aside.

    Finding that nothing gc-visible holds an object takes walks of the whole
    heap; a suite that makes such an object in every test (a text stream's
    decoder) would pay them on every test, for an object that is listed as
    retained once at most. Set aside before the walk through every known holder.
    """
    if not context.held_by_c:
        return candidates
    objs, held, codes = survivors.objs, context.held_by_c, context.harness_codes
    return [i for i in candidates if is_subject(objs[i], codes) or qualified_type(objs[i]) not in held]


def unexplained(
    survivors: Survivors,
    candidates: list[int],
    context: Context,
    known: KnownHolders,
    accounted: dict[int, int] | None = None,
) -> list[int]:
    """Candidates with an external reference that no known holder (nor *accounted*: a count per candidate)
    accounts for.

    Holders are tried from the most to the least likely and the walk stops as
    soon as every candidate is accounted for. The session-wide holders come
    from a cache; only when something is left unexplained are they gathered
    afresh, since a plugin may have swapped an attribute since.
    """
    objs = survivors.objs
    known.refresh()
    registries = known.ids()  # an untracked cache dict looks new once filled
    forced = context.forced
    need = _Need(survivors.index)
    for i in candidates:
        # a candidate whose outside references are all gone (old garbage that held it was collected) is not held
        left = survivors.external(i) + forced.get(i, 0) - (accounted.get(i, 0) if accounted else 0)
        if left > 0 and id(objs[i]) not in registries:
            need.left[id(objs[i])] = left
    if not need.settle_with([*context.shared(False)[:HOT], context.item], expanded=True) and not need.settle_with(
        context.holders()
    ):
        _settle_with_registries(need, context, known)
    caches = known.class_caches() if need.left else []
    if caches:
        # a cache dict that its first entry made tracked is new, and a registry
        for key in known.ids() & need.left.keys():
            del need.left[key]
        need.settle_with(caches)
    if need.left and any(isinstance(objs[i], _CODEC_INFO) for i in candidates if id(objs[i]) in need.left):
        need.settle_with(known.codec_cache(context.window), expanded=True)
    return [i for i in candidates if id(objs[i]) in need.left]


def _settle_with_registries(need: _Need, context: Context, known: KnownHolders) -> None:
    """The less likely holders: names bound to known values, the whole shared state, our own lists of holders."""
    shared = context.shared(False)
    # a value bound to a known name is excused once: a one-item list stands for the binding
    bindings = [[value] for value in known.values() if id(value) in need.left]
    if bindings:
        need.settle_with(bindings)
    if need.left and not need.settle_with(shared, expanded=True):
        need.settle_with(context.shared(True), expanded=True)
    if need.left:
        # our own lists of holders are references too (to a registry dict that just became tracked)
        need.settle_with([shared, context.shared(False), known.containers], expanded=True)


#: Holders read per C-level call by ``_Need.settle_with``.
_BATCH = 32


class _Need:
    """References still to account for, by object id; each holder's references count once."""

    def __init__(self, index: dict[int, int]) -> None:
        self.left: dict[int, int] = {}
        self._index = index
        #: a holder's references count once, however many lists name it
        self._scanned: set[int] = set()

    def settle_with(self, holders: Iterable[Any], expanded: bool = False) -> bool:
        """Count *holders*' references (with their containers unless *expanded*); whether nothing is left.

        Holders are read a batch at a time: one C-level call tells whether any
        holder of the batch references what is left, and only then is each
        counted on its own. Most batches reference nothing of the test's.
        """
        index = self._index
        hits: list[Any] = []
        done = False
        pending = iter((h for h in holders if id(h) not in index) if expanded else _expand(holders, index))
        while not done:
            taken = list(itertools.islice(pending, _BATCH))
            if not taken:
                break
            batch = self._unscanned(taken)
            taken.clear()
            for holder in batch if batch and self._any_left(batch) else ():
                if self._count(holder) and expanded:
                    hits.append(holder)
                if not self.left:
                    done = True
                    break
            holder = None
            batch.clear()
        if hits and isinstance(holders, list):
            _promote(holders, hits)
        return done

    def _unscanned(self, holders: list[Any]) -> list[Any]:
        """The holders not counted yet, each once (a list may name the same holder twice), now marked counted."""
        fresh = []
        for holder in holders:
            if id(holder) not in self._scanned:
                self._scanned.add(id(holder))
                fresh.append(holder)
        return fresh

    def _any_left(self, holders: list[Any]) -> bool:
        """Whether some holder references an object still to account for, itself or through its attributes."""
        left = self.left.keys()
        if not left.isdisjoint(map(id, gc.get_referents(*holders))):
            return True
        scopes = [scope for scope in map(attribute_dict, holders) if scope is not None]
        return bool(scopes) and not left.isdisjoint(map(id, gc.get_referents(*scopes)))

    def _count(self, holder: Any) -> bool:
        """Take *holder*'s references off what is left; whether it had any."""
        need, hit = self.left, False
        for ref in _refs_of(holder, need):
            key = id(ref)
            left = need.get(key)
            if left is not None:
                hit = True
                if left <= 1:
                    del need[key]
                else:
                    need[key] = left - 1
        return hit


def _promote(holders: list[Any], hits: list[Any]) -> None:
    """Most recently useful first: the same plugin state explains test after test."""
    for holder in reversed(hits):
        for k, existing in enumerate(holders):
            if existing is holder:
                holders.insert(0, holders.pop(k))
                break


def recheck_orphans(
    survivors: Survivors, orphans: list[int], context: Context, known: KnownHolders, unheld: set[int]
) -> dict[int, tuple[str, ...]]:
    """The orphans still referenced from outside, each with the names of its direct holders.

    An old object that turned into cyclic garbage while frozen is only freed
    unfrozen, and until then it keeps the new objects it points to; a holder
    the collector cannot see may be such garbage too (a C object's hidden
    reference). Paid only for leaks no module reaches: a chain from a module
    proves the object alive. The holders of those kept are named in one walk
    of the heap. When that walk finds no holder at all and no other thread
    runs, what keeps them is C state (a stream's decoder, an extension's
    cache) and no collection is paid; should that C state be garbage's after
    all, the second run that decides whether they grow collects first. The
    walk is not repeated for orphans the chain search's own walk found no
    referrer of (*unheld*, by id).
    """
    objs = survivors.objs
    if len(in_current_context(objs, orphans)) == len(orphans):  # values a test set on ``ContextVar``s
        return dict.fromkeys(orphans, ("<Context>",))
    ignore = [objs, *context.chains.values()]
    if threading.active_count() == 1:
        walked = all(id(objs[a]) in unheld for a in orphans)
        names = [] if walked else edges.holder_names([objs[a] for a in orphans], ignore)
        if all(name is None for name in names):
            return {a: (edges.HELD_OUTSIDE,) for a in unexplained(survivors, orphans, context, known)}
        del names
    context.window.collect_all()
    kept = unexplained(survivors, orphans, context, known)
    if not kept:
        return {}
    names = edges.holder_names([objs[a] for a in kept], ignore)
    return {a: name or (edges.HELD_OUTSIDE,) for a, name in zip(kept, names)}


def in_current_context(objs: list[Any], anchors: list[int]) -> list[int]:
    """The anchors that are the mapping of the running thread's context.

    The thread's state holds its context, which no module reaches; a copy
    shares the mapping, so it is found without a walk or a collection.
    """
    mapping = gc.get_referents(contextvars.copy_context())
    return [a for a in anchors if any(objs[a] is m for m in mapping)]


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
