"""pytest-xdist integration, registered only when xdist is installed.

Each worker checks the tests it runs (a leak only exists in the process that
made it) and fails them there; the failure travels back with the test's own
report. The session totals travel once, through xdist's ``workeroutput``
channel, and the controller merges them as each node shuts down, so it prints
one summary and writes one JSON report.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_leakhunt import artifacts
from pytest_leakhunt.model import RunTotals
from pytest_leakhunt.session import LeakHunt, failed_by_leak, record, show_leaked

#: key of our data in ``config.workeroutput`` / ``node.workeroutput``
OUTPUT_KEY = "leakhunt"
#: files a worker could not write (heap snapshots), for the controller's summary
FILES_KEY = "leakhunt-files"


class XdistHooks:
    """The hooks xdist adds; pytest would reject them as unknown without it."""

    def __init__(self, hunt: LeakHunt) -> None:
        self.hunt = hunt
        #: per node, what its reports said: used only if the node dies without sending its totals
        self._from_reports: dict[str, RunTotals] = {}

    # -- controller ---------------------------------------------------------

    def pytest_configure_node(self, node: Any) -> None:
        self._from_reports[_node_id(node)] = RunTotals()

    @pytest.hookimpl(tryfirst=True)  # before the terminal asks for the report's status
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        node = getattr(report, "node", None)
        if node is not None:
            record(self._from_reports.setdefault(_node_id(node), RunTotals()), report)
            if failed_by_leak(report):
                show_leaked(self.hunt.config)

    def pytest_testnodedown(self, node: Any, error: object) -> None:
        sent = getattr(node, "workeroutput", {}).get(OUTPUT_KEY)
        fallback = self._from_reports.pop(_node_id(node), RunTotals())
        # A worker that crashed sent nothing; its tests' reports still arrived one by one.
        self.hunt.totals.merge(RunTotals.from_json(sent) if isinstance(sent, dict) else fallback)
        failed = getattr(node, "workeroutput", {}).get(FILES_KEY)
        if failed:
            artifacts.register(self.hunt.config).merge_json(failed)

    # -- worker -------------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        output = getattr(session.config, "workeroutput", None)
        if output is not None:
            output[OUTPUT_KEY] = self.hunt.totals.to_json()
            files = artifacts.current(session.config)
            if files is not None and files.problems:
                output[FILES_KEY] = files.to_json()


def _node_id(node: Any) -> str:
    return str(getattr(getattr(node, "gateway", None), "id", id(node)))
