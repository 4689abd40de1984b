"""The HTML report: one self-contained page (no network) of every leaking test.

Pure rendering of plain data (``RunTotals``), like ``report``: leak traces,
sizes, allocation sites, fix hints, a retainer graph per leak group (graphviz,
when installed) and the session's memory curve as an inline SVG plot.
"""

from __future__ import annotations

import html
import platform
from typing import Any

from pytest_leakhunt import artifacts, graph
from pytest_leakhunt.model import Leak, RunTotals, TestLeaks
from pytest_leakhunt.report import describe, human_bytes

_STYLE = """
body { font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 70em;
       color: #1d1d1f; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 2em; }
.meta { color: #666; } .summary { display: flex; gap: 1em; margin: 1em 0; }
.card { background: #f5f5f7; border-radius: 8px; padding: .6em 1em; } .card b { display: block; font-size: 1.4em; }
section.test { border: 1px solid #ddd; border-left: 4px solid #d93025; border-radius: 6px; margin: 1em 0;
               padding: .2em 1em 1em; }
section.test h3 { font-family: ui-monospace, Menlo, monospace; font-size: 1em; word-break: break-all; }
.leak { margin: .8em 0; } .what { font-weight: 600; } code { font-family: ui-monospace, Menlo, monospace; }
.path { font-family: ui-monospace, Menlo, monospace; background: #f5f5f7; padding: .1em .3em; border-radius: 4px; }
.hint { color: #0b57d0; } .note { color: #888; font-style: italic; } .graph svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; } td { padding: .1em .8em .1em 0; }
"""


def render(totals: RunTotals, pytest_version: str, title: str = "pytest-leakhunt report") -> str:
    """The whole page."""
    summary = totals.summary()
    leaking = totals.leaking
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">Python {_e(platform.python_version())}, pytest {_e(pytest_version)}</p>',
        '<div class="summary">',
        _card("tests checked", str(summary["tests_checked"])),
        _card("tests leaking", str(summary["tests_leaking"])),
        _card("objects leaked", str(summary["objects_leaked"])),
        _card("retained", human_bytes(summary["bytes_retained"])),
        "</div>",
    ]
    if totals.memory:
        parts.append(_memory_section(totals))
    parts.append(f'<h2 id="leaks">Leaking tests ({len(leaking)})</h2>')
    if not leaking:
        parts.append("<p>No test leaked.</p>")
    graphs_missing = False
    for result in leaking:
        section, missing = _test_section(result)
        graphs_missing = graphs_missing or missing
        parts.append(section)
    if graphs_missing:
        parts.append(f'<p class="note">{_e(graph.NO_GRAPHVIZ)}</p>')
    if totals.allowed:
        parts.append("<h2>Allowed</h2><table>")
        parts.extend(f"<tr><td><code>{_e(n)}</code></td><td>{_e(r)}</td></tr>" for n, r in totals.allowed.items())
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write(path: str, totals: RunTotals, pytest_version: str) -> None:
    """The page, replacing *path* whole (``artifacts.write_text``); raises OSError."""
    artifacts.write_text(path, render(totals, pytest_version))


def _card(label: str, value: str) -> str:
    return f'<div class="card"><b>{_e(value)}</b>{_e(label)}</div>'


def _test_section(result: TestLeaks) -> tuple[str, bool]:
    out = [f'<section class="test"><h3>{_e(result.nodeid)}</h3>']
    if result.error:
        out.append(f"<p>leakhunt could not check this test: {_e(result.error)}</p>")
    missing = False
    for number, leak in enumerate(result.leaks, 1):
        block, no_graph = _leak_block(leak, number)
        missing = missing or no_graph
        out.append(block)
    out.append("</section>")
    return "\n".join(out), missing


def _leak_block(leak: Leak, number: int) -> tuple[str, bool]:
    out = [f'<div class="leak"><div class="what">{number}) {_e(describe(leak))}</div>']
    if leak.kind in ("object", "tracked"):
        out.append(
            f"<div>shallow {_e(human_bytes(leak.shallow_bytes))}, retained {_e(human_bytes(leak.retained_bytes))}"
            f' &middot; held by <span class="path">{_e(leak.path)}</span></div>'
        )
    if leak.holder:
        out.append(f'<div>held by <span class="path">{_e(leak.holder)}</span></div>')
    if leak.allocated_at:
        out.append(f"<div>allocated at <code>{_e(leak.allocated_at)}</code></div>")
    if leak.hint:
        out.append(f'<div class="hint">hint: {_e(leak.hint)}</div>')
    missing = False
    if leak.kind in ("object", "tracked") and leak.retained_by:
        svg = graph.to_svg(leak)
        if svg is None:
            missing = True
        else:
            out.append(f'<div class="graph">{svg}</div>')
    out.append("</div>")
    return "\n".join(out), missing


def _memory_section(totals: RunTotals) -> str:
    """The process's memory after each test, as a line; the biggest steps named below it."""
    points = [rss for rss, _ in totals.memory.values()]
    width, height, pad = 900, 220, 40
    low, high = min(points), max(points)
    span = max(high - low, 1)
    step = (width - 2 * pad) / max(len(points) - 1, 1)
    coords = " ".join(
        f"{pad + i * step:.1f},{height - pad - (rss - low) / span * (height - 2 * pad):.1f}"
        for i, rss in enumerate(points)
    )
    svg = (
        f'<svg class="memory" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="memory after each test">'
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fafafa"/>'
        f'<polyline fill="none" stroke="#0b57d0" stroke-width="2" points="{coords}"/>'
        f'<text x="{pad}" y="{pad - 12}" font-size="12">{_e(human_bytes(high))}</text>'
        f'<text x="{pad}" y="{height - pad + 18}" font-size="12">{_e(human_bytes(low))}</text>'
        f'<text x="{width - pad}" y="{height - pad + 18}" font-size="12" text-anchor="end">{len(points)} tests</text>'
        "</svg>"
    )
    growth = "".join(
        f"<tr><td><code>{_e(n)}</code></td><td>+{_e(human_bytes(size))}</td></tr>" for n, size in totals.most_growth()
    )
    return (
        '<h2 id="memory">Memory after each test</h2>'
        + svg
        + (f"<p>Memory grew most after:</p><table>{growth}</table>" if growth else "")
    )


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)
