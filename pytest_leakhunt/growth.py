"""Grows or retained once: would running the test again leave the same kind of objects behind again?

A leak fails its test only when it grows. Two answers need no second run:

- a new element of a long-lived unbounded ``list``, ``set`` or ``deque`` is
  one more element on every run: it grows;
- an object reached through an object that an earlier test's growing leak
  keeps (a ``LogRecord`` collected by a handler test A left on a logger) is
  that earlier leak growing: it is attributed to test A and fails nothing.

Any other holding (a module global or attribute bound to the new object, a
dict entry, a first-use memo, a registry keyed by name) is decided by running
the test once more (``Probe``): it grows when the first run's object is still
held afterwards *and* the second run left objects under the same holder
again; a slot that the second run overwrote, or a memo it reused, was
retained once. Verdicts of the second run are remembered by fingerprint, so a
suite pays for one extra run per distinct leak, never per test.

Nothing here keeps a leaked object beyond the check that found it: the
objects of earlier leaks are held weakly.
"""

from __future__ import annotations

import collections
import sys
import weakref
from dataclasses import dataclass, field
from typing import Any

from pytest_leakhunt.census import attribute_dict
from pytest_leakhunt.model import UNTRACKED, Leak, Retention
from pytest_leakhunt.naming import qualified_type

GROWS: Retention = "grows"
ONCE: Retention = "once"
EARLIER: Retention = "earlier"
#: decided by a second run of the test (``Probe``)
UNSETTLED: Retention = "unsettled"

#: At most this many objects of one growing leak are remembered (weakly) for attributing later growth.
_MAX_REMEMBERED = 64


def by_holder(holder: Any) -> Retention:
    """What the direct (long-lived) holder of a leak's root says: retained once, or unsettled until a second run.

    Even a new element of a long-lived list may be one the next run replaces
    (a registry that keeps one entry per qualified name): only a bounded
    ``deque`` settles anything without running the test again.
    """
    if type(holder) is collections.deque and holder.maxlen is not None:
        return ONCE  # a bounded buffer evicts what it kept
    return UNSETTLED


def appends(holder: Any) -> bool:
    """Whether a second run's object sits in a list, set or deque: one more element, not a replaced slot."""
    return type(holder) in (list, set, collections.deque)


def holder_root(segments: tuple[str, ...]) -> str:
    """The long-lived holder a chain starts from, indices and keys removed: ``shop.bus.BUS.subs``.

    A chain that starts at pytest state (``<pytest CallSpec2>.params``: a
    parametrized value) is named from there.
    """
    names: list[str] = []
    for position, segment in enumerate(segments):
        if segment.startswith("[") or (
            segment.startswith("<") and not (position == 0 and segment.startswith("<pytest "))
        ):
            break
        names.append(segment)
    return ".".join(names)


def same_holder(first: str, again: str) -> bool:
    """Whether two holder roots name the same place: equal, or one inside the other (``S`` and ``S.history``)."""
    if not first or not again:
        return False
    return first == again or again.startswith(first + ".") or first.startswith(again + ".")


@dataclass
class EarlierLeaks:
    """The objects of leaks that grew, held weakly, with the test that leaked them."""

    _by_id: dict[int, tuple[weakref.ref[Any], str]] = field(default_factory=dict)

    def remember(self, objs: list[Any], nodeid: str) -> None:
        for obj in objs[:_MAX_REMEMBERED]:
            try:
                ref = weakref.ref(obj, self._forget)
            except TypeError:
                continue  # lists, dicts, tuples: not weakly referenceable
            self._by_id.setdefault(id(obj), (ref, nodeid))

    def _forget(self, ref: weakref.ref[Any]) -> None:
        for key, (known, _) in list(self._by_id.items()):
            if known is ref:
                del self._by_id[key]

    def leaked_by(self, chain: list[Any]) -> str | None:
        """The test whose growing leak one of the chain's holders is, if any."""
        for obj in chain[:-1]:
            entry = self._by_id.get(id(obj))
            if entry is not None and entry[0]() is obj:
                return entry[1]
        return None

    def clear(self) -> None:
        self._by_id.clear()


