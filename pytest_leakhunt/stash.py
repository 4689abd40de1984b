"""The typed stash keys a test's item carries between the plugin's hooks."""

from __future__ import annotations

import pytest

from pytest_leakhunt.config import TestPolicy
from pytest_leakhunt.tracker import LeakTracker

#: the test's settings, resolved once at collection
POLICY_KEY = pytest.StashKey[TestPolicy]()
#: set when the test's setup or call failed: a leak then goes with that failure
FAILED_KEY = pytest.StashKey[bool]()
#: the test's ``leak_tracker``, until its check
TRACKER_KEY = pytest.StashKey[LeakTracker]()
#: the file descriptors open when the check window opened
FDS_KEY = pytest.StashKey[frozenset[int] | None]()
