"""What a test's ``leak_tracker`` watches and is still alive after teardown, as leaks of kind "tracked"."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_leakhunt import edges, retainers, sites
from pytest_leakhunt.model import Leak
from pytest_leakhunt.modglobals import ModuleGlobals
from pytest_leakhunt.window import HeapWindow

if TYPE_CHECKING:
    from pytest_leakhunt.tracker import LeakTracker


def tracked_leaks(
    tracker: LeakTracker, reported: set[int], window: HeapWindow, module_globals: ModuleGlobals, rootpath: str
) -> list[Leak]:
    """The watched objects still alive, less those the census reported (*reported*, by id), each with its chain."""
    window.collect()
    if tracker.alive():
        window.collect_all()  # a frozen cycle that holds a watched object is only freed unfrozen
    leaks = []
    for watched in tracker.alive():
        obj = tracker.peek(watched)
        if obj is None or id(obj) in reported:
            continue
        chain = retainers.find_chain(obj, ignore=[tracker], module_globals=module_globals)
        segments = edges.describe_chain(chain)
        del chain
        leaks.append(
            Leak(
                type=watched.type,
                count=1,
                shallow_bytes=sites.shallow_size(obj),
                retained_bytes=sites.retained_size([obj]),
                retained_by=segments,
                allocated_at=sites.allocation_site(obj, rootpath),
                kind="tracked",
                name=watched.name,
            )
        )
        del obj
    return leaks
