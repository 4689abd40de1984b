"""Wall-time and memory ratios of pytest-leakhunt against plain pytest, measured in the same run.

Usage (from the project root; needs network access to PyPI the first time):

    python3 benchmarks/run.py                 # everything, 3 interleaved rounds
    python3 benchmarks/run.py --suites synthetic --repeats 5
    python3 benchmarks/run.py --suites synthetic --modes plain,detect --repeats 0 --instructions

It builds its own virtualenv under benchmarks/.work/ with this project, pytest-memray
(the peer), and the sdists of click 8.5.1, boltons 26.2.0 and structlog 26.1.0 (which ship their
tests; structlog's also need its test requirements), then runs every suite in four modes, interleaved,
and prints the median of each:

- plain:   pytest with leakhunt switched off (-p no:leakhunt)
- detect:  --detect-leaks
- trace:   --detect-leaks --leaks-trace
- memray:  pytest-memray with limit_leaks on every test (the peer)

With --instructions (needs valgrind) it also counts the instructions of one plain and one
detect run of each suite under callgrind: slow, but steady on a shared host where timings
move by 10 % or more between runs.

The synthetic suite is 2,000 small tests over a heap of live objects built at import
(1M by default, and 10k to show that the per-test cost does not grow with the heap).
Ratios are what to compare; absolute times depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
import venv
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"
SDISTS = {"click": "8.5.1", "boltons": "26.2.0", "structlog": "26.1.0"}
#: what a suite's tests need besides pytest (structlog's "tests" dependency group, less pytest-randomly)
TEST_DEPS = {"structlog": ["pytest-asyncio==1.5.0", "simplejson==4.3.0", "time-machine==3.6.0"]}
#: repeat2 is not in the default set: it is compared with three plain runs (docs/benchmarks.md, "Repeat mode")
MODES = ("plain", "detect", "trace", "memray")
EXTRA_MODES = ("repeat2",)

SYNTHETIC_CONFTEST = """
import os


class Record:
    def __init__(self, i):
        self.i = i


def _build(n):
    # A realistic mix: containers and instances, all gc-tracked, alive for the whole session.
    heap = []
    for i in range(n // 4):
        heap.append([i, Record(i), {"k": [i]}])
    return heap


HEAP = _build(int(os.environ.get("LEAKHUNT_BENCH_HEAP", "1000000")))
"""

SYNTHETIC_TESTS = """
import pytest

KEPT = []


class Payload:
    def __init__(self, n):
        self.items = [{"n": i, "tags": [i, i + 1]} for i in range(n)]


@pytest.mark.parametrize("n", range({count}))
def test_work(n):
    if n % 400 == 7:
        KEPT.append(Payload(3))        # a few tests leak
    elif n % 3 == 0:
        data = Payload(50)             # allocate and free
        assert len(data.items) == 50
    else:
        assert sum(range(n % 17)) >= 0
"""

MEMRAY_ALL = """
import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.limit_leaks("1 MB"))
"""

#: Time inside the check itself (the window's open and its close: census, roots, explanations, second runs), summed
#: over the run and written to the file LEAKHUNT_BENCH_CHECK_COST names: the check's own cost, free of the noise of
#: a whole run's wall time.
CHECK_COST = """
import atexit
import os
import time

TOTAL = {"seconds": 0.0, "checks": 0}


def _timed(fn, count):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            TOTAL["seconds"] += time.perf_counter() - start
            TOTAL["checks"] += count

    return wrapper


def pytest_configure(config):
    from pytest_leakhunt.check import Checker

    Checker.open_window = _timed(Checker.open_window, 0)
    Checker.close_window = _timed(Checker.close_window, 1)
    path = os.environ["LEAKHUNT_BENCH_CHECK_COST"]
    atexit.register(lambda: open(path, "w").write(f"{TOTAL['seconds']} {TOTAL['checks']}"))
"""


@dataclass
class Suite:
    name: str
    cwd: Path
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    tests: int = 0


def sh(cmd: list[str], **kwargs: object) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)  # type: ignore[call-overload]


def python_in(env_dir: Path) -> Path:
    return env_dir / ("Scripts" if os.name == "nt" else "bin") / "python"


def prepare(with_memray: bool) -> Path:
    """The benchmark venv: this project, the peer and the third-party suites' packages."""
    env_dir = WORK / "venv"
    py = python_in(env_dir)
    if not py.exists():
        venv.create(env_dir, with_pip=True)
    sh([str(py), "-m", "pip", "install", "-q", "-e", str(ROOT)])
    # A wheel install compiles bytecode; an editable one leaves it to the first import, and the runs
    # below do not write it (PYTHONDONTWRITEBYTECODE): without this, every run would compile the plugin.
    sh([str(py), "-m", "compileall", "-q", str(ROOT / "pytest_leakhunt")])
    if with_memray:
        sh([str(py), "-m", "pip", "install", "-q", "pytest-memray"])
    downloads = WORK / "sdists"
    downloads.mkdir(parents=True, exist_ok=True)
    for name, version in SDISTS.items():
        target = WORK / f"{name}-{version}"
        if not target.exists():
            sh(
                [
                    str(py),
                    "-m",
                    "pip",
                    "download",
                    "-q",
                    "--no-deps",
                    "--no-binary",
                    ":all:",
                    "-d",
                    str(downloads),
                    f"{name}=={version}",
                ]
            )
            archive = next(downloads.glob(f"{name}-{version}.tar.gz"))
            with tarfile.open(archive) as tar:
                if sys.version_info >= (3, 12):
                    tar.extractall(WORK, filter="data")
                else:
                    tar.extractall(WORK)  # noqa: S202
        sh([str(py), "-m", "pip", "install", "-q", str(target), *TEST_DEPS.get(name, [])])
    (WORK / "plugins").mkdir(exist_ok=True)
    (WORK / "plugins" / "bench_memray_all.py").write_text(MEMRAY_ALL)
    (WORK / "plugins" / "bench_check_cost.py").write_text(CHECK_COST)
    return py


