"""Heap snapshots in the V8 format: the whole heap, each leaking test's, and the comparison command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_leakhunt
from pytest_leakhunt import heapsnapshot

ROOT = Path(__file__).resolve().parent.parent
#: where .ci/run installs @memlab/heap-analysis (PUPPETEER_SKIP_DOWNLOAD=1 npm install --prefix .ci/memlab ...)
MEMLAB = Path(os.environ.get("LEAKHUNT_MEMLAB_DIR", ROOT / ".ci" / "memlab")) / "node_modules"


class Kept:
    pass


HOLDER = {"kept": [Kept()]}


def _check_format(data: dict) -> None:
    meta = data["snapshot"]["meta"]
    width, edge_width = len(meta["node_fields"]), len(meta["edge_fields"])
    assert len(data["nodes"]) == data["snapshot"]["node_count"] * width
    assert len(data["edges"]) == data["snapshot"]["edge_count"] * edge_width
    assert sum(data["nodes"][4::width]) == data["snapshot"]["edge_count"]  # edge counts add up
    assert all(to % width == 0 and to < len(data["nodes"]) for to in data["edges"][2::edge_width])
    assert all(0 <= name < len(data["strings"]) for name in data["nodes"][1::width])


def test_whole_heap_snapshot_defaults_to_a_timestamped_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = pytest_leakhunt.write_heap_snapshot()
    assert Path(path).parent.resolve() == tmp_path.resolve()
    assert path.startswith("Heap-") and path.endswith(".heapsnapshot")
    data = json.loads(Path(path).read_text())
    _check_format(data)
    assert f"{__name__}.Kept" in data["strings"]


def test_snapshot_path_gets_missing_directories(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "heap.heapsnapshot"
    assert heapsnapshot.write_heap_snapshot(str(target)) == str(target)
    assert target.exists()


def test_compare_lists_the_types_that_grew(tmp_path: Path) -> None:
    before = heapsnapshot.write_heap_snapshot(str(tmp_path / "before.heapsnapshot"))
    HOLDER["more"] = [Kept() for _ in range(500)]
    try:
        after = heapsnapshot.write_heap_snapshot(str(tmp_path / "after.heapsnapshot"))
    finally:
        del HOLDER["more"]
    rows = heapsnapshot.compare(before, after)
    assert (f"{__name__}.Kept", 500) in [(name, count) for name, count, _ in rows]
    out = subprocess.run(
        [sys.executable, "-m", "pytest_leakhunt", "compare", before, after, "--top", "5"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"{__name__}.Kept" in out and "+500" in out


LEAKY = """
    class Order:
        def __init__(self):
            self.lines = [1, 2]
    class Service:
        history = []
    def test_leaks():
        Service.history.append(Order())
    def test_clean():
        Order()
"""


def test_snapshot_dir_gets_one_file_per_leaking_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_shop=LEAKY)
    result = pytester.runpytest_subprocess("--detect-leaks", "--leaks-snapshot-dir=snaps")
    assert result.parseoutcomes() == {"passed": 2, "leaked": 1}
    (snap,) = (pytester.path / "snaps").iterdir()
    assert snap.name == "test_shop.py_test_leaks.heapsnapshot"
    data = json.loads(snap.read_text())
    _check_format(data)
    assert {"test_shop.Order", "module test_shop", "history"} <= set(data["strings"])


def test_memlab_reads_the_snapshot_and_finds_the_leak_with_its_retainers(pytester: pytest.Pytester) -> None:
    node = shutil.which("node")
    if node is None or not (MEMLAB / "@memlab" / "heap-analysis").is_dir():
        pytest.skip(f"needs node and @memlab/heap-analysis in {MEMLAB} (.ci/run installs them)")
    pytester.makepyfile(test_shop=LEAKY)
    pytester.runpytest_subprocess("--detect-leaks", "--leaks-snapshot-dir=snaps")
    (snap,) = (pytester.path / "snaps").iterdir()
    out = subprocess.run(
        [node, str(ROOT / "tests" / "memlab_check.js"), str(snap), "test_shop.Order"],
        capture_output=True,
        text=True,
        env={**os.environ, "NODE_PATH": str(MEMLAB)},
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PATH test_shop.Order <- list[0] <- dict[history] <- class test_shop.Service[dict]" in out.stdout
    assert "module test_shop" in out.stdout and "(Python roots)" in out.stdout
