"""The registered plugin object and the per-test hooks: when a test's check runs, and where its verdict goes.

Only this module talks to pytest's runtest protocol. A checked test's
protocol runs inside a check window (``check.Checker``) and its reports are
logged once the check and the settle stage (``settle.Settler``) have given
the verdict, which the teardown report carries. A test that another plugin
reruns (pytest-rerunfailures) is checked when pytest asks for its teardown
report instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_leakhunt import growth, resources
from pytest_leakhunt.check import Checker
from pytest_leakhunt.config import Settings, TestPolicy, policy_for
from pytest_leakhunt.harness import Harness
from pytest_leakhunt.model import CLEAN, RunTotals, TestLeaks
from pytest_leakhunt.report import describe, render_summary, render_test, write_json
from pytest_leakhunt.settle import Settler
from pytest_leakhunt.stash import FAILED_KEY, POLICY_KEY

if TYPE_CHECKING:
    from pytest_leakhunt.baseline import Baseline

__all__ = ["LeakHunt", "failed_by_leak", "record", "show_leaked"]

_RUNTEST_PLUGIN = "leakhunt-runtest"
_REPEAT_PLUGIN = "leakhunt-repeat"
_STATUS_PLUGIN = "leakhunt-status"


class LeakHunt:
    """Per-session state and hooks of pytest-leakhunt."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.totals = RunTotals()
        #: inside the extra runs of --leaks-repeat: no check windows, no memory notes
        self.repeating = False
        #: the known leaks of --leaks-baseline, read (and refused if malformed) now, at configuration
        self.baseline: Baseline | None = None
        if settings.baseline_path:
            from pytest_leakhunt.baseline import Baseline  # only for --leaks-baseline
            from pytest_leakhunt.config import source

            self.baseline = Baseline.load(
                settings.baseline_path, source(config, "--leaks-baseline"), settings.baseline_update
            )
        earlier = growth.EarlierLeaks()
        #: each fingerprint's answer from the settle stage, which the check reads to give a known leak again
        settled = growth.Settled()
        #: what pytest and its plugins hold, and the hook codes
        self.harness = Harness(config, self)
        #: the check windows and the census → classify → explain stages
        self.checker = Checker(config, settings, self.harness, earlier, settled)
        #: the settle stage: grows or retained once
        self.settler = Settler(settings, self.checker, earlier, settled)
        self._earlier = earlier

    # -- configuration-time validation ------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Policies for the tests that will run: a suite can deselect tens of thousands (click's -m 'not stress')."""
        needed = self.settings.detect_leaks
        repeats = False
        parents: dict[int, pytest.Mark | None] = {}
        for item in session.items:
            policy = item.stash[POLICY_KEY] = policy_for(item, self.settings, parents)
            needed = needed or policy.check or "leak_tracker" in getattr(item, "fixturenames", ())
            repeats = repeats or bool(policy.check and policy.repeat)
        # The runtest hooks cost a few microseconds per test: only pay them when some test is checked.
        manager = self.config.pluginmanager
        if needed and not manager.has_plugin(_RUNTEST_PLUGIN):
            manager.register(RuntestHooks(self), _RUNTEST_PLUGIN)
        if repeats and not manager.has_plugin(_REPEAT_PLUGIN):
            from pytest_leakhunt.repeat import RepeatHooks  # imported on demand: most runs never repeat

            manager.register(RepeatHooks(self), _REPEAT_PLUGIN)

    def pytest_plugin_registered(self) -> None:
        self.harness.plugin_generation += 1

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not (self.totals.checked or self.totals.allowed):
            return
        leaking = self.totals.leaking
        if leaking:
            terminalreporter.write_sep("=", "LEAKS", red=True, bold=True)
            for result in leaking:
                terminalreporter.write_sep("_", result.nodeid, red=True)
                terminalreporter.write_line(render_test(result, traced=self.settings.trace))
        terminalreporter.write_sep("=", "leakhunt summary", red=bool(leaking))
        for line in [*render_summary(self.totals), *self._baseline_lines()]:
            terminalreporter.write_line(line)

    def _baseline_lines(self) -> list[str]:
        """What the baseline let through, what in it no longer occurs, and what was written."""
        return self.baseline.lines(self.totals.baselined) if self.baseline is not None else []

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """The session's files, written whole and only if the run completed; a failure is a line of the summary."""
        from pytest_leakhunt import artifacts

        files = artifacts.current(self.config)  # registered at configuration when some file is asked for
        if files is None or hasattr(self.config, "workerinput"):
            return  # nothing to write, or a worker's findings go to the controller
        settings, totals, version = self.settings, self.totals, pytest.__version__
        if settings.report_path:
            files.finish(
                artifacts.REPORT, settings.report_path, lambda path: write_json(path, totals, version), exitstatus
            )
        if settings.html_path:
            from pytest_leakhunt import html  # only for --leaks-html

            files.finish(artifacts.HTML, settings.html_path, lambda path: html.write(path, totals, version), exitstatus)
        baseline = self.baseline
        if baseline is not None and baseline.updating:
            files.finish(artifacts.BASELINE, baseline.path, lambda _: baseline.update(totals.baselined), exitstatus)

    def pytest_unconfigure(self) -> None:
        self._earlier.clear()
        self.checker.clear()
        self.harness.clear()


