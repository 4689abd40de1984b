"""Explain what a test leaked: group its leaked roots, find who holds each group, build ``Leak`` records.

Runs only when the census left something: the heap is thawed, since chain
searches ask ``gc.get_referrers``, which skips frozen objects. Three steps:
``grouping.Groups`` puts the roots that keep the same object together and by
type; ``_resolve`` finds one retainer chain per group
(a cached chain first) and drops groups that turn out to be a registry's or
pytest's; ``_leaks`` builds one ``Leak`` per group and holder.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from pytest_leakhunt import edges, growth, hints, modglobals, resources, retainers, sites
from pytest_leakhunt.census import Survivors, references
from pytest_leakhunt.chaincache import ChainCache
from pytest_leakhunt.classify import Context, is_subject, own_caches
from pytest_leakhunt.ctables import is_subclass_table
from pytest_leakhunt.grouping import Groups, inside_slot_dict
from pytest_leakhunt.harness import Harness, pytest_keeps
from pytest_leakhunt.model import Leak
from pytest_leakhunt.naming import module_of, qualified_type
from pytest_leakhunt.registries import is_bounded_cache
from pytest_leakhunt.roots import in_current_context, recheck_orphans, unexplained

if TYPE_CHECKING:
    from pytest_leakhunt.config import Settings

#: At most this many retainer chains per test; each costs a walk of the heap.
MAX_CHAINS = 8
#: A global that the runtime makes and fills on first use in any module (``warnings``' registry of shown warnings).
_RUNTIME_CACHE = "__warningregistry__"


#: Modules whose objects a text stream keeps in C state (its decoder and encoder), out of the collector's sight.
_CODEC_MODULES = frozenset({"encodings", "codecs"})


@dataclass
class Check:
    """One test's check, as the explain stage sees it."""

    item: pytest.Item
    ignore_types: frozenset[str]
    #: leaks whose growth a second run decides (the session's, for this check)
    probe: growth.Probe
    #: inside that second run: its leaks are compared, not judged
    probing: bool = False
    #: ids of the objects the test's leak_tracker watches and that are alive -> tracked name
    tracked: dict[int, str] = field(default_factory=dict)
    #: those the census already reported
    tracked_reported: set[int] = field(default_factory=set)


