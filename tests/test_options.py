"""Options, ini twins, markers and usage errors."""

from __future__ import annotations

import pytest
from corpus import SMALL_SUITE as LEAKY
from inner import write_ini


def test_help_lists_every_option(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "*memory leak detection (pytest-leakhunt)*",
            "*--detect-leaks*check every test*",
            "*--leaks-trace *record where leaked objects were allocated*",
            "*--leaks-trace-depth=VALUE*",
            "*--leaks-report=VALUE*",
            "*--leaks-ignore-types=VALUE*",
            "*detect_leaks (string):*",
            "*leaks_report (string):*",
        ]
    )


def test_markers_are_registered_with_signatures(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(
        ["@pytest.mark.no_leaks(*, ignore_types=(), repeat=None):*", "@pytest.mark.allow_leaks(reason=''):*"]
    )


def test_markers_pass_strict_markers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        @pytest.mark.no_leaks
        def test_a():
            pass
        @pytest.mark.allow_leaks(reason="known")
        def test_b():
            pass
        """
    )
    pytester.runpytest("--strict-markers").assert_outcomes(passed=2)


def test_without_flag_nothing_is_checked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(LEAKY)
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.OK
    assert "leakhunt summary" not in result.stdout.str()


def test_flag_fails_the_leaking_test_and_the_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(LEAKY)
    result = pytester.runpytest("--detect-leaks")
    assert result.parseoutcomes() == {"passed": 2, "leaked": 1}
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*1) test_flag_fails_the_leaking_test_and_the_run.Thing x1*",
            "*held by: test_flag_fails_the_leaking_test_and_the_run.HELD[[]0[]] -> *Thing",
            "LEAKED *::test_leaks: *Thing x1 held by *HELD[[]0[]]",
            "leakhunt: 2 tests checked, 1 leaking, 1 object leaked, * retained",
        ]
    )


def test_ini_twin_turns_detection_on(pytester: pytest.Pytester) -> None:
    write_ini(pytester, "detect_leaks = true")
    pytester.makepyfile(LEAKY)
    result = pytester.runpytest()
    assert result.parseoutcomes() == {"passed": 2, "leaked": 1}


def test_cli_wins_over_ini(pytester: pytest.Pytester) -> None:
    write_ini(pytester, "leaks_trace_depth = 0")
    pytester.makepyfile(LEAKY)
    result = pytester.runpytest("--detect-leaks", "--leaks-trace-depth=3")
    assert result.parseoutcomes() == {"passed": 2, "leaked": 1}


@pytest.mark.parametrize(
    ("ini", "message"),
    [
        ("detect_leaks = maybe", "*ini option 'detect_leaks' in *tox.ini: expected true or false, got 'maybe'*"),
        (
            "leaks_trace_depth = deep",
            "*ini option 'leaks_trace_depth' in *tox.ini: expected a whole number of frames, got 'deep'*",
        ),
        (
            "leaks_trace_depth = 0",
            "*ini option 'leaks_trace_depth' in *tox.ini: frames must be between 1 and 100, got 0*",
        ),
    ],
)
def test_bad_ini_value_is_a_usage_error_naming_the_ini(pytester: pytest.Pytester, ini: str, message: str) -> None:
    write_ini(pytester, ini)
    pytester.makepyfile(LEAKY)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_bad_cli_value_names_the_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(LEAKY)
    result = pytester.runpytest("--leaks-trace-depth=lots")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*command line option --leaks-trace-depth: expected a whole number of frames, got 'lots'*"]
    )


def test_unwritable_report_path_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(LEAKY)
    result = pytester.runpytest("--detect-leaks", "--leaks-report=no/such/dir/leaks.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*command line option --leaks-report: cannot write 'no/such/dir/leaks.json': directory * does not exist*"]
    )


def test_report_path_that_is_a_directory_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.mkdir("out")
    write_ini(pytester, "leaks_report = out")
    pytester.makepyfile(LEAKY)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini option 'leaks_report' in *: 'out' is a directory, expected a file path*"])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        (
            "no_leaks(ignore=['x'])",
            "*test_it: bad arguments to @pytest.mark.no_leaks: *unexpected keyword argument 'ignore'*expected no_leaks(*, ignore_types=(), repeat=None)*",
        ),
        ("no_leaks('x')", "*test_it: bad arguments to @pytest.mark.no_leaks: *positional argument*"),
        ("no_leaks(ignore_types=[3])", "*ignore_types entries must be types or qualified names, got 3*"),
        (
            "allow_leaks(reason=3)",
            "*test_it: bad arguments to @pytest.mark.allow_leaks: reason must be a string, got 3*",
        ),
    ],
)
def test_bad_marker_arguments_are_a_usage_error(pytester: pytest.Pytester, marker: str, message: str) -> None:
    pytester.makepyfile(f"import pytest\n@pytest.mark.{marker}\ndef test_it():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_markers_are_read_only_for_the_tests_that_run(pytester: pytest.Pytester) -> None:
    # Policies are resolved after deselection: a suite that deselects thousands of tests does not pay for them.
    pytester.makepyfile(
        "import pytest\n"
        "KEPT = []\n"
        "class Thing:\n    pass\n"
        "@pytest.mark.no_leaks(ignore=['x'])\n"
        "def test_deselected():\n    pass\n"
        "@pytest.mark.no_leaks\n"
        "def test_selected():\n    KEPT.append(Thing())\n"
    )
    result = pytester.runpytest("-k", "selected and not deselected")
    assert result.parseoutcomes() == {"passed": 1, "leaked": 1, "deselected": 1}
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_deselected: bad arguments to @pytest.mark.no_leaks*"])


def test_plugin_can_be_switched_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(LEAKY)
    result = pytester.runpytest("-p", "no:leakhunt", "--detect-leaks")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unrecognized arguments: --detect-leaks*"])
    pytester.runpytest("-p", "no:leakhunt").assert_outcomes(passed=2)


def test_no_leaks_marker_checks_one_test_without_the_flag(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        HELD = []
        class Thing:
            pass
        @pytest.mark.no_leaks
        def test_marked():
            HELD.append(Thing())
        def test_unmarked():
            HELD.append(Thing())
        """
    )
    result = pytester.runpytest("-v")
    result.stdout.fnmatch_lines(["*::test_marked LEAKED*", "leakhunt: 1 test checked, 1 leaking*"])
    assert result.parseoutcomes() == {"passed": 2, "leaked": 1}