class StatusHooks:
    """The "LEAKED" status of a test, registered by the first leak a process reports or receives.

    pytest asks every plugin for the status of each of a test's three reports;
    a suite without leaks need not pay for that.
    """

    @staticmethod
    def pytest_report_teststatus(report: pytest.TestReport) -> tuple[str, str, tuple[str, dict[str, bool]]] | None:
        # outcome "rerun" (pytest-rerunfailures) keeps its own status: the last run decides
        if report.outcome != "failed" or report.when != "teardown":
            return None
        return ("leaked", "L", ("LEAKED", {"red": True})) if failed_by_leak(report) else None


def _rerun_owns(item: pytest.Item, count: Callable[[pytest.Item], int | None] | None) -> bool:
    """Whether pytest-rerunfailures (its *count* of reruns, when installed) runs *item*'s protocol."""
    return bool(count is not None and count(item))


def failed_by_leak(report: pytest.TestReport) -> bool:
    """Whether the check failed this (teardown) report: the test's own failures leave it unset."""
    data = getattr(report, "leakhunt", None)
    return isinstance(data, dict) and bool(data.get("leaked"))


def show_leaked(config: pytest.Config) -> None:
    """Register StatusHooks once, before the first leaked report reaches the terminal."""
    if not config.pluginmanager.has_plugin(_STATUS_PLUGIN):
        config.pluginmanager.register(StatusHooks(), _STATUS_PLUGIN)