class Explainer:
    """The explain stage, and what it keeps between checks: chains found, the index of module globals."""

    def __init__(
        self, config: pytest.Config, settings: Settings, harness: Harness, earlier: growth.EarlierLeaks
    ) -> None:
        self.config = config
        self.settings = settings
        self.harness = harness
        self.earlier = earlier
        self.chains = ChainCache()
        self.globals = modglobals.ModuleGlobals()
        #: names of the codec types whose new objects only C state held in an earlier test (the decoder inside an
        #: ``io.TextIOWrapper``): names only, so that the next ones skip the heap walk
        self.held_by_c: set[str] = set()
        #: per check: ids of the objects a chain search's first walk found nothing referring to
        self._unheld: set[int] = set()

    def clear(self) -> None:
        self.chains.clear()
        self.globals.clear()

    def repeated_leak(self, obj: Any) -> list[Any] | None:
        """A chain an earlier leak found that still holds *obj*, unless it ends at a registry learned since."""
        chain = self.chains.lookup(obj, qualified_type(obj))
        if chain is not None and len(chain) >= 2:
            known = self.harness.known
            known.refresh()
            if id(chain[-2]) in known.ids():
                return None
        return chain

    def explain(
        self, check: Check, survivors: Survivors, candidates: list[int], context: Context, running: bool = False
    ) -> tuple[list[Leak], int]:
        """Group leaked roots by what they keep alive and by holder; one retainer chain per group.

        With a thread or task still *running*, values of builtin types that
        nothing gc-visible holds are on its stack: its state, reported with it.
        """
        groups = Groups.of(survivors, candidates, self.harness.hook_codes(), check.ignore_types)
        needed = [groups.anchor_of[p] for p in groups.units if groups.anchor_of[p] not in context.chains]
        if needed:
            try:
                self._resolve(check, survivors, candidates, groups, needed, context, running)
            finally:
                self._unheld.clear()
        return self._leaks(check, survivors, groups, context.chains)

    def _resolve(
        self,
        check: Check,
        survivors: Survivors,
        candidates: list[int],
        groups: Groups,
        needed: list[int],
        context: Context,
        running: bool,
    ) -> None:
        """One chain search for every group's anchor that no cached chain explains; drop what turns out benign."""
        objs, chains = survivors.objs, context.chains
        in_context = in_current_context(objs, needed)  # no module reaches the running thread's context: no search
        needed = [a for a in needed if a not in in_context] if in_context else needed
        needed = self._search(check, survivors, candidates, groups, needed, context) if needed else needed
        self._also_held(check, survivors, [objs, candidates, groups.units, chains, needed], needed, context)
        registries = self.harness.known.ids()  # a chain through a registry must not explain the next object it holds
        new = survivors.index
        for a in needed:
            if a in chains and id(chains[a][-2]) not in registries and not any(id(x) in new for x in chains[a][:-1]):
                self.chains.store(chains[a], qualified_type(objs[a]))
        # values of builtin types that only pytest's own state keeps are its bookkeeping; a broader-scope
        # fixture's value this test's setup made is not: the test may have added to it
        codes = self.harness.hook_codes()
        for a in needed:
            p = groups.principal_of(a) if a in chains else None
            if p is not None and pytest_keeps(chains[a], is_subject(objs[p], codes)):
                groups.drop(a)
        orphans = [a for a in needed if a not in chains] + in_context
        if orphans:
            self._orphans(survivors, groups, orphans, context, running)

    def _also_held(
        self, check: Check, survivors: Survivors, ours: list[Any], anchors: list[int], context: Context
    ) -> None:
        """Search again, past the holder a chain found, for an anchor something else keeps too.

        The shortest chain may end at a slot that the next run replaces while
        a list also keeps the object: the list is what grows. A chain that
        ends at a list, set or deque is kept. *ours*: our own containers,
        which the search ignores.
        """
        objs, chains = survivors.objs, context.chains
        # what each chain's holder accounts for, and the chain's own reference to its end
        through = {
            a: references(chains[a][-2], objs[a]) + 1
            for a in anchors
            if a in chains and not growth.appends(chains[a][-2])
        }
        more = unexplained(survivors, list(through), context, self.harness.known, through)
        if not more:
            return
        past = [chains[a][-2] for a in more]  # this search does not go through them; the others do
        found = self._find_chains(check.item, context, [objs[a] for a in more], [*ours, *past])
        past.clear()
        chains.update((a, chain) for a, chain in zip(more, found) if len(chain) > 1)  # else the first chain stays

    def _orphans(
        self, survivors: Survivors, groups: Groups, orphans: list[int], context: Context, running: bool
    ) -> None:
        """Groups whose anchor no module reaches: kept when something still holds them, named by that holder.

        Perhaps only old garbage held them, which a full collection frees. With
        a thread or task still *running*, values of builtin types are on its
        stack. A memoryview nothing gc-visible holds is the buffer of a read in
        progress on some thread's stack (execnet's reader under xdist): freed
        when the read returns. A table of subclasses nothing gc-visible holds
        is a class's, in C (``ctables``).
        """
        objs, codes = survivors.objs, self.harness.hook_codes()
        unheld = self._unheld
        groups.held_outside = recheck_orphans(survivors, orphans, context, self.harness.known, unheld)
        kept = set(groups.held_outside)
        if running:
            kept = {a for a in kept if is_subject(objs[a], codes)}
        kept = {a for a in kept if type(objs[a]) is not memoryview}
        # shaped like a class's table of subclasses and held by nothing the collector sees: the interpreter's
        outside = (edges.HELD_OUTSIDE,)
        kept = {a for a in kept if groups.held_outside[a] != outside or not is_subclass_table(objs[a])}
        for a in kept:
            if module_of(type(objs[a])).split(".", 1)[0] in _CODEC_MODULES:
                self.held_by_c.add(qualified_type(objs[a]))
        anchor_of = groups.anchor_of
        groups.by_type = {
            t: [p for p in ps if anchor_of[p] not in orphans or anchor_of[p] in kept]
            for t, ps in groups.by_type.items()
        }

    def _search(
        self,
        check: Check,
        survivors: Survivors,
        candidates: list[int],
        groups: Groups,
        needed: list[int],
        context: Context,
    ) -> list[int]:
        """Chains for *needed* into ``context.chains``; a bounded cache that holds an anchor is learned, not reported.

        Returns the anchors still to explain: those a learned cache accounts
        for are gone (and their groups with them).
        """
        objs, chains, units = survivors.objs, context.chains, groups.units
        # the first search's walk also tells which anchors nothing refers to (the later ones skip more holders)
        found = self._find_chains(
            check.item,
            context,
            [objs[a] for a in needed],
            [objs, candidates, units, chains, needed],
            is_bounded_cache,
            self._unheld,
        )
        cached = []
        adopted: list[Any] = []
        for a, chain in zip(needed, found):
            if len(chain) > 1 and is_bounded_cache(chain[-2]):
                # a bounded cache on some instance (a per-object lru_cache): learn it, judge again
                self.harness.known.adopt(chain[-2])
                adopted.append(chain[-2])
                cached.append(a)
            elif len(chain) > 1:
                chains[a] = chain
        del found, chain
        if not cached:
            return needed
        # the adopted caches may also explain anchors no search reached (a wide cache's other entries)
        again = [a for a in needed if a in cached or a not in chains]
        still = set(unexplained(survivors, again, context, self.harness.known))
        for a in again:
            if a not in still:
                units.pop(next(p for p in units if groups.anchor_of[p] == a), None)
        needed = [a for a in needed if a not in again or a in still]
        groups.by_type = {t: [p for p in ps if p in units] for t, ps in groups.by_type.items()}
        retry = [a for a in cached if a in still]
        if retry:  # kept by more than the cache: a search around it names the other holder
            found = self._find_chains(
                check.item,
                context,
                [objs[a] for a in retry],
                [objs, candidates, units, chains, needed, retry, *adopted],
            )
            chains.update((a, chain) for a, chain in zip(retry, found) if len(chain) > 1)
            del found
        adopted.clear()
        return needed

    def _leaks(
        self, check: Check, survivors: Survivors, groups: Groups, chains: dict[int, list[Any]]
    ) -> tuple[list[Leak], int]:
        """One ``Leak`` per group of principals of one type that share a holder; past MAX_CHAINS, a count."""
        leaks: list[Leak] = []
        more = 0
        drawn: list[tuple[list[Any], set[int]]] = []  # for --leaks-snapshot-dir: each group's chain and closure
        for type_name, principals in groups.in_order():
            pending = list(principals)
            while pending:
                if len(leaks) >= MAX_CHAINS:
                    more += 1
                    break
                leak, pending = self._leak_of(check, survivors, groups, chains, type_name, pending, drawn)
                if leak is not None:
                    leaks.append(leak)
        if drawn:
            from pytest_leakhunt import heapsnapshot  # only for --leaks-snapshot-dir

            heapsnapshot.write_leaks(
                self.config, str(self.settings.snapshot_dir), check.item.nodeid, drawn, survivors.objs
            )
            drawn.clear()
        return leaks, more

    def _leak_of(
        self,
        check: Check,
        survivors: Survivors,
        groups: Groups,
        chains: dict[int, list[Any]],
        type_name: str,
        pending: list[int],
        drawn: list[tuple[list[Any], set[int]]],
    ) -> tuple[Leak | None, list[int]]:
        """The leak of ``pending[0]`` and the principals its holder also keeps; the principals left."""
        objs, units = survivors.objs, groups.units
        first = pending[0]
        anchor = groups.anchor_of[first]
        chain = chains.get(anchor) or [objs[anchor]]
        segments = groups.held_outside.get(anchor) or edges.describe_chain(chain, ignore=[objs])
        holder = chain[-2] if len(chain) >= 2 else None
        if _RUNTIME_CACHE in segments:
            return None, pending[1:]  # the warnings module's per-module registry: a first-use cache
        # the object the leak is named after: the group's principal, or what a name-bound dict keeps
        shown = inside_slot_dict(survivors, first, segments)
        if shown is None:
            shown, shown_type = first, type_name
        else:
            shown_type = qualified_type(objs[shown])
        retention, earlier = self._retention(check, chain, segments, shown_type, objs[shown])
        picture = chain if self.settings.snapshot_dir and not check.probing else None
        del chain
        group = [first]
        if holder is not None and len(pending) > 1:
            held = set(map(id, gc.get_referents(holder)))
            group += [p for p in pending[1:] if any(id(objs[r]) in held for r in units[p])]
        del holder
        closure = survivors.closure([r for p in group for r in units[p]])
        if retention == growth.GROWS and not check.probing:
            self.earlier.remember([objs[j] for j in closure], check.item.nodeid)
        if picture is not None:
            drawn.append((picture, closure))
        del picture
        representative = objs[shown]
        tracked = check.tracked.get(id(representative))
        if tracked is not None:
            check.tracked_reported.add(id(representative))
        leak = Leak(
            type=shown_type,
            count=len(group),
            shallow_bytes=sites.shallow_size(representative),
            retained_bytes=sites.retained_size(objs[j] for j in closure),
            retained_by=segments,
            allocated_at=sites.allocation_site(representative, str(self.config.rootpath)),
            root_type=qualified_type(objs[anchor]),
            retention=growth.GROWS if tracked is not None else retention,
            attributed_to=earlier,
            kind="tracked" if tracked is not None else "object",
            name=tracked,
        )
        del representative
        return leak, [p for p in pending if p not in group]

    def _retention(
        self, check: Check, chain: list[Any], segments: tuple[str, ...], type_name: str, leaked: Any
    ) -> tuple[growth.Retention, str | None]:
        """Whether a leak grows, is more of an earlier test's growing leak, or needs a second run to tell."""
        earlier = self.earlier.leaked_by(chain)
        if earlier is not None and earlier != check.item.nodeid:
            return growth.EARLIER, earlier
        holder = chain[-2] if len(chain) >= 2 else None
        retention = growth.by_holder(holder) if holder is not None else growth.UNSETTLED
        if retention == growth.UNSETTLED:  # a second run's entries go to its own probe, for a third run and blame
            draft = Leak(type=type_name, count=1, shallow_bytes=0, retained_bytes=0, retained_by=segments)
            fresh = any(chain[0] is fixturedef for fixturedef in self.harness.fresh_fixtures)
            check.probe.add(hints.fingerprint(draft), growth.holder_root(segments), holder, chain[-1], leaked, fresh)
            if check.probing and growth.appends(holder):
                return growth.GROWS, None  # a second run's new element: what "grows" is made of
        return retention, None

    def _find_chains(
        self,
        item: pytest.Item,
        context: Context,
        targets: list[Any],
        ignore: list[Any],
        stop_at: Callable[[Any], bool] | None = None,
        unheld: set[int] | None = None,
    ) -> list[list[Any]]:
        """``retainers.find_chains`` with what the session knows about where this test's objects can be held."""
        # pytest state known to be alive: a chain ending there is not an orphan
        live = [
            *context.holders(),
            *self.harness.fresh_fixtures,
            getattr(item, "callspec", None),
            item.session,
            item.config,
        ]
        # where a test most often keeps things: its module's globals and its parameters, searched first
        module = getattr(item, "module", None)
        near = [x for x in (module, getattr(item, "callspec", None)) if x is not None]
        try:
            return retainers.find_chains(
                targets,
                ignore=[*ignore, targets, live, near, *own_caches(), *resources.own_caches()],
                module_globals=self.globals,
                live_harness=live,
                likely_modules=[getattr(module, "__name__", "")],
                near=near,
                stop_at=stop_at,
                unheld=unheld,
            )
        finally:
            live.clear()
            near.clear()
            targets.clear()
