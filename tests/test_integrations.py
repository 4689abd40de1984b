"""Coexistence with the plugins people run next to us: xdist, asyncio, randomly, rerunfailures, unittest."""

from __future__ import annotations

import json
import re

import pytest
from corpus import SMALL_SUITE
from inner import write_ini

pytest.importorskip("xdist", reason="pytest-xdist is in the test extras")

#: Two modules that leak in different tests; ``--dist loadscope`` sends each module to its own worker.
TWO_MODULES = {
    "test_alpha": """
        import os
        HELD = []
        class Alpha:
            pass
        def test_alpha_leaks():
            HELD.append(Alpha())
            open("worker-alpha", "w").write(os.environ["PYTEST_XDIST_WORKER"])
        def test_alpha_clean():
            Alpha()
    """,
    "test_beta": """
        import os
        HELD = {}
        class Beta:
            pass
        def test_beta_leaks():
            HELD.setdefault("b", []).append(Beta())
            open("worker-beta", "w").write(os.environ["PYTEST_XDIST_WORKER"])
        def test_beta_clean():
            Beta()
        def test_beta_clean_too():
            [Beta() for _ in range(3)]
    """,
}


def _leaked_ids(data: dict[str, object]) -> list[str]:
    return sorted(test["nodeid"] for test in data["tests"])  # type: ignore[attr-defined, index]


def test_xdist_merges_every_workers_leaks_into_one_summary_and_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**TWO_MODULES)
    result = pytester.runpytest_subprocess(
        "-n", "2", "--dist", "loadscope", "--detect-leaks", "--leaks-report=leaks.json"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.parseoutcomes() == {"passed": 5, "leaked": 2}
    # each leaking test really ran on its own worker
    workers = {(pytester.path / f"worker-{name}").read_text() for name in ("alpha", "beta")}
    assert workers == {"gw0", "gw1"}
    text = result.stdout.str()
    assert text.count("leakhunt summary") == 1
    result.stdout.fnmatch_lines(
        [
            "*= leakhunt summary =*",
            "LEAKED test_*.py::test_*_leaks: *",
            "LEAKED test_*.py::test_*_leaks: *",
            "leakhunt: 5 tests checked, 2 leaking, 2 objects leaked, * retained*",
        ]
    )
    assert len(re.findall(r"^LEAKED ", text, flags=re.MULTILINE)) == 2
    data = json.loads((pytester.path / "leaks.json").read_text())
    assert _leaked_ids(data) == ["test_alpha.py::test_alpha_leaks", "test_beta.py::test_beta_leaks"]
    assert data["summary"]["tests_checked"] == 5
    assert {leak["type"] for test in data["tests"] for leak in test["leaks"]} == {"test_alpha.Alpha", "test_beta.Beta"}


def test_xdist_keeps_the_findings_of_a_worker_that_crashed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_crash="""
        import os
        HELD = []
        class Kept:
            pass
        def test_a_leaks():
            HELD.append(Kept())
        def test_b_crashes():
            os._exit(3)
        """
    )
    result = pytester.runpytest_subprocess("-n", "1", "--detect-leaks", "--leaks-report=leaks.json")
    result.stdout.fnmatch_lines(["*crashed*", "leakhunt: * checked, 1 leaking, 1 object leaked, * retained"])
    data = json.loads((pytester.path / "leaks.json").read_text())
    assert _leaked_ids(data) == ["test_crash.py::test_a_leaks"]


def test_a_read_in_progress_on_another_thread_is_not_retained(pytester: pytest.Pytester) -> None:
    """xdist's reader thread blocks in a read that a test's report wakes: its buffer is in flight, not kept."""
    pytester.makeconftest(
        "import os, threading\nREAD, WRITE = os.pipe()\n"
        "def pump():\n    stream = os.fdopen(READ, 'rb')\n    while stream.read(4):\n        pass\n"
        "threading.Thread(target=pump, daemon=True).start()\n"
    )
    pytester.makepyfile(
        "import os, time, conftest\ndef test_sends():\n    os.write(conftest.WRITE, b'12345678')\n    time.sleep(0.1)\n"
    )
    result = pytester.runpytest_subprocess("--detect-leaks")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["leakhunt: 1 test checked, 0 leaking, 0 objects leaked, 0 B retained"])
    result.stdout.no_fnmatch_line("retained once*")


def test_plugin_works_without_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SMALL_SUITE)
    result = pytester.runpytest_subprocess("-p", "no:xdist", "--detect-leaks", "--leaks-report=leaks.json")
    assert result.parseoutcomes() == {"passed": 2, "leaked": 1}
    assert _leaked_ids(json.loads((pytester.path / "leaks.json").read_text())) == [
        "test_plugin_works_without_xdist.py::test_leaks"
    ]


