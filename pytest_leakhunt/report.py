"""Pure rendering of findings: text for the terminal, JSON for machines.

Never touches live objects; everything comes in as ``model`` data.
"""

from __future__ import annotations

import json
import platform
from typing import Any

from pytest_leakhunt.artifacts import write_text
from pytest_leakhunt.model import RESOURCE_KINDS, UNTRACKED, Leak, RunTotals, TestLeaks

SCHEMA_VERSION = 1


def human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


#: how a resource left behind is named, and the state it was left in
_RESOURCES = {
    "thread": ("thread", "running"),
    "task": ("asyncio task", "pending"),
    "process": ("child process", "running"),
    "fd": ("file descriptor", "open"),
}


def describe_resource(leak: Leak) -> str:
    """``thread 'beat' still running after teardown (threading.Thread, target shop.audit.beat)``"""
    noun, state = _RESOURCES[leak.kind]
    details = ", ".join(leak.details if leak.kind == "fd" else (leak.type, *leak.details))
    # a thread or task has a name people chose; a pid or descriptor number is just a number
    name = leak.name if leak.kind in ("fd", "process") else repr(leak.name)
    return f"{noun} {name} still {state} after teardown ({details})"


def describe_growth(leak: Leak) -> str:
    """``grows on every run: +1 shop.orders.Order, +120 B per run (3 runs after the real one)``"""
    parts = [*leak.details, *([f"+{human_bytes(leak.retained_bytes)}"] if leak.retained_bytes else [])]
    return f"grows on every run: {', '.join(parts)} per run ({leak.runs} runs after the real one)"


def leak_lines(leak: Leak, number: int) -> list[str]:
    lines = _leak_lines(leak, number)
    if leak.hint:
        lines.append(f"   hint: {leak.hint}")
    return lines


def describe(leak: Leak) -> str:
    """One line for a leak of any kind (summaries, baseline files)."""
    if leak.kind in RESOURCE_KINDS:
        return describe_resource(leak)
    if leak.kind == "growth":
        return describe_growth(leak)
    return f"{leak.type} x{leak.count} held by {leak.path}"


def _leak_lines(leak: Leak, number: int) -> list[str]:
    if leak.kind in RESOURCE_KINDS:
        return [f"{number}) {describe_resource(leak)}"]
    if leak.kind == "growth":
        lines = [f"{number}) {describe_growth(leak)}"]
        if leak.holder:
            lines.append(f"   held by: {leak.holder}")
        return lines + ([f"   allocated at: {leak.allocated_at}"] if leak.allocated_at else [])
    if leak.type == UNTRACKED:
        return [
            f"{number}) +{_plural(leak.count, 'value')} the collector does not track (str, bytes, numbers...)",
            f"   held by: {leak.path} (a module-level container that got longer)",
        ]
    label = f"tracked {leak.name!r}: " if leak.kind == "tracked" and leak.name else ""
    lines = [
        f"{number}) {label}{leak.type} x{leak.count}"
        f"  (shallow {human_bytes(leak.shallow_bytes)}, retained {human_bytes(leak.retained_bytes)})",
        f"   held by: {leak.path} -> "
        + (f"{leak.root_type} -> ... -> {leak.type}" if leak.root_type and leak.root_type != leak.type else leak.type),
    ]
    if leak.allocated_at:
        lines.append(f"   allocated at: {leak.allocated_at}")
    return lines


def render_test(result: TestLeaks, traced: bool) -> str:
    """The failure text of one leaking test."""
    lines: list[str] = []
    if result.error:
        lines.append(f"leakhunt could not check this test: {result.error}")
    if result.leaks:
        parts = []
        if result.objects:
            parts.append(
                f"{_plural(result.objects, 'object')} still alive after teardown, "
                f"{human_bytes(result.retained_bytes)} retained"
            )
        if result.resources:
            parts.append(f"{_plural(result.resources, 'resource')} left running or open")
        if any(leak.kind == "growth" for leak in result.leaks):
            parts.append("memory grows on every run")
        lines.append("leakhunt: " + "; ".join(parts))
        for number, leak in enumerate(result.leaks, 1):
            lines.extend(leak_lines(leak, number))
        if result.more_groups:
            lines.append(f"... and {_plural(result.more_groups, 'more leak group')} not explained")
        if not traced and any(leak.kind == "object" for leak in result.leaks):
            lines.append("(run with --leaks-trace to see where each leaked object was allocated)")
    return "\n".join(lines)


def describe_retained(nodeid: str, leak: Leak) -> str:
    """One summary line for what a test retained without failing: once, or more of an earlier test's leak."""
    if leak.retention == "earlier" and leak.attributed_to:
        return f"grows the leak of {leak.attributed_to}: {nodeid}: {describe(leak)}"
    return f"retained once {nodeid}: {describe(leak)}"


def render_summary(totals: RunTotals) -> list[str]:
    """Lines of the end-of-session section."""
    lines: list[str] = []
    for result in totals.leaking:
        if result.leaks:
            first = result.leaks[0]
            more = f" (+{_plural(len(result.leaks) - 1, 'more group')})" if len(result.leaks) > 1 else ""
            lines.append(f"LEAKED {result.nodeid}: {describe(first)}{more}")
        else:
            lines.append(f"ERROR {result.nodeid}: leakhunt could not check it: {result.error}")
    for nodeid, leak in totals.retained:
        lines.append(describe_retained(nodeid, leak))
    for nodeid, reason in totals.allowed.items():
        lines.append(f"allowed {nodeid}: {reason}")
    growth = totals.most_growth()
    if growth:
        lines.append(
            "leakhunt: memory grew most after: "
            + ", ".join(f"{nodeid} (+{human_bytes(size)})" for nodeid, size in growth)
        )
    summary = totals.summary()
    lines.append(
        f"leakhunt: {_plural(summary['tests_checked'], 'test')} checked, "
        f"{summary['tests_leaking']} leaking, {_plural(summary['objects_leaked'], 'object')} leaked, "
        f"{human_bytes(summary['bytes_retained'])} retained"
        + (
            f"; {summary['tests_retaining_once']} retained something once (not failed)"
            if summary["tests_retaining_once"]
            else ""
        )
    )
    return lines


def to_json(totals: RunTotals, pytest_version: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "version": SCHEMA_VERSION,
        "python": platform.python_version(),
        "pytest": pytest_version,
        "summary": totals.summary(),
        "tests": [result.to_json() for result in totals.leaking],
        "retained_once": [{"nodeid": nodeid, **leak.to_json()} for nodeid, leak in totals.retained],
    }
    if totals.memory:  # in the order the tests ran (per xdist worker)
        data["memory"] = [
            {"nodeid": nodeid, "rss_bytes": rss, "growth_bytes": growth}
            for nodeid, (rss, growth) in totals.memory.items()
        ]
    return data


def write_json(path: str, totals: RunTotals, pytest_version: str) -> None:
    """The JSON report, replacing *path* whole (``artifacts.write_text``); raises OSError."""
    write_text(path, json.dumps(to_json(totals, pytest_version), indent=2) + "\n")
