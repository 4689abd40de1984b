"""Faults around the plugin's files: bad paths, full disks, lost directories, bad baselines, Ctrl-C.

Each failure must be one line (a usage error before the run, or a line of the
summary after it), never a traceback; it must cost no test its verdict and
the session neither its LEAKS section nor its summary; and a file that was
there before is unchanged unless the run completed. The tests run as root,
which chmod does not stop: paths fail here through ``/proc``, ``/dev/full``, a
file used as a directory, or a directory that goes away during the run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from inner import write_ini

#: one leaking test (a list holds it: it fails on its first run) and one clean one
SUITE = """
HISTORY = []
class Order:
    pass
def test_leaks():
    HISTORY.append(Order())
def test_clean():
    Order()
"""
BASELINE = '{"version": 1, "leaks": []}\n'
SUMMARY = "leakhunt: 2 tests checked, 1 leaking, 1 object leaked, * retained"


def refused(result: pytest.RunResult, pattern: str) -> None:
    """A usage error in one line that matches *pattern*, and no traceback."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    lines = [line for line in result.stderr.lines if line.strip()]
    assert len(lines) == 1, result.stderr.str()
    result.stderr.fnmatch_lines([f"ERROR: {pattern}"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def reported(result: pytest.RunResult, pattern: str) -> None:
    """Exactly one leakhunt error or warning line, matching *pattern*; no traceback; the leak and summary kept."""
    out = result.stdout.str()
    assert "Traceback" not in out + result.stderr.str(), out
    problems = [line for line in result.stdout.lines if line.startswith(("leakhunt: error", "leakhunt: warning"))]
    assert len(problems) == 1, out
    result.stdout.fnmatch_lines(["*= LEAKS =*", "*= leakhunt summary =*", "LEAKED *::test_leaks: *", SUMMARY, pattern])
    assert "could not check" not in out
    assert result.parseoutcomes() == {"passed": 2, "leaked": 1}


@pytest.fixture
def files(pytester: pytest.Pytester) -> Path:
    """The suite, a plain file and a directory to misuse as paths."""
    pytester.makepyfile(test_shop=SUITE)
    (pytester.path / "plain.txt").write_text("not a directory\n")
    (pytester.path / "out").mkdir()
    return pytester.path


# -- before the run: every output path is checked, in one line naming its option --------------------


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (
            ["--leaks-report=/proc/leaks.json"],
            "command line option --leaks-report: cannot write '/proc/leaks.json': cannot create files in '/proc'*",
        ),
        (
            ["--leaks-report=plain.txt/leaks.json"],
            "command line option --leaks-report: cannot write 'plain.txt/leaks.json': '*plain.txt' is a file, not a directory",
        ),
        (
            ["--leaks-report=nowhere/leaks.json"],
            "command line option --leaks-report: cannot write 'nowhere/leaks.json': directory '*nowhere' does not exist",
        ),
        (["--leaks-html=out"], "command line option --leaks-html: 'out' is a directory, expected a file path"),
        (["--leaks-html="], "command line option --leaks-html: expected a file path, got an empty value"),
        (
            ["--leaks-snapshot-dir=plain.txt"],
            "command line option --leaks-snapshot-dir: 'plain.txt' is a file, expected a directory",
        ),
        (
            ["--leaks-snapshot-dir=plain.txt/snaps"],
            "command line option --leaks-snapshot-dir: cannot create directory 'plain.txt/snaps': '*plain.txt' is a file, not a directory",
        ),
        (
            ["--leaks-snapshot-dir=/proc/snaps"],
            "command line option --leaks-snapshot-dir: cannot create directory '/proc/snaps': cannot create files in '/proc'*",
        ),
        (
            ["--leaks-baseline=/proc/known.json", "--leaks-baseline-update"],
            "command line option --leaks-baseline: cannot write '/proc/known.json': *",
        ),
        (
            ["--leaks-baseline=out", "--leaks-baseline-update"],
            "command line option --leaks-baseline: 'out' is a directory, expected a file path",
        ),
    ],
    ids=[
        "report-in-proc",
        "report-under-a-file",
        "report-in-a-missing-dir",
        "html-is-a-dir",
        "html-empty",
        "snapshots-are-a-file",
        "snapshots-under-a-file",
        "snapshots-in-proc",
        "baseline-update-in-proc",
        "baseline-update-is-a-dir",
    ],
)
def test_a_bad_output_path_is_refused_before_the_run(
    pytester: pytest.Pytester, files: Path, args: list[str], pattern: str
) -> None:
    refused(pytester.runpytest("--detect-leaks", *args), pattern)


