"""The HTML report and its retainer graphs, checked as text and in a real headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from pytest_leakhunt import graph
from pytest_leakhunt.model import Leak

LEAKY = """
    import functools
    class Order:
        pass
    class Service:
        history = []
    @functools.lru_cache(maxsize=None)
    def quote(n):
        return Order()
    def test_history_leaks():
        Service.history.append(Order())
    def test_cache_leaks():
        quote(object())
    def test_clean():
        Order()
"""

ORDER = Leak(
    type="shop.Order", count=1, shallow_bytes=56, retained_bytes=120, retained_by=("shop", "Service", "history", "[0]")
)


def test_dot_draws_the_chain_from_module_to_type() -> None:
    dot = graph.to_dot(ORDER)
    assert dot.startswith("digraph retainers {")
    assert [line.split("label=")[1].split(",")[0].rstrip("];") for line in dot.splitlines() if "label=" in line] == [
        '"shop"',
        '"Service"',
        '"history"',
        '"[0]"',
        '"shop.Order x1"',
    ]
    assert "n3 -> n4;" in dot


def test_without_graphviz_the_page_says_so_in_one_line(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(graph.shutil, "which", lambda name: None)
    assert graph.to_svg(ORDER) is None
    pytester.makepyfile(test_shop=LEAKY)
    pytester.runpytest("--detect-leaks", "--leaks-html=report.html")
    page = (pytester.path / "report.html").read_text()
    assert page.count(graph.NO_GRAPHVIZ.replace("'", "&#x27;")) == 1
    assert "<svg" in page  # the memory curve is drawn without graphviz


def test_html_report_is_self_contained_and_lists_every_leak(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_shop=LEAKY)
    result = pytester.runpytest_subprocess("--detect-leaks", "--leaks-html=report.html")
    assert result.parseoutcomes() == {"passed": 3, "leaked": 2}
    page = (pytester.path / "report.html").read_text()
    assert "test_shop.py::test_history_leaks" in page and "test_shop.py::test_cache_leaks" in page
    assert "test_shop.py::test_clean" not in page.split('id="leaks"')[1]
    assert "hint: an unbounded functools.lru_cache" in page
    assert 'class="memory"' in page and "<polyline" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "the page must not load anything"
    if shutil.which("dot"):
        assert page.count('<div class="graph">') == 2


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_html_report_in_headless_chromium(pytester: pytest.Pytester) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("needs Chromium (Debian: apt install chromium; .ci/run installs it)")
    pytester.makepyfile(test_shop=LEAKY)
    pytester.runpytest_subprocess("--detect-leaks", "--leaks-html=report.html")
    page = (pytester.path / "report.html").resolve()
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    dom = subprocess.run([*args, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert "<h1>pytest-leakhunt report</h1>" in dom
    assert re.search(r"<b>2</b>\s*tests leaking", dom)
    assert "test_shop.Order x1 held by test_shop.Service.history[0]" in dom
    shot = pytester.path / "shot.png"
    subprocess.run(
        [*args, f"--screenshot={shot}", "--window-size=1200,900", page.as_uri()], capture_output=True, timeout=120
    )
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000
