"""The same leaks again: a test whose survivors look like an earlier test's, held by the same cached chains.

A suite whose autouse fixture resets a configuration slot leaves one new
value in that slot after every test, and one whose streams are cached per
wrapper leaves one more entry: each check would find the same roots, follow
the same cached chains and build the same ``Leak`` records, test after test.
When the survivors' shape (``census.shape``: names and counts of types,
references among them) is one an earlier check explained entirely through
cached chains (and C state, for what no gc-visible object holds), and each
chain still holds one survivor of its type, the earlier leaks are the answer,
once each chain still reads the same (sizes are the earlier test's). The
shape is the same evidence the clean shapes of ``check`` rest on. Each leak
still goes to the probe, as the explain stage sends it, so that the settle
stage decides it the same way; one held by C state is given again only once
that stage has decided it, since it has nothing to put in the probe.

Nothing a test made is kept: a chain's links are long-lived program state
(as ``chaincache.ChainCache`` keeps them) and the rest is names.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from pytest_leakhunt import edges, growth, hints
from pytest_leakhunt.census import Survivors, _held_by, holds, links_hold, references
from pytest_leakhunt.model import Leak
from pytest_leakhunt.naming import qualified_type, type_name
from pytest_leakhunt.quick import held_elsewhere


@dataclass(frozen=True)
class _Known:
    """An explained leak: the chain down to its holder, the leaked type's name, the ``Leak`` and its names."""

    prefix: tuple[Any, ...]
    type_name: str
    leak: Leak
    fingerprint: str
    root_name: str


@dataclass(frozen=True)
class _Verdict:
    """What one check found: leaks through cached chains, and leaks no gc-visible holder keeps (names only)."""

    chained: tuple[_Known, ...]
    #: leaks held outside Python objects (C state): given again once the settle stage has decided their kind
    unheld: tuple[Leak, ...]
    unheld_fingerprints: tuple[str, ...]


class Repeats:
    """Verdicts of leaks explained through cached chains, by the shape of the survivors they were found among.

    *earlier* are the growing leaks of earlier tests (a chain through one is
    left to the full analysis); *settled* tells whether the settle stage has
    decided a fingerprint; *c_state* whether only C state held the objects of
    a type (by name) in an earlier test, as the explain stage found.
    """

    def __init__(
        self,
        earlier: growth.EarlierLeaks,
        settled: Callable[[str], bool],
        c_state: Callable[[str], bool],
        limit: int = 64,
    ) -> None:
        self._by_shape: dict[tuple[Any, ...], _Verdict] = {}
        self._earlier = earlier
        self._settled = settled
        self._c_state = c_state
        self._limit = limit

    def learn(self, shape: tuple[Any, ...], chains: list[list[Any]], survivors: Survivors, leaks: list[Leak]) -> None:
        """Remember a check whose leaks each came through one of *chains* (cached), or from C state, and no other."""
        if not chains or len(self._by_shape) >= self._limit or shape in self._by_shape:
            return
        chained: list[_Known] = []
        unheld: list[Leak] = []
        for leak in leaks:
            plain = leak.kind == "object" and leak.count == 1 and leak.attributed_to is None and leak.name is None
            if not plain or leak.retention != growth.UNSETTLED or leak.root_type != leak.type or leak.allocated_at:
                return  # an allocation site is each test's own (tracemalloc started by the user)
            if leak.retained_by == (edges.HELD_OUTSIDE,) and self._c_state(leak.type):
                unheld.append(leak)  # a codec object a text stream keeps in C state, every time
                continue
            known = _through(leak, chains, survivors)
            if known is None:
                return
            chained.append(known)
        if len(chained) == len(chains):
            fingerprints = tuple(map(hints.fingerprint, unheld))
            self._by_shape[shape] = _Verdict(tuple(chained), tuple(map(hints.named, unheld)), fingerprints)

    def again(
        self,
        shape: tuple[Any, ...],
        survivors: Survivors,
        probe: growth.Probe,
        registries: set[int],
        slots: list[Any],
        rest: list[Any],
    ) -> list[Leak] | None:
        """The earlier leaks, when each chain still holds exactly one survivor of its type; their entries in *probe*.

        A chain that now ends at a registry learned since (*registries*), or
        that passes through an earlier test's growing leak, is left to the
        full analysis, as a cached chain is. Besides its holder, only the
        harness holders the quick verdict reads (*slots*) may reference a
        leaked object, and every other subject the census left (*rest*, our
        list) must be referenced by those holders only, as the quick verdict
        would have it. A leak C state holds is given again only once the
        settle stage has decided it: it has nothing to put in the probe.
        """
        verdict = self._by_shape.get(shape)
        if verdict is None or not all(map(self._settled, verdict.unheld_fingerprints)):
            return None
        leaked: list[Any] = []
        leaks: list[Leak] = []
        for known in verdict.chained:
            if id(known.prefix[-1]) in registries or not links_hold(list(known.prefix)):
                del self._by_shape[shape]  # the chain no longer holds: what it kept alive goes with the entry
                return None
            obj, place = _held_again(known, survivors, self._earlier, slots, rest)
            if obj is None:
                return None
            leaked.append(obj)
            leaks.append(
                known.leak if place == known.leak.retained_by else hints.named(replace(known.leak, retained_by=place))
            )
            del obj
        if not _only_slots_hold(survivors, rest, {id(obj) for obj in leaked}, slots):
            return None
        for known, obj in zip(verdict.chained, leaked):
            probe.add(known.fingerprint, known.root_name, known.prefix[-1], obj, obj)
        leaked.clear()
        return [*leaks, *verdict.unheld]

    def clear(self) -> None:
        self._by_shape.clear()


