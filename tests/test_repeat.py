"""--leaks-repeat: what grows on every run, objects and memory the collector cannot see."""

from __future__ import annotations

import re

import pytest

GROWING = """
    import functools
    import pytest
    KEPT = []
    BLOBS = []
    RECORDS = []

    class Order:
        def __init__(self):
            self.lines = [1, 2, 3]

    def test_objects_grow():
        KEPT.append(Order())

    def test_builtin_dicts_grow():
        RECORDS.append({"id": 1, "tags": ["a", "b"]})  # a dict with a list: tracked by the collector

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

    def test_temporary_large_list_is_clean():
        data = list(range(100_000))
        assert len(data) == 100_000
"""


def test_repeat_reports_what_grows_on_every_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(GROWING)
    result = pytester.runpytest_subprocess("--detect-leaks", "--leaks-repeat=3")
    # the extra runs make no reports of their own
    assert result.parseoutcomes() == {"passed": 7, "leaked": 3}
    result.stdout.fnmatch_lines(
        [
            "*::test_objects_grow _*",
            "1) test_repeat_reports_what_grows_on_every_run.Order x1 *",
            "*",
            "2) grows on every run: +1 test_repeat_reports_what_grows_on_every_run.Order, +* B per run (3 runs after the real one)",
            "   held by: test_repeat_reports_what_grows_on_every_run.KEPT[...]",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*::test_builtin_dicts_grow _*",
            "*",
            "*",
            "2) grows on every run: +1 dict, +* B per run (3 runs after the real one)",
            "   held by: test_repeat_reports_what_grows_on_every_run.RECORDS[...]",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*grows on every run: +1 untracked value, +3.9 KiB per run (3 runs after the real one)",
            "   held by: test_repeat_reports_what_grows_on_every_run.BLOBS[...]",
        ]
    )
    assert not re.search(r"LEAKED .*(first_use|fixture_and|temporary)", result.stdout.str())
    result.stdout.fnmatch_lines(["leakhunt repeat: 21 extra runs of 7 tests, *s since the first"])


UNTRACKED_ONLY = """
    ROWS = []

    def test_rows_grow():
        ROWS.append({"id": 1, "name": "x" * 600})  # a dict of atoms: the collector does not track it
"""


def test_builtin_values_name_their_holder(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(UNTRACKED_ONLY)
    result = pytester.runpytest_subprocess("--detect-leaks", "--leaks-repeat=2")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*grows on every run: +1 untracked value, +* B per run (2 runs after the real one)",
            "   held by: test_builtin_values_name_their_holder.ROWS[...]",
        ]
    )


HARNESS = """
    import logging
    import warnings
    import pytest

    class Thing:
        pass

    def test_record_property(record_property):
        record_property("thing", {"id": [1, 2]})

    def test_new_stash_key(request):
        request.node.stash[pytest.StashKey()] = Thing()

    def test_recwarn(recwarn):
        warnings.warn(f"careful {Thing()!r}", UserWarning)
        assert len(recwarn) == 1

    def test_plain_warning():
        warnings.warn("careful", UserWarning)

    def test_capsys(capsys):
        print("x" * 10_000)
        assert capsys.readouterr().out

    def test_output_left_to_capture():
        print({"line": "y" * 1000})

    def test_caplog(caplog):
        logging.getLogger("shop").warning("order %s", Thing())
        assert caplog.records

    def test_report_section(request):
        request.node.add_report_section("call", "custom", "z" * 100)
"""


def test_harness_growth_is_not_the_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(HARNESS)
    result = pytester.runpytest_subprocess("--detect-leaks", "--leaks-repeat=3")
    result.assert_outcomes(passed=8, warnings=1)
    assert "grows on every run" not in result.stdout.str()
    assert "LEAKED" not in result.stdout.str()


REPLACED_SLOT = {
    "conftest": """
        import copy
        import logging
        import pytest

        HANDLERS = [logging.NullHandler(), logging.NullHandler()]

        class Log:
            handlers = []

        @pytest.fixture(autouse=True)
        def fresh_handlers():
            Log.handlers = copy.copy(HANDLERS)  # a slot replaced each test: what the last run left, not growth
            yield
    """,
    "test_slots": """
        CURRENT = {}

        class Session:
            pass

        def test_one():
            CURRENT["session"] = Session()  # replaced by every run

        def test_two():
            pass
    """,
}


def test_a_replaced_slot_is_not_growth(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**REPLACED_SLOT)
    result = pytester.runpytest_subprocess("--detect-leaks", "--leaks-repeat=3")
    result.assert_outcomes(passed=2)
    assert "grows on every run" not in result.stdout.str()


def test_the_real_run_comes_first_and_decides_the_outcome(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        class Registry:
            started = False

        def test_starts_once():
            assert not Registry.started  # true only on the first run: the extra runs fail
            Registry.started = True

        def test_after():
            assert Registry.started
        """
    )
    result = pytester.runpytest_subprocess("--detect-leaks", "--leaks-repeat=2")
    result.assert_outcomes(passed=2)
    assert "LEAKED" not in result.stdout.str()


TTY = """
    import pytest
    from _pytest.compat import CallableBool

    @pytest.hookimpl(trylast=True)
    def pytest_configure(config):
        config.pluginmanager.get_plugin("terminalreporter").isatty = CallableBool(True)
"""


def test_progress_on_a_terminal(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(TTY)
    pytester.makepyfile("def test_a():\n    pass\n\ndef test_b():\n    pass\n")
    result = pytester.runpytest_subprocess("-q", "--detect-leaks", "--leaks-repeat=2")
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    status = " [leakhunt: repeating 1/2 tests, 0s]"
    # written after the first test's dot, then erased before the next one: the dots line stays as pytest wrote it
    assert "." + status + "\b" * len(status) + " " * len(status) + "\b" * len(status) + "." in out


def test_no_progress_status_in_a_log(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a():\n    pass\n")
    result = pytester.runpytest_subprocess("-q", "--detect-leaks", "--leaks-repeat=2")
    result.stdout.fnmatch_lines([".*[[]100%[]]", "leakhunt repeat: 2 extra runs of 1 tests, *s since the first"])
    assert "repeating" not in result.stdout.str()


def test_repeat_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(GROWING)
    result = pytester.runpytest_subprocess("--detect-leaks", "--leaks-repeat=2", "-n", "1")
    assert result.parseoutcomes() == {"passed": 7, "leaked": 3}
    result.stdout.fnmatch_lines(["*held by: test_repeat_under_xdist.RECORDS[[]...]"])
    assert "repeating" not in result.stdout.str()


def test_without_repeat_bytes_in_a_module_list_are_seen_by_its_length(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(GROWING)
    result = pytester.runpytest_subprocess("--detect-leaks")
    assert result.parseoutcomes() == {"passed": 7, "leaked": 3}
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
    result.stdout.fnmatch_lines(
        [
            "*grows on every run: +1 untracked value, +9.8 KiB per run (2 runs after the real one)*",
            "LEAKED *::test_it: *",
        ]
    )


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
    result.stderr.fnmatch_lines(
        ["*test_it: bad arguments to @pytest.mark.no_leaks: repeat must be a whole number of runs*"]
    )
