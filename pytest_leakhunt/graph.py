"""Retainer graph pictures: a leak's chain from its module to the leaked type, drawn by graphviz.

Built from the plain data of a ``Leak`` (its retainer path segments), never
from live objects, so a picture can be drawn long after the test ended.
Graphviz's ``dot`` comes from the operating system; without it there is no
picture and one line says why.
"""

from __future__ import annotations

import shutil
import subprocess

from pytest_leakhunt.model import Leak

#: Shown instead of a picture when graphviz is missing.
NO_GRAPHVIZ = "no retainer graph: graphviz's `dot` is not installed (Debian: apt install graphviz)"


def to_dot(leak: Leak) -> str:
    """The chain ``module -> attr -> [index] -> Type`` as a left-to-right graphviz digraph."""
    segments = list(leak.retained_by) or ["<unknown>"]
    # the chain may end at a container or bound method that retains the leaked object further down
    between = [leak.root_type, "..."] if leak.root_type and leak.root_type != leak.type else []
    labels = [*segments, *between, f"{leak.type} x{leak.count}"]
    lines = [
        "digraph retainers {",
        '  rankdir=LR; node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    for position, label in enumerate(labels):
        extra = ', fillcolor="#fde2e1", penwidth=2' if position == len(labels) - 1 else ""
        extra = ', fillcolor="#e3f4e1"' if position == 0 else extra
        lines.append(f"  n{position} [label={_quote(label)}{extra}];")
    for position in range(len(labels) - 1):
        lines.append(f"  n{position} -> n{position + 1};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_svg(leak: Leak) -> str | None:
    """The picture as SVG text, or None when graphviz is missing or fails."""
    dot = shutil.which("dot")
    if dot is None:
        return None
    try:
        done = subprocess.run(
            [dot, "-Tsvg"], input=to_dot(leak), capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    svg = done.stdout
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else None


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