def synthetic(heap: int, count: int) -> Suite:
    directory = WORK / f"synthetic-{heap}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    (directory / "conftest.py").write_text(SYNTHETIC_CONFTEST)
    (directory / "test_synthetic.py").write_text(SYNTHETIC_TESTS.replace("{count}", str(count)))
    (directory / "pytest.ini").write_text("[pytest]\n")
    return Suite(f"synthetic, {heap:,} heap objects", directory, [], {"LEAKHUNT_BENCH_HEAP": str(heap)}, count)


def third_party(name: str) -> Suite:
    directory = WORK / f"{name}-{SDISTS[name]}"
    # the shared venv has pytest-asyncio for structlog; the other suites turn its deprecation warning into an error
    plugins = [] if name in TEST_DEPS else ["-p", "no:asyncio"]
    return Suite(f"{name} {SDISTS[name]}", directory, ["tests", *plugins])


def mode_args(mode: str) -> list[str]:
    return {
        "plain": ["-p", "no:leakhunt"],
        "detect": ["--detect-leaks"],
        "trace": ["--detect-leaks", "--leaks-trace"],
        "repeat2": ["--detect-leaks", "--leaks-repeat=2"],
        "memray": ["-p", "no:leakhunt", "--memray", "-p", "bench_memray_all"],
    }[mode]


def pytest_command(py: Path, suite: Suite, mode: str) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, **suite.env, "PYTHONPATH": str(WORK / "plugins"), "PYTHONDONTWRITEBYTECODE": "1"}
    return [
        str(py),
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        *suite.args,
        *mode_args(mode),
    ], env


def run_once(py: Path, suite: Suite, mode: str) -> tuple[Sample, str]:
    """Wall and CPU seconds, peak RSS, and the last line pytest printed."""
    cmd, env = pytest_command(py, suite, mode)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=suite.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()  # until the child exits and closes it
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)  # reap it ourselves to get its own peak RSS
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    sample = Sample(elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{suite.name} [{mode}] crashed with {proc.returncode}:\n{out[-3000:]}")
    last = next((line for line in reversed(out.splitlines()) if line.strip()), "")
    return sample, last


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float
    rss_kib: int


Results = dict[tuple[str, str], list[Sample]]


def measure(py: Path, suites: list[Suite], modes: list[str], repeats: int) -> Results:
    results: Results = {}
    for suite in suites:
        for mode in modes:  # one untimed run each: the first run of a suite warms the file cache for the rest
            run_once(py, suite, mode)
        for rep in range(repeats):
            # Interleaved, so that a noisy minute hits every mode alike; every other round in reverse order,
            # so that no mode always runs right after another (a run can slow down or speed up the next).
            for mode in modes if rep % 2 == 0 else modes[::-1]:
                sample, last = run_once(py, suite, mode)
                results.setdefault((suite.name, mode), []).append(sample)
                print(
                    f"  {suite.name:32} {mode:7} run {rep + 1}: {sample.wall:7.2f} s wall {sample.cpu:7.2f} s cpu "
                    f"{sample.rss_kib / 1024:7.1f} MiB  {last}",
                    flush=True,
                )
    return results


def check_cost(py: Path, suite: Suite) -> tuple[float, int]:
    """Seconds spent inside the check over one --detect-leaks run (untimed otherwise), and the checks made."""
    cmd, env = pytest_command(py, suite, "detect")
    out = WORK / "check-cost.txt"
    env["LEAKHUNT_BENCH_CHECK_COST"] = str(out)
    subprocess.run([*cmd, "-p", "bench_check_cost"], cwd=suite.cwd, env=env, capture_output=True, check=False)
    seconds, checks = out.read_text().split()
    return float(seconds), int(checks)


def check_cost_lines(py: Path, suites: list[Suite]) -> list[str]:
    lines = []
    for suite in suites:
        seconds, checks = check_cost(py, suite)
        lines.append(f"- {suite.name}: {seconds:.2f} s inside the check, {1e6 * seconds / checks:.0f} µs per test")
        print(lines[-1], flush=True)
    return lines


def instructions(py: Path, suite: Suite, mode: str) -> int:
    """Instructions the pytest process executes, counted by callgrind (about 50 times slower than a run).

    Unlike wall or CPU time they hardly move with the load of a shared host (about 1 % from run to run:
    some hashing follows addresses), so they show a change to the per-test cost that timings hide.
    """
    cmd, env = pytest_command(py, suite, mode)
    env["PYTHONHASHSEED"] = "0"
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd],
        cwd=suite.cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode not in (0, 1) or found is None:
        raise SystemExit(f"{suite.name} [{mode}] under callgrind failed with {proc.returncode}:\n{proc.stderr[-3000:]}")
    return int(found.group(1))


