"""Repeat mode: run a test again and again and report what grows on every run.

The method of CPython's own ``-R`` (huntrleaks), on a release build: one
warm-up run settles first-use caches, then each measured run is checked for
what it left behind. Objects are counted by type among the run's survivors
(the heap is frozen around each run, so this costs what the run allocated);
bytes are what tracemalloc still sees allocated by the run on lines of the
project's own code (not pytest's, a plugin's or an installed library's), which
includes objects the collector does not track (a global list of ``bytes``). Something that grows on every measured run is a leak, whatever
holds it.
"""

from __future__ import annotations

import collections
import gc
import statistics
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pytest_leakhunt import sites
from pytest_leakhunt.classify import is_subject
from pytest_leakhunt.model import Leak
from pytest_leakhunt.naming import qualified_type
from pytest_leakhunt.window import HeapWindow

#: Bytes a run must keep, on every run, to count as growth (allocator noise stays below it).
MIN_BYTES = 64

#: Allocations made by the harness itself (captured output, report sections) are not the test's.
_HARNESS_FILTERS = [
    tracemalloc.Filter(False, pattern)
    for pattern in ("*/_pytest/*", "*/pluggy/*", "*/pytest_leakhunt/*", "*/tracemalloc.py", "<frozen importlib._bootstrap*>")
]


@dataclass(frozen=True)
class RunGrowth:
    """What one run left alive: subject objects by type, and bytes (None when tracing was not ours)."""

    objects: dict[str, int]
    bytes: int | None
    site: str | None
    #: the module-level container that kept most of the run's untracked values, with (values, bytes)
    holder: tuple[str, int, int] | None = None


def measure(run: Callable[[], Any], harness_codes: frozenset[int], rootdir: str) -> RunGrowth:
    """Run once with the heap frozen and traced; count what survives it."""
    ours = not tracemalloc.is_tracing()
    gc.collect()
    objs: list[Any] = []
    with HeapWindow(trace_depth=1 if ours else 0):
        try:
            run()
            gc.collect()
            objs = gc.get_objects()
            # the snapshot first: what we allocate below to count objects is not the run's
            snapshot = tracemalloc.take_snapshot().filter_traces(_HARNESS_FILTERS) if ours else None
            counts = collections.Counter(
                qualified_type(obj)
                for obj in objs
                if is_subject(obj, harness_codes) and not (ours and _made_by_harness(obj))
            )
            holder = None
            if snapshot is not None and sum(stat.size for stat in snapshot.statistics("filename")) >= MIN_BYTES:
                holders = sites.untracked_holders()  # before tracing stops: it asks tracemalloc who is new
                holder = holders[0] if holders else None
        finally:
            objs.clear()
    if snapshot is None:
        return RunGrowth(dict(counts), None, None)
    # bytes made on lines of the project's own code: pytest plugins and libraries keep per-test bookkeeping
    stats = [stat for stat in snapshot.statistics("lineno") if sites.is_user_file(stat.traceback[0].filename)]
    site = sites.site(stats[0].traceback[0].filename, stats[0].traceback[0].lineno, rootdir) if stats else None
    kept = sum(stat.size for stat in stats)
    return RunGrowth(dict(counts), kept, site, holder)


def _holder_text(holder: tuple[str, int, int] | None) -> str | None:
    if holder is None:
        return None
    path, values, _ = holder
    return f"{path} (+{values} value{'' if values == 1 else 's'} in the last run)"


def _made_by_harness(obj: Any) -> bool:
    """Allocated in pytest's own code (a capture stream for the next phase, say)."""
    trace = sites.object_traceback(obj)
    return trace is not None and len(trace) > 0 and _is_harness_file(trace[0].filename)


def _is_harness_file(filename: str) -> bool:
    """pytest, pluggy, xdist and any ``pytest_*`` plugin module."""
    return any(part in filename for part in ("/_pytest/", "/pluggy/", "/xdist/", "/execnet/", "/pytest_"))


def growth(runs: list[RunGrowth]) -> Leak | None:
    """A leak when objects or bytes grew on every measured run; None otherwise."""
    if not runs:
        return None
    always = set(runs[0].objects)
    for run in runs[1:]:
        always &= set(run.objects)
    per_type = {name: int(statistics.median(run.objects[name] for run in runs)) for name in always}
    sizes = [run.bytes for run in runs]
    grew_bytes = all(size is not None and size >= MIN_BYTES for size in sizes)
    if not per_type and not grew_bytes:
        return None
    ranked = sorted(per_type.items(), key=lambda item: (-item[1], item[0]))
    top_type, top_count = ranked[0] if ranked else ("memory", 0)
    return Leak(
        type=top_type,
        count=top_count,
        shallow_bytes=0,
        # bytes kept per run (median), 0 when only objects grew
        retained_bytes=int(statistics.median(size or 0 for size in sizes)) if grew_bytes else 0,
        retained_by=(),
        details=tuple(f"+{count} {name}" for name, count in ranked[:3]),
        allocated_at=runs[-1].site,
        holder=_holder_text(runs[-1].holder) if grew_bytes else None,
        kind="growth",
        runs=len(runs),
    )
