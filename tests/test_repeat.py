"""--leaks-repeat: what grows on every run, objects and memory the collector cannot see."""

from __future__ import annotations

import re

import pytest

GROWING = """
    import functools
    import pytest
    KEPT = []
    BLOBS = []

    class Order:
        def __init__(self):
            self.lines = [1, 2, 3]

    def test_objects_grow():
        KEPT.append(Order())

    def test_bytes_grow():
        BLOBS.append(bytes(4000))  # bytes are not tracked by the collector

    @functools.lru_cache(maxsize=None)
    def parse(text):
        return [text]

    def test_first_use_cache_is_clean():
        parse("once")

    @pytest.fixture
    def order():
        return Order()

    def test_fixture_and_temporaries_are_clean(order):
        data = [bytes(100) for _ in range(50)]
        assert order.lines and len(data) == 50

    def test_temporary_large_bytes_is_clean():
        blob = bytes(20_000_000)
        assert len(blob) == 20_000_000
"""


def test_repeat_reports_what_grows_on_every_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(GROWING)
    result = pytester.runpytest_subprocess("--detect-leaks", "--leaks-repeat=3")
    # the extra runs make no reports of their own
    assert result.parseoutcomes() == {"passed": 5, "leaked": 2}
    result.stdout.fnmatch_lines(
        [
            "*::test_objects_grow _*",
            "1) test_repeat_reports_what_grows_on_every_run.Order x1 *",
            "*",
            "2) grows on every run: +1 test_repeat_reports_what_grows_on_every_run.Order, +* B per run (3 runs after a warm-up)",
        ]
    )
    result.stdout.fnmatch_lines(["LEAKED *::test_bytes_grow: *BLOBS*"])
    result.stdout.fnmatch_lines(
        [
            "*grows on every run: +3.9 KiB*",
            "   held by: test_repeat_reports_what_grows_on_every_run.BLOBS (+1 value in the last run)",
            "   allocated at: test_repeat_reports_what_grows_on_every_run.py:14",
        ]
    )
    assert not re.search(r"LEAKED .*(first_use|fixture_and|temporary)", result.stdout.str())


def test_without_repeat_bytes_in_a_module_list_are_seen_by_its_length(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(GROWING)
    result = pytester.runpytest_subprocess("--detect-leaks")
    assert result.parseoutcomes() == {"passed": 5, "leaked": 2}
    result.stdout.fnmatch_lines(["LEAKED *::test_bytes_grow: untracked values x1 held by *.BLOBS"])


def test_marker_asks_for_repeats_without_the_flag(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        BLOBS = []
        @pytest.mark.no_leaks(repeat=2)
        def test_it():
            BLOBS.append(bytearray(10_000))
        def test_unmarked():
            BLOBS.append(bytearray(10_000))
        """
    )
    result = pytester.runpytest_subprocess()
    assert result.parseoutcomes() == {"passed": 2, "leaked": 1}
    result.stdout.fnmatch_lines(["*grows on every run: +9.8 KiB per run (2 runs after a warm-up)*", "LEAKED *::test_it: *"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--leaks-repeat=-1"], "*command line option --leaks-repeat: runs must be between 0 and 1000, got -1*"),
        (["--leaks-repeat=many"], "*command line option --leaks-repeat: expected a whole number of runs, got 'many'*"),
    ],
)
def test_bad_repeat_is_a_usage_error(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    pytester.makepyfile("def test_it():\n    pass\n")
    result = pytester.runpytest("--detect-leaks", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_bad_marker_repeat_names_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("import pytest\n@pytest.mark.no_leaks(repeat='x')\ndef test_it():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_it: bad arguments to @pytest.mark.no_leaks: repeat must be a whole number of runs*"])
