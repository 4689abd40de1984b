"""Settings resolved once: CLI > ini > default; markers override per test.

Every validation error names where the bad value came from, so a user knows
whether to fix the command line, the ini file or a marker.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from pytest_leakhunt import artifacts
from pytest_leakhunt.naming import type_name
from pytest_leakhunt.resources import DEFAULT_KINDS, KINDS

#: (option name, ini name, help). One help string serves both twins.
OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("--detect-leaks", "detect_leaks", "check every test for objects it leaves alive in program state."),
    ("--leaks-trace", "leaks_trace", "record where leaked objects were allocated (starts tracemalloc; slower)."),
    ("--leaks-trace-depth", "leaks_trace_depth", "frames tracemalloc keeps per allocation with --leaks-trace (default: 1; each frame costs)."),
    ("--leaks-report", "leaks_report", "write the leak report as JSON to this path."),
    ("--leaks-ignore-types", "leaks_ignore_types", "comma-separated qualified type names never reported as leaks."),
    (
        "--leaks-resources",
        "leaks_resources",
        "what a checked test must not leave running, comma-separated: threads, tasks, processes, fds; "
        "or all, or none (default: threads,tasks,processes).",
    ),
    (
        "--leaks-baseline",
        "leaks_baseline",
        "JSON file of known leaks (fingerprints): leaks listed there do not fail their tests.",
    ),
    (
        "--leaks-baseline-update",
        "leaks_baseline_update",
        "write today's leaks into the --leaks-baseline file instead of failing on them.",
    ),
    ("--leaks-html", "leaks_html", "write a self-contained HTML report of every leaking test to this path."),
    (
        "--leaks-snapshot-dir",
        "leaks_snapshot_dir",
        "write a .heapsnapshot (Chrome DevTools / memlab) of each leaking test's leaked objects and retainers here.",
    ),
    (
        "--leaks-strict",
        "leaks_strict",
        "fail a test for anything it leaves alive, also what is retained once and does not grow.",
    ),
    (
        "--leaks-repeat",
        "leaks_repeat",
        "run each checked test this many extra times (after one warm-up) and report what grows on every run "
        "(default: 0, off).",
    ),
)

DEFAULT_TRACE_DEPTH = 1
_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}


@dataclass(frozen=True)
class Settings:
    detect_leaks: bool = False
    trace: bool = False
    trace_depth: int = DEFAULT_TRACE_DEPTH
    report_path: str | None = None
    ignore_types: frozenset[str] = frozenset()
    resources: frozenset[str] = DEFAULT_KINDS
    repeat: int = 0
    baseline_path: str | None = None
    baseline_update: bool = False
    snapshot_dir: str | None = None
    html_path: str | None = None
    strict: bool = False


@dataclass(frozen=True)
class TestPolicy:
    """How one test is checked, after its markers are applied."""

    __test__ = False

    check: bool
    ignore_types: frozenset[str] = frozenset()
    allowed_reason: str | None = None
    resources: frozenset[str] = DEFAULT_KINDS
    #: extra runs after a warm-up, to see what grows on every run (0: off)
    repeat: int = 0


def _where_ini(config: pytest.Config, name: str) -> str:
    inipath = getattr(config, "inipath", None)
    return f"ini option {name!r} in {inipath}" if inipath else f"ini option {name!r}"


def _parse_bool(value: str, where: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise pytest.UsageError(f"{where}: expected true or false, got {value!r}")


def _parse_depth(value: Any, where: str) -> int:
    try:
        depth = int(str(value).strip())
    except ValueError:
        raise pytest.UsageError(f"{where}: expected a whole number of frames, got {value!r}") from None
    if not 1 <= depth <= 100:
        raise pytest.UsageError(f"{where}: frames must be between 1 and 100, got {depth}")
    return depth


def _parse_types(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in value.replace("\n", ",").split(",") if part.strip())


MAX_REPEAT = 1000


def _parse_repeat(value: Any, where: str) -> int:
    try:
        repeat = int(str(value).strip())
    except ValueError:
        raise pytest.UsageError(f"{where}: expected a whole number of runs, got {value!r}") from None
    if not 0 <= repeat <= MAX_REPEAT:
        raise pytest.UsageError(f"{where}: runs must be between 0 and {MAX_REPEAT}, got {repeat}")
    return repeat


def _parse_resources(value: Any, where: str) -> frozenset[str]:
    names = _parse_types(str(value).lower())
    if names == {"all"}:
        return frozenset(KINDS)
    if names == {"none"}:
        return frozenset()
    unknown = sorted(names - set(KINDS))
    if unknown or not names:
        raise pytest.UsageError(
            f"{where}: unknown resource kind {', '.join(map(repr, unknown)) or repr(str(value))}; "
            f"expected a comma-separated list of {', '.join(KINDS)}, or all, or none"
        )
    return frozenset(names)


def _given(config: pytest.Config, option: str, ini: str) -> tuple[Any, str] | None:
    """The value set for *option* and where it was set (the command line wins over the ini file), or None."""
    cli_value = config.getoption(ini)  # each option's dest is its ini twin's name
    if cli_value is not None:
        return cli_value, f"command line option {option}"
    ini_value = config.getini(ini)
    if ini_value not in (None, "", []):
        return ini_value, _where_ini(config, ini)
    return None


def source(config: pytest.Config, option: str) -> str:
    """Where *option*'s value came from, for errors found after ``resolve`` (a baseline file's contents)."""
    ini = next(ini for name, ini, _ in OPTIONS if name == option)
    given = _given(config, option, ini)
    return given[1] if given is not None else f"command line option {option}"


def _as_bool(value: Any, where: str) -> bool:
    return value if isinstance(value, bool) else _parse_bool(str(value), where)


def _outputs(config: pytest.Config, updating: bool) -> dict[str, str | None]:
    """The paths the run reads or writes, each checked, and no two of them the same file.

    The baseline comes first, so that a report given its path is the option blamed.
    """
    # read only, without --leaks-baseline-update: baseline.Baseline.load says what is wrong with it
    baseline_check = artifacts.check_file if updating else artifacts.check_named
    checks: list[tuple[str, str, str, Callable[[Any, str], str]]] = [
        ("baseline", "--leaks-baseline", "leaks_baseline", baseline_check),
        ("report", "--leaks-report", "leaks_report", artifacts.check_file),
        ("html", "--leaks-html", "leaks_html", artifacts.check_file),
        ("snapshot_dir", "--leaks-snapshot-dir", "leaks_snapshot_dir", artifacts.check_directory),
    ]
    paths: dict[str, str | None] = {}
    named: list[tuple[str, str]] = []
    for key, option, ini, check in checks:
        given = _given(config, option, ini)
        paths[key] = path = None if given is None else check(*given)
        if path is not None and given is not None:
            named.append((path, given[1]))
    artifacts.check_distinct(named)
    return paths


def resolve(config: pytest.Config) -> Settings:
    """Read CLI and ini once into a frozen Settings; raise UsageError naming the source."""

    def pick(option: str, ini: str, parse: Callable[[Any, str], Any], default: Any) -> Any:
        given = _given(config, option, ini)
        return default if given is None else parse(*given)

    update = _given(config, "--leaks-baseline-update", "leaks_baseline_update")
    updating = update is not None and _as_bool(*update)
    paths = _outputs(config, updating)
    if update is not None and updating and paths["baseline"] is None:
        raise pytest.UsageError(f"{update[1]}: needs --leaks-baseline=FILE (or leaks_baseline in the ini file) to write to")
    return Settings(
        detect_leaks=pick("--detect-leaks", "detect_leaks", _as_bool, False),
        trace=pick("--leaks-trace", "leaks_trace", _as_bool, False),
        trace_depth=pick("--leaks-trace-depth", "leaks_trace_depth", _parse_depth, DEFAULT_TRACE_DEPTH),
        report_path=paths["report"],
        ignore_types=pick("--leaks-ignore-types", "leaks_ignore_types", lambda v, w: _parse_types(str(v)), frozenset()),
        resources=pick("--leaks-resources", "leaks_resources", _parse_resources, DEFAULT_KINDS),
        repeat=pick("--leaks-repeat", "leaks_repeat", _parse_repeat, 0),
        baseline_path=paths["baseline"],
        baseline_update=updating,
        snapshot_dir=paths["snapshot_dir"],
        html_path=paths["html"],
        strict=pick("--leaks-strict", "leaks_strict", _as_bool, False),
    )


def no_leaks(*, ignore_types: Any = (), repeat: int | None = None) -> tuple[frozenset[str], int | None]:
    if repeat is not None and (type(repeat) is not int or not 0 <= repeat <= MAX_REPEAT):
        raise TypeError(f"repeat must be a whole number of runs between 0 and {MAX_REPEAT}, got {repeat!r}")
    if isinstance(ignore_types, (str, type)):
        ignore_types = (ignore_types,)
    names = set()
    for entry in ignore_types:
        if isinstance(entry, type):
            names.add(type_name(entry))
        elif isinstance(entry, str):
            names.add(entry)
        else:
            raise TypeError(f"ignore_types entries must be types or qualified names, got {entry!r}")
    return frozenset(names), repeat


def allow_leaks(reason: str = "") -> str:
    if not isinstance(reason, str):
        raise TypeError(f"reason must be a string, got {reason!r}")
    return reason or "no reason given"


NO_LEAKS_SIGNATURE = "no_leaks(*, ignore_types=(), repeat=None)"
ALLOW_LEAKS_SIGNATURE = "allow_leaks(reason='')"


@functools.lru_cache(maxsize=8)
def _unmarked(settings: Settings) -> TestPolicy:
    """The policy of every test without a marker: one immutable object, not one per collected test."""
    return TestPolicy(
        check=settings.detect_leaks,
        ignore_types=settings.ignore_types,
        resources=settings.resources,
        repeat=settings.repeat if settings.detect_leaks else 0,
    )


_POLICY_MARKERS = ("no_leaks", "allow_leaks")


def _own_policy_marker(node: pytest.Item | pytest.Collector) -> pytest.Mark | None:
    for mark in node.own_markers:
        if mark.name in _POLICY_MARKERS:
            return mark
    return None


def closest_policy_marker(item: pytest.Item, parents: dict[int, pytest.Mark | None]) -> pytest.Mark | None:
    """The marker ``item.iter_markers()`` would meet first, with each parent's answer kept in *parents*.

    Walking every item's chain of parents cost more at collection than all
    the tests of a small suite together: their modules and classes are shared.
    *parents* is keyed by id and must not outlive the collection it was filled from.
    """
    mark = _own_policy_marker(item)
    if mark is not None:
        return mark
    chain = []
    node = item.parent
    while node is not None and id(node) not in parents:
        chain.append(node)
        node = node.parent
    found = parents[id(node)] if node is not None else None
    for parent in reversed(chain):  # outermost first: a closer marker replaces a farther one
        found = _own_policy_marker(parent) or found
        parents[id(parent)] = found
    return found


def policy_for(item: pytest.Item, settings: Settings, parents: dict[int, pytest.Mark | None] | None = None) -> TestPolicy:
    """Apply the closest of no_leaks / allow_leaks to the session settings.

    Raises pytest.UsageError naming the test and the marker when its arguments are wrong.
    """
    marker = closest_policy_marker(item, {} if parents is None else parents)
    if marker is None:
        return _unmarked(settings)
    try:
        if marker.name == "allow_leaks":
            reason = allow_leaks(*marker.args, **marker.kwargs)
            return TestPolicy(check=False, allowed_reason=reason)
        extra, repeat = no_leaks(*marker.args, **marker.kwargs)
    except TypeError as exc:
        signature = NO_LEAKS_SIGNATURE if marker.name == "no_leaks" else ALLOW_LEAKS_SIGNATURE
        raise pytest.UsageError(
            f"{item.nodeid}: bad arguments to @pytest.mark.{marker.name}: {exc}; expected {signature}"
        ) from None
    return TestPolicy(
        check=True,
        ignore_types=settings.ignore_types | extra,
        resources=settings.resources,
        repeat=settings.repeat if repeat is None else repeat,
    )


__all__ = ["OPTIONS", "Settings", "TestPolicy", "policy_for", "resolve"]