@pytest.mark.parametrize(
    ("ini", "pattern"),
    [
        (
            ["leaks_baseline_update = yes"],
            "ini option 'leaks_baseline_update' in *tox.ini: needs --leaks-baseline=FILE*",
        ),
        (
            ["leaks_snapshot_dir = plain.txt"],
            "ini option 'leaks_snapshot_dir' in *tox.ini: 'plain.txt' is a file, expected a directory",
        ),
        (
            ["leaks_baseline = known.json", "leaks_report = known.json"],
            "ini option 'leaks_report' in *tox.ini: 'known.json' is the same file as ini option 'leaks_baseline' in *",
        ),
    ],
    ids=["update-alone", "snapshots-are-a-file", "report-is-the-baseline"],
)
def test_an_ini_value_is_blamed_on_the_ini_file(
    pytester: pytest.Pytester, files: Path, ini: list[str], pattern: str
) -> None:
    (files / "known.json").write_text(BASELINE)
    write_ini(pytester, *ini)
    refused(pytester.runpytest("--detect-leaks"), pattern)


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (
            ["--leaks-baseline=known.json", "--leaks-report=known.json"],
            "command line option --leaks-report: 'known.json' is the same file as command line option --leaks-baseline ('known.json')*",
        ),
        (
            ["--leaks-baseline=known.json", "--leaks-baseline-update", "--leaks-html=out/../known.json"],
            "command line option --leaks-html: 'out/../known.json' is the same file as command line option --leaks-baseline*",
        ),
        (
            ["--leaks-report=page.html", "--leaks-html=page.html"],
            "command line option --leaks-html: 'page.html' is the same file as command line option --leaks-report*",
        ),
        (
            ["--leaks-report=snaps", "--leaks-snapshot-dir=snaps"],
            "command line option --leaks-snapshot-dir: 'snaps' is the same file as command line option --leaks-report*",
        ),
    ],
    ids=["report-is-the-baseline", "html-is-the-updated-baseline", "html-is-the-report", "snapshots-are-the-report"],
)
def test_two_outputs_on_one_file_are_refused_and_the_file_kept(
    pytester: pytest.Pytester, files: Path, args: list[str], pattern: str
) -> None:
    (files / "known.json").write_text(BASELINE)
    refused(pytester.runpytest("--detect-leaks", *args), pattern)
    assert (files / "known.json").read_text() == BASELINE


# -- the baseline: missing, malformed or foreign, refused in words before the run ------------------


def test_a_missing_baseline_says_how_to_make_one(pytester: pytest.Pytester, files: Path) -> None:
    result = pytester.runpytest("--detect-leaks", "--leaks-baseline=known.json")
    refused(
        result,
        "command line option --leaks-baseline: baseline file 'known.json' does not exist; create it with --leaks-baseline-update*",
    )


@pytest.mark.parametrize("update", [False, True], ids=["read", "update"])
@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("not json\n", "it is not JSON (Expecting value at line 1)"),
        ("", "the file is empty"),
        ("[]", "it holds a list, not an object"),
        ('{"leaks": []}', 'it has no "version"'),
        ('{"version": 2, "leaks": []}', 'its "version" is 2; this pytest-leakhunt reads version 1'),
        ('{"version": "1", "leaks": []}', 'its "version" is "1"; this pytest-leakhunt reads version 1'),
        ('{"version": 1}', 'it has no "leaks" list'),
        ('{"version": 1, "leaks": {}}', 'its "leaks" is an object, not a list'),
        ('{"version": 1, "leaks": ["3f2a"]}', 'entry 1 of "leaks" is the string "3f2a", not an object'),
        (
            '{"version": 1, "leaks": [{"fingerprint": 5}]}',
            'entry 1 of "leaks" has the number 5 as its "fingerprint", expected a non-empty string',
        ),
        (
            '{"version": 1, "leaks": [{"nodeid": "t.py::t"}]}',
            'entry 1 of "leaks" has no "fingerprint", expected a non-empty string',
        ),
    ],
    ids=[
        "not-json",
        "empty",
        "a-list",
        "no-version",
        "version-2",
        "version-string",
        "no-leaks",
        "leaks-an-object",
        "entry-a-string",
        "fingerprint-a-number",
        "no-fingerprint",
    ],
)
def test_a_malformed_baseline_is_refused_in_words_and_never_overwritten(
    pytester: pytest.Pytester, files: Path, content: str, problem: str, update: bool
) -> None:
    (files / "known.json").write_text(content)
    result = pytester.runpytest(
        "--detect-leaks", "--leaks-baseline=known.json", *(["--leaks-baseline-update"] if update else [])
    )
    keep = "; --leaks-baseline-update does not replace it: fix or delete it first" if update else ""
    shape = '; expected {"version": 1, "leaks": [{"fingerprint": "...", *}'
    refused(
        result, f"command line option --leaks-baseline: 'known.json' is not a leak baseline: {problem}{keep}{shape}"
    )
    assert not any(word in result.stderr.str() for word in ("KeyError", "TypeError", "indices", "Errno"))
    assert (files / "known.json").read_text() == content


