"""README's sample output and JSON come from running examples/: regenerated here, compared line by line.

Timings, byte sizes and addresses are masked (they differ between CPython versions and runs); a line README
shows must appear in the real output, in the same order, and ``...`` stands for lines README leaves out.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
#: What varies between runs and versions: durations, sizes, addresses, and how many tests retained something once
#: (the runtime's first-use caches differ between CPython versions).
_VARIES = re.compile(r"\d+(\.\d+)?s\b|\d+(\.\d+)? (B|KiB|MiB)\b|0x[0-9a-f]+")


def _block(after: str, fence: str) -> str:
    """The fenced block that follows the line containing *after*."""
    start = README.index(after)
    begin = README.index(f"```{fence}\n", start) + len(fence) + 4
    return README[begin : README.index("```", begin)]


def _pattern(line: str) -> str:
    escaped = _VARIES.sub("*", re.sub(r"([\[\]*?])", r"[\1]", line))
    # the session line may go on with "; N retained something once", which differs between CPython versions
    return escaped + "*" if line.startswith("leakhunt: ") and " checked, " in line else escaped


@pytest.fixture
def examples(pytester: pytest.Pytester) -> pytest.Pytester:
    shutil.copytree(ROOT / "examples", pytester.path, dirs_exist_ok=True)
    return pytester


def _run(examples: pytest.Pytester, *args: str) -> pytest.RunResult:
    return examples.runpytest_subprocess(
        "--detect-leaks",
        "-p",
        "no:randomly",
        "-p",
        "no:asyncio",
        "-p",
        "no:rerunfailures",
        "-p",
        "no:cacheprovider",
        *args,
    )


def test_readme_terminal_output_is_what_the_examples_print(examples: pytest.Pytester) -> None:
    shown = [line for line in _block("This is what it prints for `examples/`", "").splitlines() if line.strip()]
    result = _run(examples)
    patterns = [_pattern(line) for line in shown if line.strip() != "..."]
    assert len(patterns) > 20
    result.stdout.fnmatch_lines(patterns, consecutive=False)


def test_readme_json_report_is_what_the_examples_write(examples: pytest.Pytester) -> None:
    text = _block("`--leaks-report=leaks.json` writes", "json").replace("[...]", "[]")
    shown = json.loads(text)
    _run(examples, "--leaks-trace", "--leaks-report=leaks.json")
    real = json.loads((examples.path / "leaks.json").read_text())
    assert set(shown) <= set(real)
    sized = ("bytes_retained", "retained_bytes", "shallow_bytes", "tests_retaining_once")
    assert {k: v for k, v in shown["summary"].items() if k not in sized} == {
        k: v for k, v in real["summary"].items() if k not in sized
    }
    (test,) = shown["tests"]
    (same,) = [t for t in real["tests"] if t["nodeid"] == test["nodeid"]]
    for leak, real_leak in zip(test["leaks"], same["leaks"], strict=True):
        assert {k: v for k, v in leak.items() if k not in sized} == {
            k: v for k, v in real_leak.items() if k not in sized
        }
