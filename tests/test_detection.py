"""End-to-end behaviour of a checked run: failures, JSON, robustness, and keeping nothing."""

from __future__ import annotations

import gc
import json
import platform
import re
import textwrap
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from corpus import SMALL_SUITE as LEAKY


def test_failing_test_keeps_its_failure_and_shows_the_leak(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        HELD = []
        class Thing:
            pass
        def test_fails_and_leaks():
            HELD.append(Thing())
            assert 1 == 2
        """
    )
    result = pytester.runpytest("--detect-leaks")
    assert result.parseoutcomes() == {"failed": 1}
    result.stdout.fnmatch_lines(
        [
            "*assert 1 == 2*",
            "*- leaks found at teardown -*",
            "*Thing x1*",
            "LEAKED *::test_fails_and_leaks: *Thing x1*",
        ]
    )


def test_a_setup_error_keeps_its_error_and_shows_the_leak(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        HELD = []
        class Thing:
            pass
        @pytest.fixture
        def broken():
            HELD.append(Thing())
            raise RuntimeError("setup broke")
        def test_it(broken):
            pass
        """
    )
    result = pytester.runpytest("--detect-leaks")
    assert result.parseoutcomes() == {"errors": 1}
    # one error, not an error and a leak: the leak is listed with the test's findings
    result.stdout.fnmatch_lines(
        ["*ERROR at setup of test_it*", "*RuntimeError: setup broke*", "*= LEAKS =*", "*Thing x1*"]
    )
    assert "LEAKED" not in result.stdout.str().split("= LEAKS =")[0]