# -- during and after the run: a file that cannot be written is one line, and nothing else is lost ----


@pytest.mark.parametrize(("option", "label"), [("--leaks-report", "JSON report"), ("--leaks-html", "HTML report")])
def test_a_full_disk_costs_no_verdict_and_no_summary(
    pytester: pytest.Pytester, files: Path, option: str, label: str
) -> None:
    result = pytester.runpytest("--detect-leaks", f"{option}=/dev/full")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    reported(result, f"leakhunt: error: could not write the {label} '/dev/full': No space left on device")


def test_a_clean_run_that_could_not_write_its_report_does_not_pass(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_clean():\n    pass\n")
    result = pytester.runpytest("--detect-leaks", "--leaks-report=/dev/full")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["leakhunt: error: could not write the JSON report '/dev/full': No space left on device", "*1 passed*"]
    )


def test_report_and_baseline_directories_removed_during_the_run(pytester: pytest.Pytester, files: Path) -> None:
    pytester.makepyfile(test_a_remove="import shutil\ndef test_remove():\n    shutil.rmtree('out')\n")
    result = pytester.runpytest("--detect-leaks", "--leaks-report=out/leaks.json", "-p", "no:randomly")
    result.stdout.fnmatch_lines(
        ["leakhunt: error: could not write the JSON report 'out/leaks.json': No such file or directory"]
    )
    assert "Traceback" not in result.stdout.str() and result.parseoutcomes() == {"passed": 3, "leaked": 1}

    (files / "out").mkdir()
    result = pytester.runpytest("--detect-leaks", "--leaks-baseline=out/known.json", "--leaks-baseline-update")
    result.stdout.fnmatch_lines(
        ["leakhunt: error: could not write the baseline 'out/known.json': No such file or directory"]
    )
    assert "wrote" not in result.stdout.str() and result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_snapshot_dir_lost_during_the_run_is_one_warning_not_a_lost_verdict(
    pytester: pytest.Pytester, files: Path
) -> None:
    (files / "snaps").mkdir()
    pytester.makepyfile(
        test_a_break="import os, shutil\ndef test_break():\n    shutil.rmtree('snaps')\n    open('snaps', 'w').close()\n"
    )
    result = pytester.runpytest("--detect-leaks", "--leaks-snapshot-dir=snaps")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    assert "Traceback" not in out and "could not check" not in out and "ERROR " not in out
    result.stdout.fnmatch_lines(
        [
            "LEAKED *::test_leaks: *",
            "leakhunt: 3 tests checked, 1 leaking*",
            "leakhunt: warning: could not write the heap snapshot 'snaps/*': Not a directory: *",
        ]
    )
    assert result.parseoutcomes() == {"passed": 3, "leaked": 1}


def test_a_snapshot_a_worker_could_not_write_reaches_the_summary(pytester: pytest.Pytester, files: Path) -> None:
    (files / "snaps").mkdir()
    pytester.makepyfile(
        test_a_break="import os, shutil\ndef test_break():\n    shutil.rmtree('snaps')\n    open('snaps', 'w').close()\n"
    )
    result = pytester.runpytest_subprocess("-p", "xdist", "-n", "1", "--detect-leaks", "--leaks-snapshot-dir=snaps")
    assert "Traceback" not in result.stdout.str() and "could not check" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        ["LEAKED *::test_leaks: *", "leakhunt: warning: could not write the heap snapshot *: Not a directory*"]
    )


def test_a_write_that_fails_halfway_leaves_the_old_report_whole(pytester: pytest.Pytester, files: Path) -> None:
    """The disk fills after the data went out but before it is on disk: the old report stays, no temporary file."""
    pytester.makeconftest(
        "import errno, os\ndef _full(fd):\n    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\nos.fsync = _full\n"
    )
    (files / "out" / "leaks.json").write_text("old report\n")
    result = pytester.runpytest_subprocess("--detect-leaks", "--leaks-report=out/leaks.json")
    reported(result, "leakhunt: error: could not write the JSON report 'out/leaks.json': No space left on device")
    assert (files / "out" / "leaks.json").read_text() == "old report\n"
    assert [p.name for p in (files / "out").iterdir()] == ["leaks.json"]


# -- Ctrl-C: an interrupted run changes no file that was there -------------------------------------

