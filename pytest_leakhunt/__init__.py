"""pytest-leakhunt: find the objects your tests leave alive in program state."""

from __future__ import annotations

from pytest_leakhunt.heapsnapshot import write_heap_snapshot
from pytest_leakhunt.model import Leak, TestLeaks
from pytest_leakhunt.tracker import LeakTracker

__version__ = "0.1.0"
__all__ = ["Leak", "LeakTracker", "TestLeaks", "__version__", "write_heap_snapshot"]
