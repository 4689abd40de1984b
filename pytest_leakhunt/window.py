"""The check window over the heap: the one place that freezes and unfreezes it.

``gc.freeze()`` when the window opens moves every object alive into the
permanent generation, so a collection and ``gc.get_objects()`` then see only
what the test made: the check costs what the test allocated, not the size of
the heap. With ``--leaks-trace``, tracemalloc runs only while a window is open.
Searching who holds an object needs the old heap visible again
(``gc.get_referrers`` skips frozen objects): that is a *thaw*, inside a window
that is closed later as usual.
"""

from __future__ import annotations

import gc
import sys
import types

#: Whether a collection of generation 1 frees everything a window allocated: CPython 3.10 to 3.13 have three
#: generations and move objects up one at a time; 3.14's incremental collector does not.
YOUNG_COLLECT = sys.version_info < (3, 14)


class HeapWindow:
    """Freeze and trace at open, unfreeze and stop tracing at close; a context manager for one-shot windows.

    *trace_depth* above 0 starts tracemalloc at each open with that many
    frames, and stops it at each close; 0 leaves tracing alone.
    """

    def __init__(self, trace_depth: int = 0) -> None:
        self.trace_depth = trace_depth

    def open(self) -> None:
        """Everything alive now counts as old; with tracing, allocations from here on are traced."""
        if self.trace_depth:
            tracemalloc().start(self.trace_depth)
        gc.freeze()

    def close(self) -> None:
        """Hand the heap back to the collector and stop tracing."""
        gc.unfreeze()
        if self.trace_depth:
            tracemalloc().stop()

    def __enter__(self) -> HeapWindow:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def thaw() -> None:
        """Make the old heap visible to ``gc.get_referrers`` (and to a full collection) while the window stays open."""
        gc.unfreeze()

    def collect_all(self) -> None:
        """Collect the whole heap: an old object that turned into cyclic garbage while frozen is only freed thawed."""
        self.thaw()
        gc.collect()

    @staticmethod
    def collect() -> None:
        """Free the garbage the open window made, as cheaply as is exact.

        With the old heap frozen, generation 2 holds only objects of the window
        that a collection of generation 1 or 2 (the test's own ``gc.collect()``)
        moved there. When it is empty, collecting generation 1 sees every object
        of the window. A full collection would also empty the interpreter's free
        lists, which costs more than the collection itself and slows the next
        test while they refill. Each collection of generation 1 counts towards an
        automatic full one, which outside a window walks the whole heap: a full
        one is taken here before that count reaches its threshold.
        """
        if YOUNG_COLLECT and gc.get_count()[2] + 1 < gc.get_threshold()[2] and not gc.get_objects(2):
            gc.collect(1)
        else:
            gc.collect()


def tracemalloc() -> types.ModuleType:
    """The tracemalloc module, imported when tracing first needs it (it imports pickle: slow to load)."""
    import tracemalloc as module

    return module


def tracing() -> bool:
    """Whether tracemalloc is tracing already (the user's ``-X tracemalloc`` or a repeat run's)."""
    return bool(tracemalloc().is_tracing())
