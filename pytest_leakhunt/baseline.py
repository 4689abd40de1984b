"""A baseline of known leaks, so a legacy suite can switch the check on today.

The file lists leak fingerprints (``hints.fingerprint``), each with one test
that showed it and a description for the humans who review the file. Leaks in
the baseline do not fail their tests; entries that no longer occur are listed
at the end of the session, so the file cannot silently go stale.

The file is read when pytest is configured and refused there if it is not a
baseline, in words and with the shape expected: a run must not go green on a
file that lists nothing it can use, and ``--leaks-baseline-update`` must not
replace a file someone may still want to repair.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from pytest_leakhunt import artifacts

if TYPE_CHECKING:
    from pytest_leakhunt.model import Leak

FORMAT_VERSION = 1
SHAPE = '{"version": 1, "leaks": [{"fingerprint": "...", "nodeid": "...", "description": "..."}, ...]}'


@dataclass(frozen=True)
class Entry:
    fingerprint: str
    nodeid: str
    description: str


class Malformed(ValueError):
    """What is wrong with a baseline file, in words."""


class Baseline:
    """The known leaks of one file, and what this session does with it: match, report stale entries, update.

    While updating (``--leaks-baseline-update``), every leak counts as known:
    it goes into the file instead of failing its test.
    """

    def __init__(self, path: str, entries: Mapping[str, Entry], updating: bool = False) -> None:
        self.path = path
        self.entries = dict(entries)
        self.updating = updating
        #: set by ``update`` once the file is written
        self.written = False

    @classmethod
    def load(cls, path: str, where: str, updating: bool = False) -> Baseline:
        """The baseline at *path*; a pytest.UsageError naming *where* it was given if it cannot be used."""
        if not os.path.lexists(path):
            if updating:
                return cls(path, {}, updating)
            raise pytest.UsageError(
                f"{where}: baseline file {path!r} does not exist; "
                "create it with --leaks-baseline-update, which records the leaks of this run"
            )
        if not os.path.isfile(path):  # a directory, or a device that would never end (/dev/zero)
            raise pytest.UsageError(
                f"{where}: baseline {path!r} is not a regular file; expected a JSON file like {SHAPE}"
            )
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise pytest.UsageError(f"{where}: cannot read baseline file {path!r}: {artifacts.reason(exc)}") from None
        try:
            entries = parse(data)
        except Malformed as exc:
            keep = "; --leaks-baseline-update does not replace it: fix or delete it first" if updating else ""
            raise pytest.UsageError(
                f"{where}: {path!r} is not a leak baseline: {exc}{keep}; expected {SHAPE}"
            ) from None
        return cls(path, entries, updating)

    def split(self, leaks: Sequence[Leak]) -> tuple[list[Leak], list[Leak]]:
        """(baselined, new) among one test's leaks: the baselined ones do not fail it."""
        if self.updating:
            return list(leaks), []
        baselined = [leak for leak in leaks if leak.fingerprint in self.entries]
        return baselined, [leak for leak in leaks if leak.fingerprint not in self.entries]

    def stale(self, seen: Mapping[str, object]) -> list[Entry]:
        """Entries that no leak of this session matched (*seen*: fingerprints the session let through)."""
        return [] if self.updating else [e for e in self.entries.values() if e.fingerprint not in seen]

    def update(self, seen: Mapping[str, tuple[str, str]]) -> None:
        """Replace the entries with this session's leak groups (fingerprint -> (test, description)) and write the file.

        The file is replaced whole or not at all; raises OSError.
        """
        entries = {key: Entry(key, nodeid, text) for key, (nodeid, text) in seen.items()}
        artifacts.write_text(self.path, render(entries.values()))
        self.entries = entries
        self.written = True

    def lines(self, seen: Mapping[str, object]) -> list[str]:
        """Summary lines: what the baseline let through and what in it no longer occurs, or what was written."""
        if self.updating:
            return [f"leakhunt: wrote {len(self.entries)} known leak group(s) to {self.path}"] if self.written else []
        lines = [f"leakhunt: {len(seen)} leak group(s) in the baseline did not fail their tests"] if seen else []
        for entry in self.stale(seen):
            lines.append(
                f"leakhunt: baseline entry {entry.fingerprint} no longer occurs ({entry.nodeid}: {entry.description}); "
                "remove it, or run the whole suite with --leaks-baseline-update"
            )
        return lines


def render(entries: Any) -> str:
    """The file's text: entries sorted by test, so a diff of the file reads like a review."""
    data = {
        "version": FORMAT_VERSION,
        "leaks": [
            {"fingerprint": e.fingerprint, "nodeid": e.nodeid, "description": e.description}
            for e in sorted(entries, key=lambda e: (e.nodeid, e.fingerprint))
        ],
    }
    return json.dumps(data, indent=2) + "\n"


def parse(data: bytes) -> dict[str, Entry]:
    """Fingerprint -> entry; Malformed says what is wrong in words (never a Python error message)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("it is not UTF-8 text") from None
    if not text.strip():
        raise Malformed("the file is empty")
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise Malformed(f"it is not JSON ({getattr(exc, 'msg', exc)} at line {getattr(exc, 'lineno', '?')})") from None
    if not isinstance(document, dict):
        raise Malformed(f"it holds {_kind(document)}, not an object")
    if "version" not in document:
        raise Malformed('it has no "version"')
    version = document["version"]
    if type(version) is not int or version != FORMAT_VERSION:
        raise Malformed(f'its "version" is {json.dumps(version)}; this pytest-leakhunt reads version {FORMAT_VERSION}')
    leaks = document.get("leaks")
    if not isinstance(leaks, list):
        raise Malformed(
            f'its "leaks" is {_kind(leaks)}, not a list' if "leaks" in document else 'it has no "leaks" list'
        )
    return dict(_entry(number, raw) for number, raw in enumerate(leaks, 1))


def _entry(number: int, raw: object) -> tuple[str, Entry]:
    if not isinstance(raw, dict):
        raise Malformed(f'entry {number} of "leaks" is {_kind(raw)}, not an object')
    fingerprint = raw.get("fingerprint")
    if not isinstance(fingerprint, str) or not fingerprint:
        what = "has no" if "fingerprint" not in raw else f"has {_kind(fingerprint)} as its"
        raise Malformed(f'entry {number} of "leaks" {what} "fingerprint", expected a non-empty string')
    for key in ("nodeid", "description"):
        if not isinstance(raw.get(key, ""), str):
            raise Malformed(f'entry {number} of "leaks" has {_kind(raw[key])} as its "{key}", expected a string')
    return fingerprint, Entry(fingerprint, raw.get("nodeid", ""), raw.get("description", ""))


def _kind(value: object) -> str:
    """A JSON value described for people: ``a list``, ``the number 5``."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return f"the number {json.dumps(value)}"
    if isinstance(value, str):
        return f"the string {json.dumps(value)}" if value else "an empty string"
    return "a list" if isinstance(value, list) else "an object"