@dataclass
class Probe:
    """What a second run must show for one test's unsettled leaks: per leak, its holder and root (strongly).

    Lives from the check that found the leaks to the end of the second run;
    ``close`` drops every object.
    """

    #: (fingerprint, holder root, direct holder, root object, leaked object, fresh) per unsettled leak;
    #: fresh: the root is a broader-scope fixture's value made by this very test, which stays whatever it did
    entries: list[tuple[str, str, Any, Any, Any, bool]] = field(default_factory=list)

    def add(self, fingerprint: str, root_name: str, holder: Any, root: Any, leaked: Any, fresh: bool = False) -> None:
        """Note a leak to compare with a second run; its root and leaked object are held weakly where they can be.

        A strong reference would keep a slot's old value alive after the
        second run replaced it, and with it whatever that value keeps (the
        key of a weak-keyed cache): the replaced slot would look like growth.
        """
        self.entries.append((fingerprint, root_name, holder, _hold(root), _hold(leaked), fresh))

    def retentions(self, again: list[Leak], holds: Any) -> dict[str, Retention]:
        """Per fingerprint: grows when the first object is still held and the second run left some under it.

        "Still held" follows the first run's holder to its root and from the
        root down to the leaked object: a dict that the first run made tracked
        is still there after a second run that replaced its entry.
        """
        roots_again = [holder_root(leak.retained_by) for leak in again]
        orphans_again = {leak.type for leak, root in zip(again, roots_again) if not root}
        out: dict[str, Retention] = {}
        for entry in self.entries:
            fingerprint, root_name, holder = entry[:3]
            if entry[5]:  # the fixture's value stays anyway: only an element the second run added is growth
                kept = True
                grew = any(
                    same_holder(root_name, other) and leak.retention == GROWS for leak, other in zip(again, roots_again)
                )
            elif holder is None:  # held by C state: the same kind left again, and the first one still held
                kept = _held_elsewhere(entry)
                grew = qualified_type(entry[4]()) in orphans_again
            else:
                root, leaked = entry[3](), entry[4]()
                alive = root is not None and leaked is not None
                kept = alive and _holds(holds, holder, root) and (leaked is root or _reaches(root, leaked))
                grew = any(same_holder(root_name, other) for other in roots_again)
                root = leaked = None
            if kept and grew:
                out[fingerprint] = GROWS
            else:
                out.setdefault(fingerprint, ONCE)
        return out

    def may_hang_on_garbage(self, fingerprints: set[str]) -> bool:
        """Whether what these fingerprints' first run left is held only while something else lives.

        That is C state (no holder), or a weak-keyed entry (a ``WeakKeyDictionary``'s
        data, at the holder or at the root) whose value does not keep its own key:
        the key may be garbage's. A strong hold of a live holder does not depend on it.
        """
        for fingerprint, _, holder, root_ref, leaked_ref, _ in self.entries:
            if fingerprint not in fingerprints:
                continue
            root, leaked = root_ref(), leaked_ref()
            if holder is None or _weakly_keyed(holder, root) or _weakly_keyed(root, leaked):
                return True
        return False

    def by_fingerprint(self) -> dict[str, tuple[str, str, Any, Any, Any, bool]]:
        return {entry[0]: entry for entry in self.entries}

    def close(self) -> None:
        self.entries.clear()


@dataclass(frozen=True)
class _Box:
    """A strong reference with a weak reference's interface, for what cannot be weakly referenced."""

    obj: Any

    def __call__(self) -> Any:
        return self.obj


def _hold(obj: Any) -> Any:
    """A weak reference to *obj* when it takes one, else a box: either way, call it to get *obj* back."""
    try:
        return weakref.ref(obj)
    except TypeError:
        return _Box(obj)


