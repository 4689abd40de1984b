"""The quick verdict: how almost every check ends without a search for roots.

A test's subjects referenced only by harness holders that explained earlier
tests, or by its own fixture values, are clean; a subject held only by a
holder that leaked in an earlier test is that leak again. Every reference is
counted, so anything not accounted for goes to the full analysis.
"""

from __future__ import annotations

import collections
import gc
import sys
from typing import Any

from pytest_leakhunt.census import Survivors, _held_by, _held_by_views, attribute_dict
from pytest_leakhunt.classify import Context
from pytest_leakhunt.registries import CONTAINERS


def quick_verdict(
    survivors: Survivors, context: Context, slots: list[Any], rest: list[Any], remembered: bool
) -> list[int] | None:
    """The leaked survivors when the answer needs no search for roots, else None.

    *rest* and *remembered* are what ``unaccounted`` returned: subjects that
    the remembered attributes do not explain, and whether they explained
    others. Those referenced only by *slots* (harness holders that explained
    earlier tests, and the item's fixture values) are clean too, provided
    those references are all there are. A subject whose other references all
    come from a holder that leaked in an earlier test (``context.repeated_leak``:
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
    unheld = held_elsewhere(rest, held)
    if not unheld:
        if by_attributes and not remembered:
            _remember(context.held_at, slots, rest)
        return []
    rest.clear()  # the caller's list too: from here on, references are counted against the survivors' own
    return _repeated_leaks_only(survivors, context, unheld, slots)


def held_elsewhere(rest: list[Any], held: list[int]) -> list[int]:
    """The ids of the subjects in *rest* that something besides the slots' references (*held*, an id per
    reference) refers to. References of ours: the survivors' list, *rest*, the loop's variable and getrefcount's
    argument.
    """
    return [id(s) for s in rest if sys.getrefcount(s) - 4 != held.count(id(s))]


#: At most this many remembered attributes: a few harness objects keep a test's objects after teardown.
_MAX_HELD_AT = 16


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


def _repeated_leaks_only(
    survivors: Survivors, context: Context, unheld: list[int], slots: list[Any]
) -> list[int] | None:
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
        chain = context.repeated_leak(objs[index[key]])
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


#: How many of the most recently useful shared holders are tried before the test's own.
HOT = 4


#: Longest container among the hot holders that ``quick_verdict`` reads on every check; a longer one (``re``'s
#: pattern cache once a test has filled it) cost tens of microseconds per test and is left to the full analysis.
QUICK_SLOT_LEN = 64


def quick_slots(shared: list[Any]) -> list[Any]:
    """The hot shared holders cheap enough to read on every check: instances and short containers."""
    return [h for h in shared[:HOT] if not isinstance(h, CONTAINERS) or len(h) <= QUICK_SLOT_LEN]