def instruction_table(py: Path, suites: list[Suite]) -> str:
    lines = [
        "| suite | plain (instructions) | detect (instructions) | detect/plain | per test |",
        "| --- | --- | --- | --- | --- |",
    ]
    for suite in suites:
        plain, detect = instructions(py, suite, "plain"), instructions(py, suite, "detect")
        per_test = f"{(detect - plain) / suite.tests / 1000:.0f} k" if suite.tests else ""
        lines.append(
            f"| {suite.name} | {plain / 1e9:.2f} G | {detect / 1e9:.2f} G | {detect / plain:.3f}x | {per_test} |"
        )
        print(lines[-1], flush=True)
    return "\n".join(lines)


def ratio(results: Results, suite: Suite, mode: str, metric: str) -> float:
    """Median over rounds of mode/plain within the same round: drift between rounds cancels out."""
    pairs = zip(results[(suite.name, mode)], results[(suite.name, "plain")])
    return statistics.median(getattr(m, metric) / getattr(p, metric) for m, p in pairs)


def table(suites: list[Suite], modes: list[str], results: Results) -> str:
    others = [m for m in modes if m != "plain"]
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, CPython {platform.python_version()}; "
        f"wall-time ratio to plain pytest in the same round, median over {len(results[(suites[0].name, 'plain')])} "
        "interleaved rounds; CPU ratio (user+sys of the pytest process) alongside, less sensitive to a noisy host.",
        "",
        "| suite | plain | "
        + " | ".join(others)
        + (" | detect (CPU) | peak RSS detect/plain |" if "detect" in modes else " |"),
        "| --- | --- | " + " | ".join("---" for _ in others) + (" | --- | --- |" if "detect" in modes else " |"),
    ]
    for suite in suites:
        plain = statistics.median(s.wall for s in results[(suite.name, "plain")])
        cells = [f"{plain:.2f} s", *(f"{ratio(results, suite, mode, 'wall'):.2f}x" for mode in others)]
        if "detect" in modes:
            cells.append(f"{ratio(results, suite, 'detect', 'cpu'):.2f}x")
            cells.append(f"{ratio(results, suite, 'detect', 'rss_kib'):.2f}x")
        lines.append(f"| {suite.name} | " + " | ".join(cells) + " |")
    if "detect" in modes:
        # the spread behind each median: on a shared host one round can be 10 % off either way
        lines.append("")
        for suite in suites:
            rounds = zip(results[(suite.name, "detect")], results[(suite.name, "plain")])
            each = ", ".join(f"{d.wall / p.wall:.2f}" for d, p in rounds)
            lines.append(f"- {suite.name}: detect/plain wall time per round {each}")
    synthetic_suites = [s for s in suites if s.tests]
    if "detect" in modes and synthetic_suites:
        lines.append("")
        for suite in synthetic_suites:
            plain = statistics.median(s.cpu for s in results[(suite.name, "plain")])
            detect = statistics.median(s.cpu for s in results[(suite.name, "detect")])
            lines.append(
                f"- {suite.name}: --detect-leaks adds {1e6 * (detect - plain) / suite.tests:.0f} µs of CPU per test"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--suites", default="synthetic,click,boltons,structlog")
    parser.add_argument(
        "--modes", default=",".join(MODES), help=f"comma-separated, among {', '.join(MODES + EXTRA_MODES)}"
    )
    parser.add_argument("--heap", type=int, default=1_000_000)
    parser.add_argument("--small-heap", type=int, default=10_000)
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count the instructions of one plain and one detect run of each suite under valgrind's callgrind",
    )
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    wanted = [s for s in args.suites.split(",") if s]
    WORK.mkdir(parents=True, exist_ok=True)
    py = prepare(with_memray="memray" in modes)
    suites: list[Suite] = []
    if "synthetic" in wanted:
        suites += [synthetic(args.small_heap, args.tests), synthetic(args.heap, args.tests)]
    suites += [third_party(name) for name in SDISTS if name in wanted]
    results = measure(py, suites, modes, args.repeats) if args.repeats else {}
    text = table(suites, modes, results) if results else ""
    if "detect" in modes:
        # one more run of each suite, untimed, to read the check's own time (second runs included)
        text += "\n\nTime inside the check (its window's open and close), one run each:\n" + "\n".join(
            check_cost_lines(py, suites)
        )
    if args.instructions:
        if shutil.which("valgrind") is None:
            raise SystemExit("--instructions needs valgrind (Debian: apt install valgrind)")
        text = (text + "\n\n" if text else "") + instruction_table(py, suites)
    (WORK / "results.md").write_text(text + "\n")
    print()
    print(text)


if __name__ == "__main__":
    main()
