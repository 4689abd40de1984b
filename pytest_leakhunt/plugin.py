"""pytest11 entry point: options, ini twins, markers; the work lives in ``session.LeakHunt``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from pytest_leakhunt import artifacts
from pytest_leakhunt.config import (
    ALLOW_LEAKS_SIGNATURE,
    NO_LEAKS_SIGNATURE,
    OPTIONS,
    resolve,
)
from pytest_leakhunt.session import LeakHunt
from pytest_leakhunt.stash import TRACKER_KEY

if TYPE_CHECKING:
    from pytest_leakhunt.tracker import LeakTracker

_PLUGIN_NAME = "leakhunt-session"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("leakhunt", "memory leak detection (pytest-leakhunt)")
    for option in OPTIONS:
        if option.flag:
            group.addoption(option.name, action="store_true", default=None, dest=option.ini, help=option.help)
        else:
            group.addoption(
                option.name, action="store", default=None, dest=option.ini, metavar="VALUE", help=option.help
            )
        parser.addini(option.ini, help=option.help, type="string", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{NO_LEAKS_SIGNATURE}: fail this test if it leaves objects alive in program state, "
        "even without --detect-leaks; ignore_types lists types (or qualified names) never reported.",
    )
    config.addinivalue_line(
        "markers",
        f"{ALLOW_LEAKS_SIGNATURE}: do not check this test under --detect-leaks; the reason is shown in the summary.",
    )
    settings = resolve(config)
    if settings.report_path or settings.html_path or settings.snapshot_dir or settings.baseline_update:
        artifacts.register(config)  # before the first write: it reports failed writes in the summary
    hunt = LeakHunt(config, settings)
    config.pluginmanager.register(hunt, _PLUGIN_NAME)
    if config.pluginmanager.hasplugin("xdist"):
        from pytest_leakhunt.xdist_hooks import XdistHooks

        config.pluginmanager.register(XdistHooks(hunt), "leakhunt-xdist")


@pytest.fixture
def leak_tracker(request: pytest.FixtureRequest) -> Iterator[LeakTracker]:
    """Watch objects with ``leak_tracker.track(obj)``; any still alive after teardown fails the test."""
    from pytest_leakhunt.tracker import LeakTracker  # imported by the tests that use it

    tracker = LeakTracker()
    request.node.stash[TRACKER_KEY] = tracker
    yield tracker