def test_json_report_follows_the_schema(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(LEAKY)
    result = pytester.runpytest("--detect-leaks", "--leaks-report=out.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    data = json.loads((pytester.path / "out.json").read_text())
    assert data["version"] == 1
    assert data["python"] == platform.python_version()
    assert data["pytest"] == pytest.__version__
    assert data["summary"]["tests_checked"] == 2
    assert data["summary"]["tests_leaking"] == 1
    assert data["summary"]["objects_leaked"] == 1
    assert data["summary"]["bytes_retained"] > 0
    (test,) = data["tests"]
    assert test["nodeid"] == "test_json_report_follows_the_schema.py::test_leaks"
    assert test["outcome"] == "failed"
    (leak,) = test["leaks"]
    assert leak["type"] == "test_json_report_follows_the_schema.Thing"
    assert leak["count"] == 1
    assert isinstance(leak["retained_bytes"], int) and leak["retained_bytes"] > 0
    assert leak["retained_by"] == ["test_json_report_follows_the_schema", "HELD", "[0]"]
    assert leak["allocated_at"] is None


def test_json_report_written_when_nothing_leaks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok():\n    pass\n")
    pytester.runpytest("--detect-leaks", "--leaks-report=out.json").assert_outcomes(passed=1)
    data = json.loads((pytester.path / "out.json").read_text())
    assert data["summary"] == {
        "tests_checked": 1,
        "tests_leaking": 0,
        "objects_leaked": 0,
        "bytes_retained": 0,
        "tests_retaining_once": 0,
    }
    assert data["tests"] == []


def test_trace_records_allocation_site(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        app="""
        class Order:
            pass
        ORDERS = []
        def place():
            order = Order()
            ORDERS.append(order)
        """,
        test_trace="""
        import app
        def test_place():
            app.place()
        """,
    )
    result = pytester.runpytest_subprocess("--detect-leaks", "--leaks-trace", "--leaks-report=out.json")
    result.stdout.fnmatch_lines(["*allocated at: app.py:5*"])
    (test,) = json.loads((pytester.path / "out.json").read_text())["tests"]
    assert test["leaks"][0]["allocated_at"] == "app.py:5"
    assert test["leaks"][0]["retained_by"] == ["app", "ORDERS", "[0]"]


def test_internal_error_is_reported_on_that_test_only(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_leakhunt import census

    real = census.Survivors
    calls: list[int] = []

    def exploding() -> census.Survivors:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("simulated census failure")
        return real()

    monkeypatch.setattr(census, "Survivors", exploding)
    pytester.makepyfile(
        """
        def test_boom():
            pass
        def test_fine():
            pass
        """
    )
    result = pytester.runpytest("--detect-leaks", "--junitxml=junit.xml", "-v")
    result.stdout.fnmatch_lines(
        [
            "*::test_boom LEAKED*",
            "*::test_fine PASSED*",
            "*leakhunt could not check this test: RuntimeError: simulated census failure*",
        ]
    )
    suite = ET.parse(pytester.path / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert set(cases) == {"test_boom", "test_fine"}
    assert cases["test_fine"].find("error") is None
    assert "simulated census failure" in (cases["test_boom"].find("error").get("message") or "") + (
        cases["test_boom"].find("error").text or ""
    )


def test_check_adds_no_references_to_what_it_finds(pytester: pytest.Pytester) -> None:
    """objgraph's test_no_new_reference_cycles, for a whole check: refcount and referrers unchanged."""
    pytester.makeconftest(
        """
        import gc, sys
        import pytest
        SEEN = {}
        @pytest.hookimpl(wrapper=True, tryfirst=True)
        def pytest_runtest_protocol(item, nextitem):
            result = yield
            mod = item.module
            obj = mod.HELD[0]
            SEEN["refcount"] = sys.getrefcount(obj)
            here = sys._getframe()
            SEEN["referrers"] = [type(r).__name__ for r in gc.get_referrers(obj) if r is not SEEN and r is not here]
            SEEN["frozen"] = gc.get_freeze_count()
            del obj
            return result
        def pytest_terminal_summary(terminalreporter):
            terminalreporter.write_line(f"CHECK refcount={SEEN['refcount']} referrers={SEEN['referrers']} frozen={SEEN['frozen']}")
        """
    )
    pytester.makepyfile(LEAKY.replace("def test_clean():\n    Thing()\n", ""))
    checked = pytester.runpytest("--detect-leaks")
    unchecked = pytester.runpytest()
    line = re.compile(r"CHECK .*")
    checked_line = line.search(checked.stdout.str())
    unchecked_line = line.search(unchecked.stdout.str())
    assert checked_line and unchecked_line
    assert checked_line.group(0) == unchecked_line.group(0) == "CHECK refcount=3 referrers=['list'] frozen=0"


def test_nothing_stays_frozen_after_the_session(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import gc
        AT_START = gc.get_freeze_count()  # 3.12 starts with some objects frozen
        def pytest_terminal_summary(terminalreporter):
            terminalreporter.write_line(f"FROZEN start={AT_START} end={gc.get_freeze_count()}")
        """
    )
    pytester.makepyfile(
        LEAKY
        + """
def test_last():
    import gc
    assert gc.get_freeze_count() > 0  # inside the window the old heap is frozen
"""
    )
    result = pytester.runpytest_subprocess("--detect-leaks")
    assert result.parseoutcomes() == {"passed": 3, "leaked": 1}
    match = re.search(r"FROZEN start=(\d+) end=(\d+)", result.stdout.str())
    assert match is not None
    assert int(match.group(2)) <= int(match.group(1))


def test_a_class_whose_metaclass_shadows_its_module_name_is_judged_not_crashed_on(pytester: pytest.Pytester) -> None:
    # Cython's shared metatype defines __module__ for its classes, so its own __module__ is a descriptor;
    # a test that made one (a lazy import of a Cython module does) crashed the check into an error.
    pytester.makepyfile(
        """
        KEPT = []

        def make():
            class Meta(type):
                @property
                def __module__(cls):
                    return "elsewhere"
            class Made(metaclass=Meta):
                pass
            return Meta, Made

        def test_made_and_dropped():
            assert not isinstance(make()[0].__module__, str)

        def test_made_and_kept():
            KEPT.append(make())
        """
    )
    result = pytester.runpytest("--detect-leaks", "-v")
    result.stdout.fnmatch_lines(
        ["*::test_made_and_dropped PASSED*", "*::test_made_and_kept LEAKED*", "*held by: *KEPT*"]
    )
    result.stdout.no_fnmatch_line("*Error*")
    assert result.parseoutcomes() == {"passed": 2, "leaked": 1}


def test_window_covers_function_fixture_setup_and_teardown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        HELD = []
        class FromSetup:
            pass
        class FromTeardown:
            pass
        @pytest.fixture
        def resource():
            HELD.append(FromSetup())
            yield
            HELD.append(FromTeardown())
        def test_it(resource):
            pass
        """
    )
    result = pytester.runpytest("--detect-leaks")
    result.stdout.fnmatch_lines(["*FromSetup x1*", "*FromTeardown x1*"])


def test_what_a_test_adds_to_a_broader_fixture_is_a_leak_the_value_itself_is_not(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        GLOBAL = []
        class Item:
            pass
        @pytest.fixture(scope="module")
        def shared():
            return [Item()]
        def test_first(shared):
            shared.append(Item())   # the value outlives the test: one more on every run
        def test_second(shared):
            GLOBAL.append(Item())   # program state: a leak
        def test_third(shared):
            assert shared           # uses the value, adds nothing
        """
    )
    result = pytester.runpytest("--detect-leaks", "-v", "-p", "no:randomly")
    result.stdout.fnmatch_lines(["*::test_first LEAKED*", "*::test_second LEAKED*", "*::test_third PASSED*"])
    result.stdout.fnmatch_lines(["*held by: fixture:shared.cached_result* -> *Item"])
    assert result.parseoutcomes() == {"passed": 3, "leaked": 2}


def test_chain_starts_at_the_module_that_owns_the_global(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        app="class Bus:\n    def __init__(self):\n        self.listeners = []\n\nbus = Bus()\n",
        test_it="from app import bus\n\nclass Widget:\n    pass\n\ndef test_it():\n    bus.listeners.append(Widget())\n",
    )
    result = pytester.runpytest("--detect-leaks")
    result.stdout.fnmatch_lines(["*held by: app.bus.listeners[[]0[]] -> test_it.Widget"])


def test_repeated_leak_is_reported_on_every_test_with_its_own_index(pytester: pytest.Pytester) -> None:
    """The second and later tests reuse the first chain (no heap walk); the report must still be exact."""
    pytester.makepyfile(
        """
        import pytest
        HELD = []
        class Thing:
            pass
        @pytest.mark.parametrize("n", range(4))
        def test_leaks(n):
            for _ in range(n + 1):
                HELD.append(Thing())
        """
    )
    result = pytester.runpytest("--detect-leaks", "--leaks-report=out.json")
    assert result.parseoutcomes() == {"passed": 4, "leaked": 4}
    tests = json.loads((pytester.path / "out.json").read_text())["tests"]
    counts = [test["leaks"][0]["count"] for test in tests]
    paths = [test["leaks"][0]["retained_by"][-1] for test in tests]
    assert counts == [1, 2, 3, 4]
    # the first test runs a second time to show that it grows (one more Thing); the others share its verdict
    assert paths == ["[0]", "[2]", "[4]", "[7]"]


KNOWN_HOLDER = """
    CACHE = {"seed": []}  # tracked from import: an empty dict turns tracked, so new, with its first entry
    OTHER = []
    class Buffer:
        pass
    class Wrapper:
        def __init__(self):
            self.buffer = Buffer()
    def test_first():
        CACHE[object()] = Wrapper()
    def test_again():
        CACHE[object()] = Wrapper()
    def test_again_and_a_new_leak():
        CACHE[object()] = Wrapper()
        OTHER.append(Buffer())
    def test_again_and_a_reference_into_it():
        CACHE[object()] = w = Wrapper()
        OTHER.append([w.buffer])
    def test_again_held_twice():
        CACHE[object()] = CACHE[object()] = Wrapper()
"""


@pytest.fixture
def searched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the tests (run in-process by pytester) whose check searched for retainer chains: the slow path."""
    from pytest_leakhunt.explain import Explainer

    names: list[str] = []
    real = Explainer._find_chains

    def counting(self: Explainer, item: pytest.Item, *args: object, **kwargs: object) -> list[list[object]]:
        names.append(item.name)
        return real(self, item, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Explainer, "_find_chains", counting)
    return names


def test_known_leak_again_skips_the_search_for_roots_and_reports_the_same(
    pytester: pytest.Pytester, searched: list[str]
) -> None:
    pytester.makepyfile(KNOWN_HOLDER)
    result = pytester.runpytest("--detect-leaks", "--leaks-report=out.json")
    assert result.parseoutcomes() == {"passed": 5, "leaked": 5}
    report = json.loads((pytester.path / "out.json").read_text())["tests"]
    leaks = {test["nodeid"].split("::")[1]: test["leaks"] for test in report}
    # Only a leak under a holder not seen before searches for a chain: the repeats of the first test's leak
    # (alone, with a new object pointing into it, held twice) are explained by the chain the first one found.
    assert searched == ["test_first", "test_again_and_a_new_leak"]
    (twice,) = leaks["test_again_held_twice"]
    assert (twice["count"], twice["retained_by"][-2]) == (1, "CACHE")
    (first,) = leaks["test_first"]
    (again,) = leaks["test_again"]
    assert first["type"] == again["type"] and first["type"].endswith(".Wrapper")
    assert (first["count"], first["retained_bytes"]) == (again["count"], again["retained_bytes"])
    assert first["retained_by"][-2] == again["retained_by"][-2] == "CACHE"
    assert sorted(leak["retained_by"][-2] for leak in leaks["test_again_and_a_new_leak"]) == ["CACHE", "OTHER"]


TWO_HOLDERS = """
    import pytest
    EVENTS = {"seed": []}
    SESSIONS = []
    class Event:
        pass
    class Session:
        pass
    @pytest.mark.parametrize("n", range(4))
    def test_both(n):
        EVENTS[object()] = Event()
        SESSIONS.append(Session())
"""


def test_leaks_through_two_cached_chains_again_skip_the_explain_stage_and_report_the_same(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_leakhunt.explain import Explainer

    explained: set[str] = set()
    real = Explainer.explain

    def counting(self: Explainer, check: Any, *args: Any, **kwargs: Any) -> Any:
        explained.add(check.item.name)
        return real(self, check, *args, **kwargs)

    monkeypatch.setattr(Explainer, "explain", counting)
    pytester.makepyfile(TWO_HOLDERS)
    result = pytester.runpytest("--detect-leaks", "--leaks-report=out.json")
    assert result.parseoutcomes() == {"passed": 4, "leaked": 4}
    report = json.loads((pytester.path / "out.json").read_text())["tests"]
    places = [sorted(leak["retained_by"][-2:] for leak in test["leaks"]) for test in report]
    assert [[place[0] for place in test] for test in places] == [["EVENTS", "SESSIONS"]] * 4
    # each test's own entry, where it is: a new key, the next index (past those of the first test's second runs)
    indices = [int(test[1][1].strip("[]")) for test in places]
    assert indices[0] == 0 and indices[1:] == list(range(indices[1], indices[1] + 3))
    assert len({test[0][1] for test in places}) == 4
    assert all(leak["retention"] == "grows" for test in report for leak in test["leaks"])
    # the first test searches, the second follows both cached chains and judges its other roots; the two
    # tests after it look like the second and are given its leaks again, each chain checked
    assert explained == {"test_both[0]", "test_both[1]"}


KNOWN_SLOT_AND_MORE = """
    import signal
    import pytest
    STATE, EXTRA = {}, []
    class Session:
        pass
    class Helper:
        pass
    class Handler:
        def __call__(self, signum, frame):
            pass
    @pytest.mark.parametrize("n", range(5))
    def test_helper(n, request):
        STATE["current"] = Session()  # a slot every run overwrites: retained once
        entry = ("helper", Helper())
        request.node.user_properties.append(entry)  # pytest's list: not a leak
        if n == 4:
            EXTRA.append(entry)  # shaped like the tests before, but kept by a module list
    @pytest.mark.parametrize("n", range(5))
    def test_handler(n):
        STATE["current"] = Session()
        handler = Handler()
        if n == 4:
            EXTRA.append(handler)  # shaped like the tests before, but kept by a module list
        else:
            signal.signal(signal.SIGUSR1, handler)  # C state, replaced by the next run: retained once
"""


def test_a_test_shaped_like_a_known_leak_still_has_its_other_objects_judged(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(KNOWN_SLOT_AND_MORE)
    result = pytester.runpytest("--detect-leaks", "-p", "no:randomly")
    assert result.parseoutcomes() == {"passed": 10, "leaked": 2}
    result.stdout.fnmatch_lines(
        [
            "LEAKED *test_helper[[]4[]]: *.Helper x1 held by *.EXTRA[[]0[]]",
            "LEAKED *test_handler[[]4[]]: *.Handler x1 held by *.EXTRA[[]*[]]",
        ]
    )


def test_logging_capture_streams_end_on_the_fast_path(pytester: pytest.Pytester, searched: list[str]) -> None:
    # The logging plugin leaves a new StringIO on each of its two handlers after every test. Once the first
    # test has shown that the handlers hold them, later tests are judged without a search for roots,
    # on every CPython version (3.13 reports an instance's inline attributes on the instance, not its __dict__).
    pytester.makepyfile(
        """
        import pytest
        @pytest.mark.parametrize("n", range(4))
        def test_it(n):
            assert n >= 0
        """
    )
    result = pytester.runpytest("--detect-leaks")
    assert result.parseoutcomes() == {"passed": 4}
    assert searched in ([], ["test_it[0]"])


def test_a_remembered_capture_stream_held_by_the_program_too_is_a_leak(pytester: pytest.Pytester) -> None:
    # After the first test the check remembers that the logging plugin's handlers hold their streams and
    # reads those attributes instead of scanning the holders; a stream a module also keeps is still a leak.
    pytester.makepyfile(
        """
        import pytest
        KEPT = []
        @pytest.fixture
        def keep_stream(request):
            yield
            KEPT.append(request.config.pluginmanager.get_plugin("logging-plugin").report_handler.stream)
        @pytest.mark.parametrize("n", range(3))
        def test_clean(n):
            assert n >= 0
        def test_keeps_the_stream(keep_stream):
            pass
        """
    )
    result = pytester.runpytest("--detect-leaks", "-p", "no:randomly")
    assert result.parseoutcomes() == {"passed": 4, "leaked": 1}
    result.stdout.fnmatch_lines(["LEAKED *::test_keeps_the_stream: _io.StringIO x1 held by *KEPT[[]0[]]"])


def test_object_hung_on_a_parameter_is_traced_to_pytest_state(pytester: pytest.Pytester) -> None:
    # no module reaches the parameter except through pytest's marks: the chain starts at live pytest state
    pytester.makepyfile(
        """
        import pytest
        class Box:
            def __init__(self):
                self.kept = []
        class Kept:
            pass
        @pytest.mark.parametrize("box", [Box()])
        def test_it(box):
            box.kept.append(Kept())
        """
    )
    result = pytester.runpytest("--detect-leaks")
    assert result.parseoutcomes() == {"passed": 1, "leaked": 1}
    # the test's CallSpec, or on 3.10 its item's funcargs, whichever the search meets first; [[] is a literal [
    result.stdout.fnmatch_lines(["*held by: <pytest *>.*[[]'box'[]]* -> *Kept"])


def test_leaks_under_the_test_module_or_its_parameters_are_traced_without_a_walk_of_the_heap(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three links below a global or a parameter: the module-globals index does not reach that deep, so the
    # walk up from the leaked object would take one gc.get_referrers call (a pass over the heap) per link.
    walks: list[int] = []
    real = gc.get_referrers
    monkeypatch.setattr(gc, "get_referrers", lambda *objs: walks.append(len(objs)) or real(*objs))
    pytester.makepyfile(
        test_down="""
        import pytest
        class Widget:
            pass
        class Box:
            def __init__(self):
                self.parts = {"seed": []}  # tracked by the collector from the start, as a non-empty one is
        REGISTRY = {"boxes": [Box()]}
        @pytest.mark.parametrize("box", [Box()])
        def test_parameter(box):
            box.parts["seed"].append(Widget())
        def test_global():
            REGISTRY["boxes"][0].parts["seed"].append(Widget())
        """
    )
    result = pytester.runpytest("--detect-leaks", "-p", "no:randomly")
    assert result.parseoutcomes() == {"passed": 2, "leaked": 2}
    result.stdout.fnmatch_lines(
        [
            "*held by: <pytest CallSpec*>.params[[]'box'[]].parts[[]'seed'[]][[]0[]] -> test_down.Widget",  # CallSpec2 on pytest 8
            "*held by: test_down.REGISTRY[[]'boxes'[]][[]0[]].parts[[]'seed'[]][[]0[]] -> test_down.Widget",
        ]
    )
    assert walks == []


def test_a_leak_a_bounded_cache_also_holds_is_named_by_its_other_holder(pytester: pytest.Pytester) -> None:
    # The walk stops at a bounded lru_cache holding the object (no leak by design); the object is still kept
    # by a global of another module, which the search around the learned cache must name.
    pytester.makepyfile(
        helper="HELD = []\n",
        test_cached="""
        import functools
        import helper
        class Widget:
            pass
        @functools.lru_cache(maxsize=8)
        def make(n):
            return Widget()
        def test_it():
            helper.HELD.append(make(1))
        """,
    )
    result = pytester.runpytest("--detect-leaks")
    assert result.parseoutcomes() == {"passed": 1, "leaked": 1}
    result.stdout.fnmatch_lines(["*held by: helper.HELD[[]0[]] -> test_cached.Widget"])


def test_warnings_filters_the_runtime_keeps_after_catch_warnings_are_not_retained(pytester: pytest.Pytester) -> None:
    """``catch_warnings`` leaves its filters list in the C half of ``warnings`` until the next warning."""
    pytester.makepyfile(
        "import warnings\ndef test_it():\n    with warnings.catch_warnings():\n"
        "        warnings.simplefilter('ignore')\n        warnings.warn('x', DeprecationWarning)\n"
    )
    result = pytester.runpytest_subprocess("--detect-leaks")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["leakhunt: 1 test checked, 0 leaking, 0 objects leaked, 0 B retained"])
    result.stdout.no_fnmatch_line("retained once*")


def test_a_leak_is_named_before_what_only_c_state_holds(pytester: pytest.Pytester) -> None:
    """Past the cap of eight leaks per test, what is cut is what no module reaches, never the leak itself."""
    pytester.makepyfile(
        """
        import ctypes
        SESSIONS = []
        class Session:
            pass
        def test_keeps_both():
            for i in range(12):  # a reference nobody will drop, as a C extension's state would hold them
                ctypes.pythonapi.Py_IncRef(ctypes.py_object((f"t{i}", [i])))
            SESSIONS.append(Session())
        """
    )
    result = pytester.runpytest_subprocess("--detect-leaks")
    assert result.parseoutcomes() == {"passed": 1, "leaked": 1}
    result.stdout.fnmatch_lines(
        ["*held by: *.SESSIONS[[]0[]] -> *.Session", "... and * more leak group* not explained"]
    )
    result.stdout.fnmatch_lines(["LEAKED *::test_keeps_both: tuple x1 held by <held outside Python objects*"])


def test_an_old_cycle_dropped_by_the_test_does_not_make_its_objects_leaks(pytester: pytest.Pytester) -> None:
    """An old object that became cyclic garbage while the heap was frozen is freed before its contents are judged."""
    pytester.makepyfile(
        """
        class Node:
            pass
        OLD = Node()
        OLD.me = OLD
        def test_drops_the_cycle():
            global OLD
            OLD.payload = [{"n": i} for i in range(3)]
            OLD = None
        """
    )
    result = pytester.runpytest_subprocess("--detect-leaks")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*LEAKED*")
    result.stdout.no_fnmatch_line("retained once*")


def test_a_value_set_on_a_context_variable_is_retained_once_by_the_context(pytester: pytest.Pytester) -> None:
    """The thread's context holds what a test set on a ContextVar; the next set replaces it: a slot, not growth."""
    pytester.makepyfile(
        """
        import contextvars
        REQUEST = contextvars.ContextVar("request")
        def test_sets_without_reset():
            REQUEST.set({"user": ["alice"]})
        """
    )
    result = pytester.runpytest_subprocess("--detect-leaks")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["retained once *::test_sets_without_reset: * held by <Context>"])


SLOT_SUITE = """
    import pytest
    class Settings:
        def __init__(self):
            self.processors = []
    SETTINGS = Settings()
    HISTORY = []
    @pytest.fixture(autouse=True)
    def reset():
        SETTINGS.processors = ["a", "b"]
        yield
    @pytest.mark.parametrize("n", range(12))
    def test_uses_the_slot(n):
        SETTINGS.processors.append("c")
    def test_also_keeps_it():
        SETTINGS.processors.append("c")
        HISTORY.append(SETTINGS.processors)
    @pytest.mark.parametrize("n", range(3))
    def test_after(n):
        SETTINGS.processors.append("c")
"""


def test_a_value_in_a_slot_reset_before_every_test_is_retained_once_unless_also_kept(
    pytester: pytest.Pytester,
) -> None:
    """Test after test the same slot gets a new list; the one test that also keeps it in a list fails."""
    pytester.makepyfile(SLOT_SUITE)
    result = pytester.runpytest_subprocess("--detect-leaks", "-p", "no:randomly")
    assert result.parseoutcomes() == {"passed": 16, "leaked": 1}
    result.stdout.fnmatch_lines(["LEAKED *::test_also_keeps_it: list x1 held by *HISTORY*"])
    result.stdout.fnmatch_lines(["retained once *::test_uses_the_slot[[]11[]]: list x1 held by *SETTINGS.processors"])
    result.stdout.fnmatch_lines(["retained once *::test_after[[]2[]]: list x1 held by *SETTINGS.processors"])


def test_a_test_that_repeats_a_known_leak_still_has_its_other_roots_judged(pytester: pytest.Pytester) -> None:
    """A repeated leak of instances is found quickly; a dict the same test kept elsewhere is not missed for it."""
    pytester.makepyfile(
        """
        import pytest
        SESSIONS, EVENTS = [], []
        class Session:
            pass
        @pytest.mark.parametrize("n", range(4))
        def test_keeps_a_session(n):
            SESSIONS.append(Session())
        def test_keeps_a_session_and_an_event():
            SESSIONS.append(Session())
            EVENTS.append({"kind": "view", "tags": ["x"]})
        """
    )
    result = pytester.runpytest_subprocess("--detect-leaks", "-p", "no:randomly")
    assert result.parseoutcomes() == {"passed": 5, "leaked": 5}
    result.stdout.fnmatch_lines(["*held by: *EVENTS[[]0[]] -> dict"])


def test_a_value_in_a_reset_slot_and_a_list_fails_its_test_when_it_runs_first(pytester: pytest.Pytester) -> None:
    """The first search may meet the slot before the list; the list, which grows, is what is reported."""
    # the same suite with the keeping test collected first (a name keeps the place of its first definition)
    first = "def test_also_keeps_it():\n    pass\n"
    marker = '    @pytest.mark.parametrize("n", range(12))'
    pytester.makepyfile(SLOT_SUITE.replace(marker, textwrap.indent(first, "    ") + marker, 1))
    result = pytester.runpytest_subprocess("--detect-leaks", "-p", "no:randomly", "-v")
    result.stdout.fnmatch_lines(["*::test_also_keeps_it *", "*::test_uses_the_slot[[]0[]] *"])
    assert result.parseoutcomes() == {"passed": 16, "leaked": 1}
    result.stdout.fnmatch_lines(["LEAKED *::test_also_keeps_it: list x1 held by *HISTORY*"])


def test_a_weak_key_a_replaced_slot_kept_does_not_grow(pytester: pytest.Pytester) -> None:
    """The class a slot held before the next run replaced it is garbage; what only it kept does not grow."""
    pytester.makepyfile(
        """
        import threading, weakref
        LOCKS = weakref.WeakKeyDictionary()
        class Config:
            factory = None
        CONFIG = Config()
        class Stream:
            pass
        def test_configures():
            stream = Stream()
            class Factory:  # a class is a cycle: replaced, it is garbage, frozen until a full collection
                out = stream
            CONFIG.factory = Factory
            LOCKS[stream] = threading.Lock()
        """
    )
    result = pytester.runpytest_subprocess("--detect-leaks")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*LEAKED*")
    result.stdout.fnmatch_lines(["retained once *::test_configures: *"])


LAZY_MODULE = """
    import warnings
    class Base:
        pass
    class Child(Base):
        def ask(self, prompt="Password: "):
            return (None, "a", 2, ("stacklevel",), [prompt])
    def nested():
        def inner():
            return (None, (1, 22), "%p", ("=", " "))
        return inner
"""


def test_a_module_imported_first_by_a_test_leaves_nothing_behind(pytester: pytest.Pytester) -> None:
    # The constants of the functions a module defines are held by code objects, which the collector does
    # not track, and a class keeps the table of its subclasses in C: neither is a holder to report.
    pytester.makepyfile(lazymod=LAZY_MODULE)
    pytester.makepyfile(
        """
        KEPT = []
        def test_first_import():
            import lazymod
            assert lazymod.Child().ask()[1] == "a"
        def test_kept():
            import lazymod
            KEPT.append(lazymod.nested())
        """
    )
    pytester.syspathinsert()
    result = pytester.runpytest("--detect-leaks", "-p", "no:randomly")
    assert result.parseoutcomes() == {"passed": 2, "leaked": 1}
    result.stdout.fnmatch_lines(["LEAKED *test_kept: *function* held by *.KEPT[[]0[]]"])
    result.stdout.no_fnmatch_line("*retained once*")


def test_a_dict_shaped_like_a_table_of_subclasses_kept_by_the_program_is_a_leak(pytester: pytest.Pytester) -> None:
    # The interpreter keeps a class's table of subclasses in C; a program's dict of the same shape, kept in a
    # module list on every run, is a leak all the same.
    pytester.makepyfile(
        """
        import weakref
        class Base:
            pass
        class Only(Base):
            pass
        SNAPSHOTS = []
        def test_snapshot():
            SNAPSHOTS.append({id(c): weakref.ref(c) for c in Base.__subclasses__()})
        """
    )
    result = pytester.runpytest("--detect-leaks", "-p", "no:randomly")
    assert result.parseoutcomes() == {"passed": 1, "leaked": 1}
    result.stdout.fnmatch_lines(["LEAKED *test_snapshot: dict x1 held by *.SNAPSHOTS[[]0[]]"])
