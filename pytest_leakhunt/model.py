"""Results as plain data: strings and ints only, never the leaked objects.

Everything here is JSON-able and survives pickling/serialization through
pytest-xdist, so a finding can travel and be rendered long after the objects
it describes are gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, cast

#: what a leak is: objects program state holds ("object"; "tracked" when ``leak_tracker`` watched them), what
#: grew on every run of ``--leaks-repeat`` ("growth"), or a resource left running or open
LeakKind = Literal["object", "tracked", "growth", "thread", "task", "process", "fd"]
#: whether running the test again leaves the same again: "grows" fails the test; "once" (a lazy singleton, a
#: first-use memo, an overwritten slot) and "earlier" (more of an earlier test's growing leak) are listed, not
#: failed; "unsettled" until a second run decides
Retention = Literal["grows", "once", "earlier", "unsettled"]
#: a checked test's outcome as far as leaks go
Outcome = Literal["passed", "failed"]

#: Leak.kind of resources left running or open (threads, asyncio tasks, child processes, descriptors)
RESOURCE_KINDS = frozenset({"thread", "task", "process", "fd"})
#: Leak.type of values the collector does not track, seen as a module-level container that got longer
UNTRACKED = "untracked values"


@dataclass(frozen=True)
class Leak:
    """One leak group: objects of one type kept alive by one retainer path."""

    type: str
    count: int
    shallow_bytes: int
    retained_bytes: int
    retained_by: tuple[str, ...]
    allocated_at: str | None = None
    kind: LeakKind = "object"
    #: a tracked object's name; a thread's or task's name; a process id or descriptor number
    name: str | None = None
    #: type of the object the chain ends at, when it is not ``type`` itself
    root_type: str | None = None
    #: growth only: the module-level container that kept the run's untracked values (``pkg.mod.CACHE``)
    holder: str | None = None
    #: the usual fix when the leak matches a known pattern (see ``hints``)
    hint: str | None = None
    #: a stable name for the leak group, from names only (see ``hints.fingerprint``)
    fingerprint: str | None = None
    retention: Retention = "grows"
    #: with retention "earlier": the test whose leak this one grows
    attributed_to: str | None = None
    #: resources and growth, which no chain holds: what describes them (a thread's target, what grew per run)
    details: tuple[str, ...] = ()
    #: growth only: the measured runs it grew on
    runs: int | None = None

    @property
    def path(self) -> str:
        """The retainer chain as one readable expression."""
        return render_path(self.retained_by)

    def to_json(self) -> dict[str, Any]:
        # field by field: dataclasses.asdict deep-copies every value, a cost paid per leaking test
        data: dict[str, Any] = {
            "type": self.type,
            "count": self.count,
            "shallow_bytes": self.shallow_bytes,
            "retained_bytes": self.retained_bytes,
            "retained_by": list(self.retained_by),
            "allocated_at": self.allocated_at,
            "kind": self.kind,
            "retention": self.retention,
        }
        for optional in ("name", "root_type", "holder", "hint", "fingerprint", "attributed_to", "runs"):
            value = getattr(self, optional)
            if value is not None:
                data[optional] = value
        if self.details:
            data["details"] = list(self.details)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Leak:
        return cls(
            type=data["type"],
            count=int(data["count"]),
            shallow_bytes=int(data.get("shallow_bytes", 0)),
            retained_bytes=int(data["retained_bytes"]),
            retained_by=tuple(data["retained_by"]),
            allocated_at=data.get("allocated_at"),
            kind=cast(LeakKind, data.get("kind", "object")),
            name=data.get("name"),
            root_type=data.get("root_type"),
            holder=data.get("holder"),
            hint=data.get("hint"),
            fingerprint=data.get("fingerprint"),
            retention=cast(Retention, data.get("retention", "grows")),
            attributed_to=data.get("attributed_to"),
            details=tuple(data.get("details", ())),
            runs=data.get("runs"),
        )


@dataclass(frozen=True)
class TestLeaks:
    """The verdict for one checked test."""

    __test__ = False  # not a test class, despite the name

    nodeid: str
    leaks: tuple[Leak, ...] = ()
    outcome: Outcome = "passed"
    error: str | None = None
    more_groups: int = 0
    #: what the test retained without growing (``Leak.retention`` "once" or "earlier"): shown, not failed
    retained: tuple[Leak, ...] = ()

    @property
    def objects(self) -> int:
        return sum(leak.count for leak in self.leaks if leak.kind in ("object", "tracked"))

    @property
    def resources(self) -> int:
        return sum(leak.count for leak in self.leaks if leak.kind in RESOURCE_KINDS)

    @property
    def retained_bytes(self) -> int:
        return sum(leak.retained_bytes for leak in self.leaks if leak.kind in ("object", "tracked"))

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "nodeid": self.nodeid,
            "outcome": self.outcome,
            "leaks": [leak.to_json() for leak in self.leaks],
        }
        if self.error is not None:
            data["error"] = self.error
        if self.more_groups:
            data["more_groups"] = self.more_groups
        if self.retained:
            data["retained"] = [leak.to_json() for leak in self.retained]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TestLeaks:
        return cls(
            nodeid=data["nodeid"],
            leaks=tuple(Leak.from_json(item) for item in data["leaks"]),
            outcome=cast(Outcome, data.get("outcome", "failed")),
            error=data.get("error"),
            more_groups=int(data.get("more_groups", 0)),
            retained=tuple(Leak.from_json(item) for item in data.get("retained", ())),
        )


#: The verdict of every clean test: one shared object, since a clean verdict carries nothing to report.
CLEAN = TestLeaks(nodeid="", outcome="passed")


@dataclass
class RunTotals:
    """Verdicts for the whole session (mutable: it accumulates).

    Kept by test id, so a test that runs again (pytest-rerunfailures) counts
    once, with the verdict of its last run.
    """

    checked: set[str] = field(default_factory=set)
    found: dict[str, TestLeaks] = field(default_factory=dict)
    allowed: dict[str, str] = field(default_factory=dict)
    #: with a JSON report: test id -> (process RSS after its teardown, growth since the previous test's)
    memory: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: leaks the baseline knows: fingerprint -> (first test that showed it, description)
    baselined: dict[str, tuple[str, str]] = field(default_factory=dict)

    def most_growth(self, n: int = 3) -> list[tuple[str, int]]:
        """The tests after which the process grew most, largest first."""
        grown = [(nodeid, growth) for nodeid, (_, growth) in self.memory.items() if growth > 0]
        return sorted(grown, key=lambda item: -item[1])[:n]

    def record(self, nodeid: str, result: TestLeaks | None) -> None:
        """A checked test's verdict; None when it left nothing behind."""
        self.checked.add(nodeid)
        self.found.pop(nodeid, None)
        if result is not None:
            self.found[nodeid] = result

    def allow(self, nodeid: str, reason: str) -> None:
        self.allowed[nodeid] = reason

    def merge(self, other: RunTotals) -> None:
        """Fold in another process's totals (an xdist worker's)."""
        for nodeid in sorted(other.checked - set(other.found)):
            self.record(nodeid, None)
        for nodeid, result in other.found.items():
            self.record(nodeid, result)
        self.allowed.update(other.allowed)
        self.memory.update(other.memory)
        for key, value in other.baselined.items():
            self.baselined.setdefault(key, value)

    @property
    def tests_checked(self) -> int:
        return len(self.checked)

    @property
    def leaking(self) -> list[TestLeaks]:
        return [r for r in self.found.values() if r.leaks or r.error]

    @property
    def retained(self) -> list[tuple[str, Leak]]:
        """What tests retained without growing, by test: listed, never failed."""
        return [(r.nodeid, leak) for r in self.found.values() for leak in r.retained]

    def summary(self) -> dict[str, int]:
        leaking = self.leaking
        return {
            "tests_checked": self.tests_checked,
            "tests_leaking": sum(1 for r in leaking if r.leaks),
            "objects_leaked": sum(r.objects for r in leaking),
            "bytes_retained": sum(r.retained_bytes for r in leaking),
            "tests_retaining_once": sum(1 for r in self.found.values() if r.retained),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "checked": sorted(self.checked),
            "found": [result.to_json() for result in self.found.values()],
            "allowed": dict(self.allowed),
            "memory": [[nodeid, rss, growth] for nodeid, (rss, growth) in self.memory.items()],
            "baselined": [[key, nodeid, text] for key, (nodeid, text) in self.baselined.items()],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunTotals:
        totals = cls(checked=set(data.get("checked", ())), allowed=dict(data.get("allowed", {})))
        totals.memory = {nodeid: (int(rss), int(growth)) for nodeid, rss, growth in data.get("memory", ())}
        totals.baselined = {key: (nodeid, text) for key, nodeid, text in data.get("baselined", ())}
        for item in data.get("found", ()):
            result = TestLeaks.from_json(item)
            totals.found[result.nodeid] = result
        return totals


def render_path(segments: tuple[str, ...] | list[str]) -> str:
    """``("shop.orders", "OrderService", "history", "[0]")`` -> ``shop.orders.OrderService.history[0]``."""
    out = ""
    for segment in segments:
        if not out:
            out = segment
        elif segment.startswith("[") or segment.startswith("<"):
            out += segment if segment.startswith("[") else f" {segment}"
        else:
            out += f".{segment}"
    return out
