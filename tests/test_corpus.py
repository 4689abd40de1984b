"""Precision and recall on the corpus: every case in a fresh interpreter (runpytest_subprocess)."""

from __future__ import annotations

import json

import pytest
from corpus import APP, CLEAN, EXPECTED_FAILURES, LEAKING, Case


def _run(pytester: pytest.Pytester, case: Case) -> tuple[pytest.RunResult, dict]:
    pytester.makepyfile(corpusapp=APP, **{f"test_{case.name}": case.source})
    result = pytester.runpytest_subprocess("--detect-leaks", "--leaks-report=leaks.json", "-W", "ignore::DeprecationWarning")
    report = json.loads((pytester.path / "leaks.json").read_text())
    return result, report


#: Slots every run overwrites: retained once, listed and not failed (they do not grow).
RETAINED_ONCE = frozenset(
    {"module_dict", "ordered_dict_cache", "nested_containers", "setattr_on_module", "copyreg_registration",
     "excepthook_replaced", "leak_in_fixture_teardown"}
)


@pytest.mark.parametrize("case", LEAKING, ids=[c.name for c in LEAKING])
def test_leaking_case_is_reported(pytester: pytest.Pytester, case: Case) -> None:
    result, report = _run(pytester, case)
    if case.name in RETAINED_ONCE:
        assert result.ret == pytest.ExitCode.OK, result.stdout.str()
        assert report["tests"] == [] and report["retained_once"], json.dumps(report, indent=1)
        assert any(case.blame in entry["type"] + " ".join(entry["retained_by"]) for entry in report["retained_once"])
        return
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    assert report["summary"]["tests_leaking"] == 1
    (test,) = report["tests"]
    blamed = [leak["type"] + " " + " ".join(leak["retained_by"]) + " " + leak.get("root_type", "") for leak in test["leaks"]]
    assert any(case.blame in text for text in blamed), blamed
    # an object is shown with who holds it; a thread, task or process with what it is still doing
    said = "*held by:*" if any(leak["kind"] in ("object", "tracked") for leak in test["leaks"]) else "*still running after teardown*"
    result.stdout.fnmatch_lines(["*LEAKS*", said, "*1 leaked*"])


@pytest.mark.parametrize("case", CLEAN, ids=[c.name for c in CLEAN])
def test_clean_case_is_not_reported(pytester: pytest.Pytester, case: Case) -> None:
    result, report = _run(pytester, case)
    assert report["tests"] == [], json.dumps(report["tests"], indent=1)
    assert report["summary"]["tests_checked"] == 1
    expected = pytest.ExitCode.TESTS_FAILED if case.name in EXPECTED_FAILURES else pytest.ExitCode.OK
    assert result.ret == expected, result.stdout.str()
    assert "LEAKED" not in result.stdout.str()


def test_corpus_is_big_enough() -> None:
    assert len(LEAKING) >= 25 and len(CLEAN) >= 25
    assert len({c.name for c in LEAKING + CLEAN}) == len(LEAKING) + len(CLEAN)