def _holds(holds: Any, holder: Any, obj: Any) -> bool:
    """*holds* (identity) through the holder itself or its attribute dict: versions differ in which reports."""
    if holds(holder, obj):
        return True
    attrs = attribute_dict(holder)
    return attrs is not None and holds(attrs, obj)


def _held_elsewhere(entry: tuple[str, str, Any, Any, Any, bool]) -> bool:
    """Whether the root of a probe entry has references beyond the entry's own (and this frame's)."""
    if isinstance(entry[3], weakref.ref):
        return entry[3]() is not None  # held weakly by us: alive means someone else holds it
    root = entry[3]()
    ours = 3 + (entry[4]() is root)  # our one or two boxes, *root* here, getrefcount's argument
    return root is not None and sys.getrefcount(root) > ours


def _weakly_keyed(holder: Any, value: Any) -> bool:
    """Whether *holder* is a dict that keeps *value* under a weak key *value* does not keep alive itself."""
    if type(holder) is not dict or value is None or value is holder:
        return False
    for key, entry in list(holder.items()):
        if entry is value and isinstance(key, weakref.ref):
            target = key()
            return target is not None and target is not value and not _reaches(value, target)
    return False


def _reaches(start: Any, target: Any, depth: int = 4, budget: int = 2000) -> bool:
    """Whether *target* is among what *start* references, a few levels down (identity only)."""
    import gc

    level, seen = [start], {id(start)}
    for _ in range(depth):
        following = []
        for ref in gc.get_referents(*level):
            if ref is target:
                return True
            if id(ref) not in seen and gc.is_tracked(ref) and len(seen) < budget:
                seen.add(id(ref))
                following.append(ref)
        level = following
    return False


@dataclass
class Settled:
    """Verdicts of second runs by fingerprint, for the whole session: strings only."""

    retentions: dict[str, Retention] = field(default_factory=dict)

    def apply(self, leak: Leak) -> Leak:
        known = self.retentions.get(leak.fingerprint or "")
        if leak.retention != UNSETTLED or known is None:
            return leak
        return _with(leak, known)


def _with(leak: Leak, retention: Retention, attributed_to: str | None = None) -> Leak:
    import dataclasses

    return dataclasses.replace(leak, retention=retention, attributed_to=attributed_to)


def shown_again(entry: tuple[str, str, Any, Any, Any, bool], again: list[Leak]) -> Leak | None:
    """The second run's leak under the same holder as a probe entry: what each run adds."""
    root_name, leaked = entry[1], entry[4]()
    under = [leak for leak in again if same_holder(root_name, holder_root(leak.retained_by))]
    same_kind = qualified_type(leaked) if leaked is not None else None
    return next((leak for leak in under if leak.type == same_kind), under[0] if under else None)


def settle(leak: Leak, retentions: dict[str, Retention], shown: dict[str, Leak | None] | None = None) -> Leak:
    """An unsettled leak with the retention its second run gave.

    Without one (the test failed anyway, or another plugin ran its protocol),
    a leak under a known holder counts as growing, and one that nothing
    gc-visible holds (C state, another thread's stack: execnet's buffers in
    an xdist worker) as retained once: it is listed, never failed on a guess.
    """
    if leak.retention != UNSETTLED:
        return leak
    default = GROWS if holder_root(leak.retained_by) else ONCE
    retention = retentions.get(leak.fingerprint or "", default)
    again = (shown or {}).get(leak.fingerprint or "")
    if retention == GROWS and again is not None and again.type not in (leak.type, UNTRACKED):
        return _with(again, GROWS)  # the first run named the container it made (a bucket, a fixture's value)
    return _with(leak, retention)


__all__ = [
    "EARLIER",
    "GROWS",
    "ONCE",
    "UNSETTLED",
    "EarlierLeaks",
    "Probe",
    "Retention",
    "Settled",
    "by_holder",
    "holder_root",
    "same_holder",
    "settle",
]