def test_no_leaks_ignore_types(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        HELD = []
        class Thing:
            pass
        class Other:
            pass
        @pytest.mark.no_leaks(ignore_types=[Thing])
        def test_ignored():
            HELD.append(Thing())
        @pytest.mark.no_leaks(ignore_types=["test_no_leaks_ignore_types.Thing"])
        def test_other_still_reported():
            HELD.append(Other())
        """
    )
    result = pytester.runpytest("-v")
    result.stdout.fnmatch_lines(["*::test_other_still_reported LEAKED*"])
    assert result.parseoutcomes() == {"passed": 2, "leaked": 1}


def test_ignore_types_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(LEAKY)
    result = pytester.runpytest("--detect-leaks", "--leaks-ignore-types=test_ignore_types_option.Thing")
    result.assert_outcomes(passed=2)


def test_allow_leaks_exempts_and_shows_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        HELD = []
        class Thing:
            pass
        @pytest.mark.allow_leaks(reason="warms a process-wide cache on purpose")
        def test_allowed():
            HELD.append(Thing())
        """
    )
    result = pytester.runpytest("--detect-leaks")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["allowed *::test_allowed: warms a process-wide cache on purpose"])


def test_closest_marker_wins(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        HELD = []
        class Thing:
            pass
        @pytest.mark.allow_leaks(reason="whole class is legacy")
        class TestLegacy:
            @pytest.mark.no_leaks
            def test_checked(self):
                HELD.append(Thing())
            def test_allowed(self):
                HELD.append(Thing())
        """
    )
    result = pytester.runpytest("--detect-leaks", "-v")
    result.stdout.fnmatch_lines(["*::test_checked LEAKED*"])
    assert result.parseoutcomes() == {"passed": 2, "leaked": 1}


def test_the_closest_marker_is_found_with_parents_shared_between_items(pytester: pytest.Pytester) -> None:
    """The parents' answers are kept across items: every item must still get what iter_markers says."""
    pytester.makeconftest(
        """
        from pytest_leakhunt.config import closest_policy_marker

        def pytest_collection_finish(session):
            parents = {}
            for item in session.items:
                expected = next((m for m in item.iter_markers() if m.name in ("no_leaks", "allow_leaks")), None)
                found = closest_policy_marker(item, parents)
                print("MARKER", item.nodeid, found.name if found else None, found is expected)
        """
    )
    pytester.makepyfile(
        test_a="""
        import pytest
        pytestmark = pytest.mark.no_leaks
        def test_module_level():
            pass
        @pytest.mark.allow_leaks(reason="legacy")
        class TestLegacy:
            def test_class_level(self):
                pass
            @pytest.mark.no_leaks
            def test_own(self):
                pass
            class TestInner:
                def test_inner(self):
                    pass
        @pytest.mark.parametrize("x", [1, pytest.param(2, marks=pytest.mark.allow_leaks(reason="param"))])
        def test_param(x):
            pass
        """,
        test_b="""
        class TestPlain:
            def test_none(self):
                pass
        def test_none_either():
            pass
        """,
    )
    result = pytester.runpytest("-s", "-p", "no:randomly")
    result.stdout.fnmatch_lines(
        [
            "MARKER test_a.py::test_module_level no_leaks True",
            "MARKER test_a.py::TestLegacy::test_class_level allow_leaks True",
            "MARKER test_a.py::TestLegacy::test_own no_leaks True",
            "MARKER test_a.py::TestLegacy::TestInner::test_inner allow_leaks True",
            "MARKER test_a.py::test_param[[]1[]] no_leaks True",
            "MARKER test_a.py::test_param[[]2[]] allow_leaks True",
            "MARKER test_b.py::TestPlain::test_none None True",
            "MARKER test_b.py::test_none_either None True",
        ]
    )


def test_runtest_hooks_only_when_some_test_is_checked(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        def pytest_collection_finish(session):
            print("RUNTEST HOOKS", session.config.pluginmanager.has_plugin("leakhunt-runtest"))
        """
    )
    pytester.makepyfile("def test_plain():\n    pass\n")
    pytester.runpytest("-s").stdout.fnmatch_lines(["RUNTEST HOOKS False"])
    pytester.runpytest("-s", "--detect-leaks").stdout.fnmatch_lines(["RUNTEST HOOKS True"])
    pytester.makepyfile("def test_plain(leak_tracker):\n    pass\n")
    pytester.runpytest("-s").stdout.fnmatch_lines(["RUNTEST HOOKS True"])


def test_the_leaked_status_hook_only_once_a_leak_is_reported(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        def pytest_configure(config):
            global CONFIG
            CONFIG = config
        def pytest_runtest_logfinish(nodeid):
            print("STATUS HOOK", nodeid.split("::")[-1], CONFIG.pluginmanager.has_plugin("leakhunt-status"))
        """
    )
    pytester.makepyfile(
        """
        KEPT = []
        def test_a_clean():
            pass
        def test_b_leaks():
            KEPT.append(object.__new__(type("Kept", (), {})))
        def test_c_clean():
            pass
        """
    )
    result = pytester.runpytest("-s", "-v", "--detect-leaks")
    # -s prints each test's line right after its status word
    result.stdout.fnmatch_lines(
        [
            "*::test_a_clean PASSEDSTATUS HOOK test_a_clean False",
            "*::test_b_leaks LEAKEDSTATUS HOOK test_b_leaks True",
            "*::test_c_clean PASSEDSTATUS HOOK test_c_clean True",
        ]
    )
