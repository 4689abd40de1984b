"""Fix hints, leak fingerprints and the baseline of known leaks."""

from __future__ import annotations

import dataclasses
import json

import pytest

from pytest_leakhunt.hints import fingerprint, hint_for
from pytest_leakhunt.model import Leak


def _leak(type_: str = "shop.Order", path: tuple[str, ...] = ("shop", "HISTORY", "[0]"), **kw: object) -> Leak:
    return Leak(type=type_, count=1, shallow_bytes=56, retained_bytes=56, retained_by=path, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("leak", "expected"),
    [
        (_leak(path=("shop.orders", "quote <lru_cache>")), "an unbounded functools.lru_cache*"),
        (_leak(path=("shop.audit", "log", "handlers", "[0]")), "a handler or filter added to a logger*"),
        (_leak(path=("shop.events", "bus", "_listeners", "[0]")), "a listener registered on a long-lived object*"),
        (_leak(type_="unittest.mock.MagicMock"), "a mock.patch started with .start()*"),
        (
            _leak(type_="shop.errors.PaymentError", path=("shop", "LAST_ERROR")),
            "a stored exception keeps its traceback*",
        ),
        (_leak(path=("<held outside Python objects: atexit>",)), "atexit.register keeps the callback*"),
        (_leak(type_="threading.Thread", kind="thread", name="beat"), "join the thread in teardown*"),
    ],
)
def test_hint_for_common_patterns(leak: Leak, expected: str) -> None:
    import fnmatch

    hint = hint_for(leak)
    assert hint is not None and fnmatch.fnmatch(hint, expected), hint


def test_no_hint_for_a_plain_global() -> None:
    assert hint_for(_leak()) is None


def test_fingerprint_ignores_indices_and_addresses_but_not_names() -> None:
    first = _leak(path=("threading", "_active", "[140304713303744]", "_target"))
    again = _leak(path=("threading", "_active", "[139976159913664]", "_target"))
    assert fingerprint(first) == fingerprint(again)
    assert fingerprint(_leak(path=("shop", "HISTORY", "[0]"))) == fingerprint(_leak(path=("shop", "HISTORY", "[7]")))
    assert fingerprint(_leak(type_="shop.Order")) != fingerprint(_leak(type_="shop.Cart"))
    assert fingerprint(_leak(path=("shop", "HISTORY", "[0]"))) != fingerprint(_leak(path=("shop", "ARCHIVE", "[0]")))


LEGACY = """
    HISTORY = []
    CACHE = {}
    class Order:
        pass
    def test_history_one():
        HISTORY.append(Order())
    def test_history_two():
        HISTORY.append(Order())
    def test_cache():
        CACHE[len(CACHE)] = Order()
    def test_clean():
        Order()
"""


def test_same_leak_in_several_tests_has_one_fingerprint_and_a_hint_in_the_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_legacy=LEGACY)
    pytester.runpytest_subprocess("--detect-leaks", "--leaks-report=leaks.json")
    tests = {
        t["nodeid"].split("::")[1]: t["leaks"][0]
        for t in json.loads((pytester.path / "leaks.json").read_text())["tests"]
    }
    assert tests["test_history_one"]["fingerprint"] == tests["test_history_two"]["fingerprint"]
    assert tests["test_cache"]["fingerprint"] != tests["test_history_one"]["fingerprint"]


def test_baseline_lets_known_leaks_pass_fails_new_ones_and_reports_stale_entries(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_legacy=LEGACY)
    recorded = pytester.runpytest_subprocess("--detect-leaks", "--leaks-baseline=known.json", "--leaks-baseline-update")
    assert recorded.ret == pytest.ExitCode.OK
    recorded.stdout.fnmatch_lines(["leakhunt: wrote 2 known leak group(s) to known.json"])
    entries = json.loads((pytester.path / "known.json").read_text())["leaks"]
    assert len(entries) == 2 and all(e["fingerprint"] and e["description"] for e in entries)

    again = pytester.runpytest_subprocess("--detect-leaks", "--leaks-baseline=known.json")
    assert again.ret == pytest.ExitCode.OK
    again.stdout.fnmatch_lines(["leakhunt: 2 leak group(s) in the baseline did not fail their tests"])

    # a new leak fails; a fixed one shows up as a stale baseline entry
    pytester.makepyfile(
        test_legacy=LEGACY.replace("CACHE[len(CACHE)] = Order()", "pass")
        + "\n    TRAIL = []\n    def test_new_leak():\n        TRAIL.append(Order())\n"
    )
    later = pytester.runpytest_subprocess("--detect-leaks", "--leaks-baseline=known.json")
    assert later.ret == pytest.ExitCode.TESTS_FAILED
    assert later.parseoutcomes() == {"passed": 5, "leaked": 1}
    later.stdout.fnmatch_lines(
        [
            "LEAKED *::test_new_leak: *Order x1 held by test_legacy.TRAIL[[]0[]]",
            "*baseline entry * no longer occurs (test_legacy.py::test_cache: *CACHE*",
        ]
    )


def test_baseline_update_needs_a_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_legacy=LEGACY)
    result = pytester.runpytest("--detect-leaks", "--leaks-baseline-update")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--leaks-baseline-update: needs --leaks-baseline=FILE*"])


def test_unreadable_baseline_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_legacy=LEGACY)
    (pytester.path / "known.json").write_text("not json")
    result = pytester.runpytest("--detect-leaks", "--leaks-baseline=known.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*command line option --leaks-baseline: 'known.json' is not a leak baseline: it is not JSON*"]
    )


def test_random_parts_of_names_do_not_change_the_fingerprint() -> None:
    # a logging library that names a class per instance with a uuid4 (structlog's WrappedDict-<uuid>)
    first = Leak(
        type="structlog.threadlocal.WrappedDict-3f2a9c1e-8b7d-4e6f-a1b2-c3d4e5f60718",
        count=1,
        shallow_bytes=0,
        retained_bytes=0,
        retained_by=("app", "CONTEXTS", "[0]"),
    )
    again = dataclasses.replace(
        first,
        type="structlog.threadlocal.WrappedDict-9e8d7c6b-5a4f-4e3d-b2c1-a0f9e8d7c6b5",
        retained_by=("app", "CONTEXTS", "[7]"),
    )
    other = dataclasses.replace(first, retained_by=("app", "OTHERS", "[0]"))
    assert fingerprint(first) == fingerprint(again) != fingerprint(other)
