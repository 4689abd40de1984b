"""The leak_tracker fixture: watch chosen objects, with or without --detect-leaks."""

from __future__ import annotations

import gc
import weakref

import pytest

from pytest_leakhunt import LeakTracker


def test_watched_object_still_alive_fails_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        CACHE = {}
        class Session:
            pass
        def test_it(leak_tracker):
            s = leak_tracker.track(Session(), name="db session")
            CACHE["s"] = s
        """
    )
    result = pytester.runpytest()
    assert result.parseoutcomes() == {"passed": 1, "leaked": 1}
    result.stdout.fnmatch_lines(
        [
            "*1) tracked 'db session': test_watched_object_still_alive_fails_the_test.Session x1*",
            "*held by: test_watched_object_still_alive_fails_the_test.CACHE[[]'s'[]] -> *Session",
            "leakhunt: 1 test checked, 1 leaking*",
        ]
    )


def test_collected_object_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        class Node:
            pass
        def test_it(leak_tracker):
            a = leak_tracker.track(Node())
            b = Node()
            a.peer, b.peer = b, a   # a cycle: only the collector frees it
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_object_released_by_fixture_teardown_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        POOL = []
        class Conn:
            pass
        @pytest.fixture
        def conn():
            c = Conn()
            POOL.append(c)
            yield c
            POOL.remove(c)
        def test_it(conn, leak_tracker):
            leak_tracker.track(conn)
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_tracker_json_entry(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        KEEP = []
        class Blob:
            pass
        def test_it(leak_tracker):
            KEEP.append(leak_tracker.track(Blob(), name="blob"))
        """
    )
    pytester.runpytest("--leaks-report=out.json")
    import json

    (test,) = json.loads((pytester.path / "out.json").read_text())["tests"]
    (leak,) = test["leaks"]
    assert leak["kind"] == "tracked"
    assert leak["name"] == "blob"
    assert leak["retained_by"] == ["test_tracker_json_entry", "KEEP", "[0]"]


@pytest.mark.parametrize(
    ("value", "type_name"),
    [({}, "'dict'"), ([], "'list'"), (object(), "'object'"), (3, "'int'")],
)
def test_unweakrefable_object_gets_a_helpful_type_error(value: object, type_name: str) -> None:
    tracker = LeakTracker()
    with pytest.raises(TypeError, match=rf"{type_name} objects cannot be\. Track the object that owns it"):
        tracker.track(value)


def test_hints_suggest_what_works() -> None:
    with pytest.raises(TypeError, match=r"class TrackedList\(list\): pass") as excinfo:
        LeakTracker().track([])
    assert "Int" not in str(excinfo.value)
    with pytest.raises(TypeError, match="numbers, strings and tuples cannot be watched") as excinfo:
        LeakTracker().track(42)
    assert "class Tracked" not in str(excinfo.value)

    class TrackedList(list):  # what the hint suggests must work
        pass

    LeakTracker().track(TrackedList())


def test_a_tracked_object_the_check_also_finds_is_listed_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        KEEP = []
        class Widget:
            pass
        def test_it(leak_tracker):
            KEEP.append(leak_tracker.track(Widget(), name="kept widget"))
        """
    )
    result = pytester.runpytest("--detect-leaks", "--leaks-report=out.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*1 object still alive*", "1) tracked 'kept widget': *Widget x1*"])
    result.stdout.no_fnmatch_line("2) *")
    import json

    (test,) = json.loads((pytester.path / "out.json").read_text())["tests"]
    (leak,) = test["leaks"]
    assert (leak["kind"], leak["name"], leak["retained_by"][-2:]) == ("tracked", "kept widget", ["KEEP", "[0]"])


def test_slots_hint() -> None:
    class Slotted:
        __slots__ = ("x",)

    with pytest.raises(TypeError, match="add '__weakref__' to the class's __slots__"):
        LeakTracker().track(Slotted())


def test_tracker_holds_no_strong_reference() -> None:
    class Thing:
        pass

    tracker = LeakTracker()
    thing = Thing()
    ref = weakref.ref(thing)
    tracker.track(thing)
    del thing
    gc.collect()
    assert ref() is None
    assert tracker.alive() == []
    tracker.close()


def test_tracker_reports_alive_and_closes() -> None:
    class Thing:
        pass

    tracker = LeakTracker()
    keep = tracker.track(Thing(), name="kept")
    assert [w.name for w in tracker.alive()] == ["kept"]
    assert tracker.peek(tracker.alive()[0]) is keep
    tracker.close()
    assert len(tracker) == 0