ASYNC_TESTS = """
    import asyncio
    import pytest
    import pytest_asyncio
    HELD = []
    class Session:
        pass

    @pytest_asyncio.fixture
    async def session():
        s = Session()
        await asyncio.sleep(0)
        yield s
        await asyncio.sleep(0)

    @pytest.mark.asyncio
    async def test_async_leaks():
        await asyncio.sleep(0)
        HELD.append(Session())

    @pytest.mark.asyncio
    async def test_async_fixture_clean(session):
        await asyncio.sleep(0)
        assert isinstance(session, Session)

    @pytest.mark.asyncio
    async def test_tasks_awaited_clean():
        results = await asyncio.gather(*(asyncio.sleep(0, result=i) for i in range(5)))
        assert results == list(range(5))
"""


def test_pytest_asyncio_tests_and_fixtures(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_asyncio")
    write_ini(
        pytester,
        "asyncio_mode = strict",
        "asyncio_default_fixture_loop_scope = function",
        addopts="-p no:cacheprovider -p no:randomly -p no:rerunfailures",
    )
    pytester.makepyfile(ASYNC_TESTS)
    result = pytester.runpytest_subprocess("--detect-leaks")
    assert result.parseoutcomes() == {"passed": 3, "leaked": 1}
    result.stdout.fnmatch_lines(
        ["LEAKED *::test_async_leaks: test_pytest_asyncio_tests_and_fixtures.Session x1 held by *HELD[[]0[]]"]
    )


RANDOM_ORDER = """
    import functools
    import re
    HELD = []
    class Widget:
        pass
    @functools.lru_cache(maxsize=32)
    def parse(text):
        return [text]
    def test_one_leaks():
        HELD.append(Widget())
    def test_two_bounded_cache():
        parse("two")
    def test_three_regex():
        re.compile("three+")
    def test_four_leaks():
        HELD.append(Widget())
    def test_five_clean():
        Widget()
"""


def test_pytest_randomly_order_does_not_change_verdicts(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_randomly")
    write_ini(pytester, addopts="-p no:cacheprovider -p no:asyncio -p no:rerunfailures")
    pytester.makepyfile(RANDOM_ORDER)
    verdicts = []
    for seed in (1, 2, 3):
        result = pytester.runpytest_subprocess(
            "-p", "randomly", f"--randomly-seed={seed}", "--detect-leaks", f"--leaks-report=seed{seed}.json"
        )
        result.stdout.fnmatch_lines([f"Using --randomly-seed={seed}"])
        assert result.parseoutcomes() == {"passed": 5, "leaked": 2}
        verdicts.append(_leaked_ids(json.loads((pytester.path / f"seed{seed}.json").read_text())))
    assert (
        verdicts[0]
        == verdicts[1]
        == verdicts[2]
        == [
            "test_pytest_randomly_order_does_not_change_verdicts.py::test_four_leaks",
            "test_pytest_randomly_order_does_not_change_verdicts.py::test_one_leaks",
        ]
    )


def test_pytest_rerunfailures_reports_a_rerun_leak_once(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_rerunfailures")
    write_ini(pytester, addopts="-p no:cacheprovider -p no:randomly -p no:asyncio")
    pytester.makepyfile(
        """
        HELD = []
        FIRST = []
        class Entry:
            pass
        def test_always_leaks():
            HELD.append(Entry())
        def test_leaks_once():
            if not FIRST:
                FIRST.append(Entry())
        """
    )
    result = pytester.runpytest_subprocess("--reruns=2", "--detect-leaks", "--leaks-report=leaks.json")
    # the first leaks on every run: two reruns, then it fails; the second is clean once rerun
    assert result.parseoutcomes() == {"passed": 5, "rerun": 3, "leaked": 1}
    data = json.loads((pytester.path / "leaks.json").read_text())
    assert _leaked_ids(data) == ["test_pytest_rerunfailures_reports_a_rerun_leak_once.py::test_always_leaks"]
    assert data["summary"]["tests_checked"] == 2
    assert len(re.findall(r"^LEAKED ", result.stdout.str(), flags=re.MULTILINE)) == 1


def test_unittest_testcases(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import unittest
        HELD = []
        class Resource:
            pass
        class TestThings(unittest.TestCase):
            def setUp(self):
                self.resource = Resource()
            def tearDown(self):
                del self.resource
            def test_clean(self):
                self.assertIsInstance(self.resource, Resource)
            def test_leaks(self):
                HELD.append(self.resource)
            def test_fails(self):
                self.fail("its own failure")
        """
    )
    result = pytester.runpytest("--detect-leaks")
    assert result.parseoutcomes() == {"passed": 2, "failed": 1, "leaked": 1}
    result.stdout.fnmatch_lines(
        ["LEAKED *::TestThings::test_leaks: test_unittest_testcases.Resource x1 held by *HELD[[]0[]]"]
    )
