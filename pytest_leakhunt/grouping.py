"""The first step of the explain stage: group leaked roots by the object a leak is named after.

One leak, one report: a root that another leaked root retains goes with it
(a thread's Event with the thread), and roots that keep the same subject
form one group, named after that subject (its principal). A plain dict bound
to a name is named after the newest value it keeps (``inside_slot_dict``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pytest_leakhunt.census import Survivors
from pytest_leakhunt.classify import is_subject
from pytest_leakhunt.naming import qualified_type


@dataclass
class Groups:
    """Leaked roots grouped by the object a leak is named after (its principal), and principals by type."""

    #: principal -> the roots that keep it
    units: dict[int, list[int]]
    #: qualified type -> principals
    by_type: dict[str, list[int]]
    #: principal -> the root whose chain explains the group
    anchor_of: dict[int, int]
    #: anchor no module reaches -> its direct holders, named (the explain stage fills it)
    held_outside: dict[int, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def of(
        cls, survivors: Survivors, candidates: list[int], harness_codes: frozenset[int], ignore: frozenset[str]
    ) -> Groups:
        objs = survivors.objs
        units: dict[int, list[int]] = {}
        for i in _outermost(survivors, candidates, harness_codes):
            units.setdefault(_principal(survivors, i, harness_codes), []).append(i)
        by_type: dict[str, list[int]] = {}
        for p in units:
            name = qualified_type(objs[p])
            if name not in ignore:
                by_type.setdefault(name, []).append(p)
        return cls(units, by_type, {p: (p if p in units[p] else units[p][0]) for p in units})

    def in_order(self) -> list[tuple[str, list[int]]]:
        """Principals by type, those a module reaches first: past the cap on leaks per test, what is cut is what
        no module reaches (C state, a stack, an object no module reaches), never a leak with a chain to show.
        """
        held_outside = self.held_outside
        return sorted(self.by_type.items(), key=lambda item: all(self.anchor_of[p] in held_outside for p in item[1]))

    def principal_of(self, anchor: int) -> int | None:
        return next((p for p in self.units if self.anchor_of[p] == anchor), None)

    def drop(self, anchor: int) -> None:
        """Forget the group *anchor* explains."""
        p = self.principal_of(anchor)
        if p is not None:
            self.units.pop(p)
            self.by_type = {t: [q for q in ps if q != p] for t, ps in self.by_type.items()}


def _outermost(survivors: Survivors, candidates: list[int], harness_codes: frozenset[int]) -> list[int]:
    """Drop roots that another leaked root already retains: one leak, one report.

    A thread never joined is a root, and so is the Event its running stack
    waits on; the Event belongs to the thread's leak.
    """
    if len(candidates) < 2:
        return list(candidates)  # the common case: a test leaks one thing
    closures = {i: survivors.closure([i]) for i in candidates}
    kept: list[int] = []
    covered: set[int] = set()
    objs = survivors.objs
    # Objects a leak is about first (a Thread before the bound method the C thread state holds).
    order = sorted(candidates, key=lambda i: (not is_subject(objs[i], harness_codes), -len(closures[i]), i))
    for i in order:
        if i not in covered and _principal(survivors, i, harness_codes) not in covered:
            kept.append(i)
            covered |= closures[i]
    return sorted(kept)


def _principal(survivors: Survivors, i: int, harness_codes: frozenset[int]) -> int:
    """The object a leak is named after: the root, or the nearest subject it retains."""
    objs = survivors.objs
    return next((j for j in survivors.walk([i]) if is_subject(objs[j], harness_codes)), i)


def inside_slot_dict(survivors: Survivors, first: int, segments: tuple[str, ...]) -> int | None:
    """For a plain dict bound to a name (a global, an attribute) and holding new values: its newest such value.

    A dict of plain values is not tracked by the collector until a container
    goes in, so a long-lived ``CONFIG = {}`` looks new the first time a test
    stores a list in it. What the test left is the value, not the dict:
    naming it gives the leak its real type, and lets a second run tell a
    value replaced under the same key from one added.
    """
    root = survivors.objs[first]
    index = survivors.index
    if type(root) is tuple and segments and segments[-1] == "cached_result" and root:
        value = index.get(id(root[0]), -1)  # a fixture's (value, key, exception): the value
        return value if value >= 0 else None
    if type(root) is not dict or not segments or not _names_a_slot(segments):
        return None
    inside = [index[id(value)] for value in list(root.values()) if index.get(id(value), -1) >= 0]
    return inside[-1] if inside else None


def _names_a_slot(segments: tuple[str, ...]) -> bool:
    """Whether a chain ends at a name: a global, an attribute, a ``threading.local``'s attributes."""
    return segments[-1][:1].isidentifier() or "<_local>" in segments[-2:]
