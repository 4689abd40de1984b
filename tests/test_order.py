"""Verdicts and fingerprints do not depend on test order: pytest-randomly seeds, -k subsets, a baseline."""

from __future__ import annotations

import json

import pytest
from inner import write_ini

SUITE = """
    import logging
    import pytest

    log = logging.getLogger("orderapp")
    CACHE = {}
    LISTENERS = []

    class Handler(logging.Handler):
        def __init__(self):
            super().__init__()
            self.records = []
        def emit(self, record):
            self.records.append(record)

    class Widget:
        pass

    def test_a_leaks_a_handler():
        log.addHandler(Handler())

    def test_b_logs(caplog):
        log.warning("b %s", [1, 2])

    def test_c_fills_a_shared_bucket():
        CACHE.setdefault("widgets", []).append(Widget())

    def test_d_fills_it_too():
        CACHE.setdefault("widgets", []).append(Widget())

    def test_e_listener():
        received = []
        LISTENERS.append(received.append)

    def test_f_clean():
        [Widget() for _ in range(3)]
"""

#: what grows on every run, whatever ran before
LEAKING = {"test_a_leaks_a_handler", "test_c_fills_a_shared_bucket", "test_d_fills_it_too", "test_e_listener"}


def _leaked(pytester: pytest.Pytester, *args: str) -> tuple[set[str], dict[str, str]]:
    result = pytester.runpytest_subprocess("--detect-leaks", "--leaks-report=out.json", *args)
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), result.stdout.str()
    data = json.loads((pytester.path / "out.json").read_text())
    names = {test["nodeid"].split("::")[1] for test in data["tests"]}
    prints = {test["nodeid"].split("::")[1]: test["leaks"][0]["fingerprint"] for test in data["tests"]}
    return names, prints


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytest.importorskip("pytest_randomly")
    write_ini(pytester, addopts="-p no:cacheprovider -p no:asyncio -p no:rerunfailures")
    pytester.makepyfile(test_order_suite=SUITE)
    return pytester


def test_verdicts_and_fingerprints_are_the_same_in_every_order(suite: pytest.Pytester) -> None:
    runs = [_leaked(suite, f"--randomly-seed={seed}") for seed in (1, 2, 3, 4, 5)]
    runs.append(_leaked(suite, "-p", "no:randomly"))
    for names, _ in runs:
        assert names == LEAKING
    # one fingerprint per leak, whatever filled the bucket first
    assert len({tuple(sorted(prints.items())) for _, prints in runs}) == 1


def test_xdist_gives_the_same_verdicts_and_fingerprints(suite: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    _, alone = _leaked(suite, "-p", "no:randomly")
    names, spread = _leaked(suite, "-p", "no:randomly", "-n", "2")
    assert names == LEAKING
    assert spread == alone


def test_a_subset_gives_the_same_fingerprints(suite: pytest.Pytester) -> None:
    names, full = _leaked(suite, "-p", "no:randomly")
    names, subset = _leaked(suite, "-p", "no:randomly", "-k", "test_d or test_b or test_e")
    assert names == {"test_d_fills_it_too", "test_e_listener"}
    assert subset == {name: full[name] for name in names}


def test_a_test_that_logs_into_an_earlier_leaked_handler_is_not_blamed(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess("--detect-leaks", "-p", "no:randomly", "-k", "test_a or test_b")
    result.assert_outcomes(passed=2)
    assert "LEAKED test_order_suite.py::test_b_logs" not in result.stdout.str()
    result.stdout.fnmatch_lines(["grows the leak of test_order_suite.py::test_a_leaks_a_handler: *test_b_logs*"])


def test_a_baseline_recorded_once_holds_in_every_order(suite: pytest.Pytester) -> None:
    suite.runpytest_subprocess(
        "--detect-leaks", "--leaks-baseline=base.json", "--leaks-baseline-update", "-p", "no:randomly"
    )
    for seed in (1, 2, 3, 4, 5, 6):
        result = suite.runpytest_subprocess("--detect-leaks", "--leaks-baseline=base.json", f"--randomly-seed={seed}")
        assert result.ret == pytest.ExitCode.OK, result.stdout.str()
        assert "no longer occurs" not in result.stdout.str()
