"""Which program state keeps what repeat mode saw grow: paths like ``mod.LIST[...]``, positions masked.

A growing kind the real run's check traced takes that path; the others are
searched with the default check's chain search, and a chain counts only when
it starts at the program's module or a fixture the suite wrote, and passes
through no bounded cache and no registry of the runtime.
"""

from __future__ import annotations

import collections
import re
import types
from typing import Any

from pytest_leakhunt import edges, retainers
from pytest_leakhunt.chaincache import ChainCache
from pytest_leakhunt.harness import user_fixture
from pytest_leakhunt.model import TestLeaks, render_path
from pytest_leakhunt.modglobals import ModuleGlobals
from pytest_leakhunt.naming import qualified_type
from pytest_leakhunt.registries import is_bounded_cache, is_harness_module


class ProgramHolders:
    """Which program state keeps the objects of a growing kind; chains found once are reused while they hold.

    Holds an index of module globals (names only) and the chains found
    without their leaked end (long-lived holders, checked link by link before
    reuse): a leak repeated over hundreds of tests costs one heap walk.
    """

    def __init__(self) -> None:
        self._index = ModuleGlobals()
        self._chains = ChainCache()

    def clear(self) -> None:
        self._index.clear()
        self._chains.clear()

    def paths(self, found: list[Any], registries: set[int], fixtures: list[Any]) -> dict[str, str]:
        """For the kinds of *found* (samples) that program state keeps, the path each hangs on (``mod.LIST[...]``).

        A kind that only pytest's state keeps has no chain from a module (the
        search never follows harness objects) and is left out: it is not the
        test's. So is one a bounded cache or a registry of the runtime (by id
        in *registries*) keeps: it fills up to its bound, then stops. The
        suite's *fixtures* of broader scope are program state too. Empties *found*.
        """
        try:
            cached = [self._chains.lookup(obj, qualified_type(obj)) for obj in found]
            missing = [obj for obj, chain in zip(found, cached) if chain is None]
            ignore = [found, missing, cached, fixtures]
            searched = iter(
                retainers.find_chains(missing, ignore=ignore, module_globals=self._index, live_harness=fixtures)
                if missing
                else []
            )
            chains = [chain if chain is not None else next(searched) for chain in cached]
            cached.clear()
            paths: dict[str, str] = {}
            for obj, chain in zip(found, chains):
                if _program_state(chain) and not any(_bounded(link) or id(link) in registries for link in chain):
                    paths.setdefault(qualified_type(obj), _path(chain))
                    self._chains.store(chain, qualified_type(obj))
            chains.clear()
            missing.clear()
            return paths
        finally:
            found.clear()


def _program_state(chain: list[Any]) -> bool:
    """A chain that starts at a module of the program or at a fixture of broader scope the suite wrote."""
    if len(chain) < 2:
        return False
    top = chain[0]
    if isinstance(top, types.ModuleType):
        return not is_harness_module(top.__name__)
    return user_fixture(top)


def explained(verdict: TestLeaks | None) -> dict[str, str]:
    """The paths the real run's check traced its growing leaks to, by leaked type (``mod.LIST[...]``).

    Only what it found growing: what it listed as retained once (a bounded
    cache filling up) goes through the search and its filters again.
    """
    if verdict is None:
        return {}
    paths: dict[str, str] = {}
    for leak in verdict.leaks:
        if leak.kind in ("object", "tracked") and leak.retained_by and not leak.retained_by[0].startswith("<"):
            paths.setdefault(leak.type, _masked(leak.retained_by))
    return paths


def _bounded(link: Any) -> bool:
    """An ``lru_cache`` with a maxsize or a deque with a maxlen: what it keeps is evicted, not accumulated."""
    return is_bounded_cache(link) or (type(link) is collections.deque and link.maxlen is not None)


def _path(chain: list[Any]) -> str:
    """The chain as ``mod.LIST[...]``."""
    return _masked(edges.describe_chain(chain))


def _masked(segments: tuple[str, ...]) -> str:
    """A path as ``mod.LIST[...]``: positions in a container change from run to run."""
    return re.sub(r"\[\d+\]", "[...]", render_path(segments))
