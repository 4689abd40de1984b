"""The same leak again: a test whose survivors look like an earlier test's, held by the same cached chain.

A suite whose autouse fixture resets a configuration slot leaves one new
value in that slot after every test: each check would find the same root,
follow the same cached chain and build the same ``Leak``, test after test.
When the survivors' shape (``census.shape``: names and counts of types,
references among them) is one an earlier check explained as a single leak
through a cached chain, and that chain still holds a survivor of that type,
the earlier ``Leak`` is the answer, once its chain still reads the same (sizes
are the earlier test's). The shape is the same evidence the clean shapes of
``check`` rest on. The leak still goes to the probe, as the explain stage
sends it, so that the settle stage decides it the same way.

Nothing a test made is kept: a chain's links are long-lived program state
(as ``retainers.ChainCache`` keeps them) and the rest is names.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any

from pytest_leakhunt import edges, growth, hints
from pytest_leakhunt.census import Survivors, links_hold, references
from pytest_leakhunt.model import Leak
from pytest_leakhunt.naming import qualified_type


@dataclass(frozen=True)
class _Known:
    """An explained leak: the chain down to its holder, the leaked type's name, the ``Leak`` and its names."""

    prefix: tuple[Any, ...]
    type_name: str
    leak: Leak
    fingerprint: str
    root_name: str


class Repeats:
    """Leaks explained through a cached chain, by the shape of the survivors they were found among."""

    def __init__(self, limit: int = 64) -> None:
        self._by_shape: dict[tuple[Any, ...], _Known] = {}
        self._limit = limit

    def learn(self, shape: tuple[Any, ...], chain: list[Any], survivors: Survivors, leaks: list[Leak]) -> None:
        """Remember a check that found one leak, the object *chain* ends at, and nothing else."""
        if len(leaks) != 1 or len(self._by_shape) >= self._limit or shape in self._by_shape:
            return
        leak = leaks[0]
        plain = leak.kind == "object" and leak.count == 1 and leak.attributed_to is None and leak.name is None
        if not plain or leak.retention != growth.UNSETTLED or leak.root_type != leak.type or leak.allocated_at:
            return  # an allocation site is each test's own (tracemalloc started by the user)
        if qualified_type(chain[-1]) != leak.type or any(id(link) in survivors.index for link in chain[:-1]):
            return
        names = (hints.fingerprint(leak), growth.holder_root(leak.retained_by))
        self._by_shape[shape] = _Known(tuple(chain[:-1]), leak.type, leak, *names)

    def again(
        self,
        shape: tuple[Any, ...],
        survivors: Survivors,
        probe: growth.Probe,
        registries: set[int],
        earlier: growth.EarlierLeaks,
    ) -> list[Leak] | None:
        """The earlier leak, when the chain still holds exactly one survivor of its type; its entry in *probe*.

        A chain that now ends at a registry learned since (*registries*), or
        that passes through an earlier test's growing leak, is left to the
        full analysis, as a cached chain is.
        """
        known = self._by_shape.get(shape)
        if known is None:
            return None
        if id(known.prefix[-1]) in registries or not links_hold(list(known.prefix)):
            del self._by_shape[shape]  # the chain no longer holds: what it kept alive goes with the entry
            return None
        objs, index, holder = survivors.objs, survivors.index, known.prefix[-1]
        held = [index[id(ref)] for ref in gc.get_referents(holder) if id(ref) in index]
        held = [j for j in held if qualified_type(objs[j]) == known.type_name]
        # one survivor of that type, and nothing else references it: another holder may be the one that grows
        if len(held) != 1 or survivors.external(held[0]) > references(holder, objs[held[0]]):
            return None
        leaked = objs[held[0]]
        # under the same name (another attribute of the same object is another leak), not an earlier test's leak
        same = edges.describe_chain([*known.prefix, leaked], ignore=[objs]) == known.leak.retained_by
        if not same or earlier.leaked_by([*known.prefix, leaked]) is not None:
            return None
        probe.add(known.fingerprint, known.root_name, holder, leaked, leaked)
        return [known.leak]

    def clear(self) -> None:
        self._by_shape.clear()