def _through(leak: Leak, chains: list[list[Any]], survivors: Survivors) -> _Known | None:
    """*leak* as given by the one chain among *chains* that ends at an object of its type under its name."""
    for chain in chains:
        if qualified_type(chain[-1]) != leak.type or any(id(link) in survivors.index for link in chain[:-1]):
            continue
        if edges.describe_chain(chain, ignore=[survivors.objs]) == leak.retained_by:
            names = (hints.fingerprint(leak), growth.holder_root(leak.retained_by))
            return _Known(tuple(chain[:-1]), leak.type, hints.named(leak), *names)
    return None


def _held_again(
    known: _Known, survivors: Survivors, earlier: growth.EarlierLeaks, slots: list[Any], rest: list[Any]
) -> tuple[Any, tuple[str, ...]]:
    """The one survivor of *known*'s type that its chain holds and nothing but *slots* (and *rest*, ours) also
    references, and where it sits; (None, ()) when there is none.
    """
    objs, holder = survivors.objs, known.prefix[-1]
    # from the survivors' side: the holder may be a cache that grew by one entry per test, its newest last
    held = [j for j in _of_type(survivors, known.type_name) if survivors.external(j) > 0 and holds(holder, objs[j])]
    held = [j for j in held if qualified_type(objs[j]) == known.type_name]  # a function is named itself
    if len(held) != 1:
        return None, ()
    leaked = objs[held[0]]
    # nothing else references it: another holder may be the one that grows
    outside = survivors.external(held[0]) - 1 - references(rest, leaked)  # less ours: *leaked*, *rest*
    outside -= _held_by(slots, [leaked]).count(id(leaked))
    # the holder references it at least once; counting them all reads the whole holder, which grows every test
    if outside > 1 and outside > references(holder, leaked):
        return None, ()
    # in the same place (another attribute of the same object is another leak), not an earlier test's leak
    place = edges.describe_chain([*known.prefix, leaked], ignore=[objs])
    if not _same_place(place, known.leak.retained_by) or earlier.leaked_by([*known.prefix, leaked]) is not None:
        return None, ()
    return leaked, place


def _only_slots_hold(survivors: Survivors, rest: list[Any], leaked: set[int], slots: list[Any]) -> bool:
    """Whether every other subject the census left is the *slots*' only, or lies inside what the *leaked* objects
    keep with no reference from outside the survivors but the slots' (the quick verdict's rules).
    """
    index = survivors.index
    held = _held_by(slots, rest)
    unheld = [key for key in held_elsewhere(rest, held) if key not in leaked]
    if not unheld:
        return True
    inside = survivors.closure([index[key] for key in leaked])
    # external() leaves out the survivors' list: *rest* is left
    return all(index.get(key, -1) in inside and survivors.external(index[key]) - 1 == held.count(key) for key in unheld)


def _same_place(place: tuple[str, ...], known: tuple[str, ...]) -> bool:
    """The same path, or the same container with the object under another key or index (each test adds one)."""
    if place == known:
        return True
    return place[:-1] == known[:-1] and place[-1:] != () and place[-1].startswith("[") and known[-1].startswith("[")


def _of_type(survivors: Survivors, name: str) -> list[int]:
    """The survivors whose ``qualified_type`` is *name*, picked out by their classes at C speed where it can."""
    objs = survivors.objs
    kinds = {kind for kind in set(map(type, objs)) if type_name(kind) == name}
    if kinds:
        return list(itertools.compress(range(len(objs)), map(kinds.__contains__, map(type, objs))))
    return [j for j, obj in enumerate(objs) if qualified_type(obj) == name]  # functions and classes: by their own name