class RuntestHooks:
    """The per-test hooks, registered only when some collected test is checked."""

    def __init__(self, hunt: LeakHunt) -> None:
        self.hunt = hunt
        self._last_rss: int | None = None
        #: RSS after each test is noted only for the reports that show it
        self._memory_notes = bool(hunt.settings.report_path or hunt.settings.html_path)
        #: a clean verdict is recorded here and its report left alone, unless that report carries data:
        #: memory notes, or an xdist worker's reports (the controller counts a crashed worker's checks from them)
        self._inline = not self._memory_notes and not hasattr(hunt.config, "workerinput")
        plugin = hunt.config.pluginmanager.get_plugin("rerunfailures")
        #: pytest-rerunfailures' count of reruns for a test, when it is installed
        self._reruns: Callable[[pytest.Item], int | None] | None = getattr(plugin, "get_reruns_count", None)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
        """Run a watched test's protocol ourselves, as pytest does, and check it once the protocol has returned.

        By then pytest's stack has unwound and ``item.funcargs`` is released:
        what is still alive is held by something that outlives the test. The
        reports are logged after the check, the teardown report carrying the
        verdict. A test that pytest-rerunfailures will rerun is left to it and
        checked at its teardown report instead (``pytest_runtest_makereport``).
        """
        hunt = self.hunt
        policy = self._policy(item)
        if policy is None or hunt.repeating or _rerun_owns(item, self._reruns):
            return None
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        reports = hunt.checker.run_protocol(item, nextitem, policy)
        verdict = hunt.checker.close_window(item)
        passed = not item.stash.get(FAILED_KEY, False) and all(report.passed for report in reports)
        verdict = hunt.settler.settle(item, nextitem, verdict, rerun=passed)
        repeats = hunt.config.pluginmanager.get_plugin(_REPEAT_PLUGIN) if passed and policy.repeat else None
        if repeats is not None:  # --leaks-repeat: the extra runs come after the real run and its check
            verdict = repeats.after_real_run(item, nextitem, policy.repeat, verdict)
        if reports and reports[-1].when == "teardown":
            self._finish(item, reports[-1], verdict)
        for report in reports:
            ihook.pytest_runtest_logreport(report=report)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, object, object]:
        """The window of a test whose protocol another plugin runs (pytest-rerunfailures)."""
        if not self.hunt.checker.watching(item):
            policy = self._policy(item)
            if policy is not None and not self.hunt.repeating:
                self.hunt.checker.open_window(item, policy)
        return (yield)

    def _policy(self, item: pytest.Item) -> TestPolicy | None:
        """The policy of a test that is checked or tracks objects; None for the others."""
        policy = item.stash.get(POLICY_KEY, None) or policy_for(item, self.hunt.settings)
        if policy.check or "leak_tracker" in getattr(item, "fixturenames", ()):
            return policy
        return None

    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport | None:
        """The check of a test whose protocol another plugin runs, when pytest asks for its teardown report.

        A plain implementation, not a wrapper: pytest asks three times per test,
        and a wrapper costs a generator each time. A clean test's report is left
        to pytest; a verdict to show goes on a report made here, the way
        pytest's own implementation makes it.
        """
        if call.when != "teardown" or self.hunt.repeating or self.hunt.checker.unwinding(item):
            return None  # setup and call, an extra run, or a test whose protocol we run
        verdict = self.hunt.settler.settle(item, None, self.hunt.checker.close_window(item), rerun=False)
        if verdict is CLEAN and self._inline:
            self.hunt.totals.record(item.nodeid, None)
            return None
        if verdict is None and not self._memory_notes and not self._allowed(item):
            return None
        report = pytest.TestReport.from_item_and_call(item, call)
        self._annotate(item, report, verdict)
        self._note_memory(report)
        # The totals of the tests this process ran, taken here rather than in a logreport hook (one
        # call per phase); an xdist controller runs no test and gets its workers' at node shutdown.
        record(self.hunt.totals, report)
        return report

    def _finish(self, item: pytest.Item, report: pytest.TestReport, verdict: TestLeaks | None) -> None:
        """The verdict onto the teardown report pytest made, before it is logged."""
        if verdict is CLEAN and self._inline:
            self.hunt.totals.record(item.nodeid, None)
            return
        if verdict is None and not self._memory_notes and not self._allowed(item):
            return
        self._annotate(item, report, verdict)
        self._note_memory(report)
        record(self.hunt.totals, report)

    def pytest_exception_interact(
        self,
        node: pytest.Item | pytest.Collector,
        call: pytest.CallInfo[Any],
        report: pytest.TestReport | pytest.CollectReport,
    ) -> None:
        """A failed setup or call: a leak of this test then goes with its failure instead of failing it twice.

        pytest calls this only when a phase raised (not for xfail or skips), so
        passing tests pay nothing for it.
        """
        if report.failed and getattr(report, "when", None) in ("setup", "call"):
            node.stash[FAILED_KEY] = True

    def _allowed(self, item: pytest.Item) -> str | None:
        """The reason of an ``allow_leaks`` marker that switched the check off for *item*, under --detect-leaks."""
        policy = item.stash.get(POLICY_KEY, None)
        if policy is not None and policy.allowed_reason and self.hunt.settings.detect_leaks:
            return policy.allowed_reason
        return None

    def _annotate(self, item: pytest.Item, report: pytest.TestReport, verdict: TestLeaks | None) -> None:
        """The teardown report carries the verdict: a leak fails the test, and the data goes to the totals."""
        if verdict is None:
            allowed = self._allowed(item)
            if allowed:
                report.leakhunt = {"allowed": allowed}  # type: ignore[attr-defined]
            return
        data: dict[str, Any] = {"checked": True}
        if verdict.leaks and self.hunt.baseline is not None:
            baselined, new = self.hunt.baseline.split(verdict.leaks)
            if baselined:
                data["baselined"] = [[leak.fingerprint, describe(leak)] for leak in baselined]
                verdict = dataclasses.replace(verdict, leaks=tuple(new))
        if verdict.retained:
            data["result"] = verdict.to_json()
        if verdict.leaks or verdict.error:
            already_failed = item.stash.get(FAILED_KEY, False) or report.failed
            text = render_test(verdict, traced=self.hunt.settings.trace)
            if already_failed:
                report.sections.append(("leaks found at teardown", text))
            else:
                report.outcome = "failed"
                report.longrepr = text
                data["leaked"] = True
                show_leaked(self.hunt.config)
            data["result"] = verdict.to_json()
        report.leakhunt = data  # type: ignore[attr-defined]

    def _note_memory(self, report: pytest.TestReport) -> None:
        """With a JSON report, the process's RSS after each test: the session's memory curve."""
        if not self._memory_notes:
            return  # (the extra runs of --leaks-repeat never get here: the report hook returns first)
        rss = resources.rss_bytes()
        if rss is None:
            return
        growth = rss - self._last_rss if self._last_rss is not None else 0
        self._last_rss = rss
        data = getattr(report, "leakhunt", None)
        notes = {**(data if isinstance(data, dict) else {}), "rss": rss, "growth": growth}
        report.leakhunt = notes  # type: ignore[attr-defined]


def record(totals: RunTotals, report: pytest.TestReport) -> None:
    """Add what a teardown report says about its test to *totals*."""
    if report.when != "teardown":
        return
    data = getattr(report, "leakhunt", None)
    if not isinstance(data, dict):
        return
    if "rss" in data:
        totals.memory[report.nodeid] = (int(data["rss"]), int(data["growth"]))
    for key, text in data.get("baselined", ()):
        totals.baselined.setdefault(key, (report.nodeid, text))
    if "allowed" in data:
        totals.allow(report.nodeid, data["allowed"])
    elif data.get("checked"):
        totals.record(report.nodeid, TestLeaks.from_json(data["result"]) if "result" in data else None)
