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

DEFAULT_TRACE_DEPTH = 1
MAX_REPEAT = 1000
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
    #: extra runs to see what grows on every run (0: off)
    repeat: int = 0


def _where_ini(config: pytest.Config, name: str) -> str:
    inipath = getattr(config, "inipath", None)
    return f"ini option {name!r} in {inipath}" if inipath else f"ini option {name!r}"


def _parse_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise pytest.UsageError(f"{where}: expected true or false, got {value!r}")


def _whole_number(unit: str, low: int, high: int) -> Callable[[Any, str], int]:
    """A parser of a count of *unit* between *low* and *high*, whose errors name the value's source."""

    def parse(value: Any, where: str) -> int:
        try:
            number = int(str(value).strip())
        except ValueError:
            raise pytest.UsageError(f"{where}: expected a whole number of {unit}, got {value!r}") from None
        if not low <= number <= high:
            raise pytest.UsageError(f"{where}: {unit} must be between {low} and {high}, got {number}")
        return number

    return parse


def _parse_types(value: Any, where: str = "") -> frozenset[str]:
    return frozenset(part.strip() for part in str(value).replace("\n", ",").split(",") if part.strip())


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


@dataclass(frozen=True)
class Option:
    """A command-line option and its ini twin: one help text, one parser, one default, one ``Settings`` field."""

    name: str
    ini: str
    help: str
    #: the ``Settings`` field it sets
    field: str
    #: turns a given value and where it came from into the setting, or raises a UsageError naming that source
    parse: Callable[[Any, str], Any]
    default: Any = None
    #: a switch on the command line (``store_true``); the ini twin still takes true or false
    flag: bool = False
    #: a file or directory the run writes (or reads): checked together, no two the same
    path: bool = False


OPTIONS: tuple[Option, ...] = (
    Option("--detect-leaks", "detect_leaks", "check every test for objects it leaves alive in program state.",
           "detect_leaks", _parse_bool, False, flag=True),
    Option("--leaks-trace", "leaks_trace", "record where leaked objects were allocated (starts tracemalloc; slower).",
           "trace", _parse_bool, False, flag=True),
    Option("--leaks-trace-depth", "leaks_trace_depth",
           "frames tracemalloc keeps per allocation with --leaks-trace (default: 1; each frame costs).",
           "trace_depth", _whole_number("frames", 1, 100), DEFAULT_TRACE_DEPTH),
    Option("--leaks-report", "leaks_report", "write the leak report as JSON to this path.",
           "report_path", artifacts.check_file, path=True),
    Option("--leaks-ignore-types", "leaks_ignore_types",
           "comma-separated qualified type names never reported as leaks.",
           "ignore_types", _parse_types, frozenset()),
    Option("--leaks-resources", "leaks_resources",
           "what a checked test must not leave running, comma-separated: threads, tasks, processes, fds; "
           "or all, or none (default: threads,tasks,processes).",
           "resources", _parse_resources, DEFAULT_KINDS),
    Option("--leaks-baseline", "leaks_baseline",
           "JSON file of known leaks (fingerprints): leaks listed there do not fail their tests.",
           "baseline_path", artifacts.check_named, path=True),
    Option("--leaks-baseline-update", "leaks_baseline_update",
           "write today's leaks into the --leaks-baseline file instead of failing on them.",
           "baseline_update", _parse_bool, False, flag=True),
    Option("--leaks-html", "leaks_html", "write a self-contained HTML report of every leaking test to this path.",
           "html_path", artifacts.check_file, path=True),
    Option("--leaks-snapshot-dir", "leaks_snapshot_dir",
           "write a .heapsnapshot (Chrome DevTools / memlab) of each leaking test's leaked objects and retainers here.",
           "snapshot_dir", artifacts.check_directory, path=True),
    Option("--leaks-strict", "leaks_strict",
           "fail a test for anything it leaves alive, also what is retained once and does not grow.",
           "strict", _parse_bool, False, flag=True),
    Option("--leaks-repeat", "leaks_repeat",
           "after each checked test passes, run it this many more times and report what grows on every run "
           "(default: 0, off).",
           "repeat", _whole_number("runs", 0, MAX_REPEAT), 0),
)  # fmt: skip
_BY_NAME = {option.name: option for option in OPTIONS}


def _given(config: pytest.Config, option: Option) -> tuple[Any, str] | None:
    """The value set for *option* and where it was set (the command line wins over the ini file), or None."""
    cli_value = config.getoption(option.ini)  # each option's dest is its ini twin's name
    if cli_value is not None:
        return cli_value, f"command line option {option.name}"
    ini_value = config.getini(option.ini)
    if ini_value not in (None, "", []):
        return ini_value, _where_ini(config, option.ini)
    return None


def source(config: pytest.Config, name: str) -> str:
    """Where option *name*'s value came from, for errors found after ``resolve`` (a baseline file's contents)."""
    given = _given(config, _BY_NAME[name])
    return given[1] if given is not None else f"command line option {name}"


def resolve(config: pytest.Config) -> Settings:
    """Read CLI and ini once into a frozen Settings; raise UsageError naming the source.

    The baseline is read before the other paths, so that a report given its
    path is the option blamed; with ``--leaks-baseline-update`` it must also be
    writable.
    """
    values: dict[str, Any] = {}
    named: list[tuple[str, str]] = []
    for option in sorted(OPTIONS, key=lambda o: o.field != "baseline_path"):
        given = _given(config, option)
        values[option.field] = option.default if given is None else option.parse(*given)
        if option.path and given is not None:
            named.append((values[option.field], given[1]))
    if values["baseline_update"]:
        update = _given(config, _BY_NAME["--leaks-baseline-update"])
        baseline = _given(config, _BY_NAME["--leaks-baseline"])
        if baseline is None:
            where = update[1] if update is not None else "command line option --leaks-baseline-update"
            raise pytest.UsageError(
                f"{where}: needs --leaks-baseline=FILE (or leaks_baseline in the ini file) to write to"
            )
        artifacts.check_file(*baseline)
    artifacts.check_distinct(named)
    return Settings(**values)


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


def policy_for(
    item: pytest.Item, settings: Settings, parents: dict[int, pytest.Mark | None] | None = None
) -> TestPolicy:
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