#: where the KeyboardInterrupt comes from, in the second of three tests
INTERRUPTS = {
    "fixture_teardown": (
        "import pytest\n@pytest.fixture\ndef trap():\n    yield\n    raise KeyboardInterrupt\n",
        "def test_interrupted(trap):\n    HISTORY.append(Order())\n",
    ),
    "conftest_hook": (
        "def pytest_runtest_logreport(report):\n    if report.when == 'teardown' and 'interrupted' in report.nodeid:\n        raise KeyboardInterrupt\n",
        "def test_interrupted():\n    HISTORY.append(Order())\n",
    ),
    "during_the_check": (
        "",
        "class Trap:\n    def __sizeof__(self):  # the check sizes what leaked\n        raise KeyboardInterrupt\n"
        "def test_interrupted():\n    HISTORY.append(Trap())\n",
    ),
}
LEAKS_THEN_INTERRUPTED = "HISTORY = []\nclass Order:\n    pass\ndef test_leaks():\n    HISTORY.append(Order())\n{test}def test_never_runs():\n    pass\n"


@pytest.mark.parametrize("source", sorted(INTERRUPTS))
def test_an_interrupted_run_changes_no_file(pytester: pytest.Pytester, source: str) -> None:
    conftest, test = INTERRUPTS[source]
    if conftest:
        pytester.makeconftest(conftest)
    pytester.makepyfile(test_shop=LEAKS_THEN_INTERRUPTED.format(test=test))
    (pytester.path / "snaps").mkdir()
    before = {
        name: f"old {name}\n".encode()
        for name in ("leaks.json", "page.html", "snaps/test_shop.py_test_leaks.heapsnapshot")
    }
    for name, data in before.items():
        (pytester.path / name).write_bytes(data)
    args = ["--detect-leaks", "--leaks-report=leaks.json", "--leaks-html=page.html", "--leaks-snapshot-dir=snaps"]
    result = pytester.runpytest_subprocess(*args)  # a Trap left in this process would interrupt it later
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(
        [
            "LEAKED *::test_leaks: *",
            "leakhunt: the run did not complete, so the heap snapshot 'snaps/*', the JSON report 'leaks.json' and "
            "the HTML report 'page.html' were not written; files already there are unchanged",
            "*KeyboardInterrupt*",
        ]
    )
    for name, data in before.items():
        assert (pytester.path / name).read_bytes() == data, name
    leftovers = {p.name for p in pytester.path.iterdir()} | {p.name for p in (pytester.path / "snaps").iterdir()}
    assert not [name for name in leftovers if ".leakhunt-" in name]


def test_an_interrupted_baseline_update_keeps_the_old_baseline(pytester: pytest.Pytester) -> None:
    conftest, test = INTERRUPTS["fixture_teardown"]
    pytester.makeconftest(conftest)
    pytester.makepyfile(test_shop=LEAKS_THEN_INTERRUPTED.format(test=test))
    (pytester.path / "known.json").write_text(BASELINE)
    result = pytester.runpytest_subprocess("--detect-leaks", "--leaks-baseline=known.json", "--leaks-baseline-update")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["leakhunt: the run did not complete, so the baseline 'known.json' was not written; *"])
    assert (pytester.path / "known.json").read_text() == BASELINE


def test_a_completed_run_replaces_old_files_whole(pytester: pytest.Pytester, files: Path) -> None:
    (files / "snaps").mkdir()
    old = files / "snaps" / "test_shop.py_test_leaks.heapsnapshot"
    old.write_text("old snapshot\n")
    (files / "leaks.json").write_text("old report\n")
    result = pytester.runpytest("--detect-leaks", "--leaks-report=leaks.json", "--leaks-snapshot-dir=snaps")
    assert result.parseoutcomes() == {"passed": 2, "leaked": 1}
    assert json.loads(old.read_text())["snapshot"]["node_count"] > 1
    assert json.loads((files / "leaks.json").read_text())["summary"]["tests_leaking"] == 1
    assert [p.name for p in (files / "snaps").iterdir()] == [old.name]


# -- python -m pytest_leakhunt compare: which file, and why, in one line ----------------------------


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        (
            "missing.heapsnapshot",
            "good.heapsnapshot",
            "cannot read the before snapshot 'missing.heapsnapshot': No such file or directory",
        ),
        ("good.heapsnapshot", "out", "cannot read the after snapshot 'out': Is a directory"),
        (
            "good.heapsnapshot",
            "list.json",
            "the after snapshot 'list.json' cannot be compared: it is JSON but not a V8 heap snapshot*",
        ),
        ("plain.txt", "good.heapsnapshot", "the before snapshot 'plain.txt' cannot be compared: it is not JSON*"),
    ],
    ids=["before-missing", "after-a-dir", "after-a-list", "before-not-json"],
)
def test_compare_says_which_file_failed_and_why(
    pytester: pytest.Pytester, files: Path, before: str, after: str, message: str
) -> None:
    from pytest_leakhunt.heapsnapshot import Snapshot

    Snapshot().write(str(files / "good.heapsnapshot"))
    (files / "list.json").write_text("[1, 2]\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest_leakhunt", "compare", before, after],
        cwd=files,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    pytest.LineMatcher(done.stderr.splitlines()).fnmatch_lines([f"python -m pytest_leakhunt compare: error: {message}"])
