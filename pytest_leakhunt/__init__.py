"""pytest-leakhunt: find the objects your tests leave alive in program state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_leakhunt.model import Leak, TestLeaks

if TYPE_CHECKING:
    from pytest_leakhunt.heapsnapshot import write_heap_snapshot
    from pytest_leakhunt.tracker import LeakTracker

__version__ = "0.1.0"
__all__ = ["Leak", "LeakTracker", "TestLeaks", "__version__", "write_heap_snapshot"]

#: Imported on first use: pytest loads this package in every run, and most runs need neither.
_LAZY = {"LeakTracker": "pytest_leakhunt.tracker", "write_heap_snapshot": "pytest_leakhunt.heapsnapshot"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
