"""A baseline of known leaks, so a legacy suite can switch the check on today.

The file lists leak fingerprints (``hints.fingerprint``), each with one test
that showed it and a description for the humans who review the file. Leaks in
the baseline do not fail their tests; entries that no longer occur are listed
at the end of the session, so the file cannot silently go stale.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import pytest

from pytest_leakhunt import artifacts

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Entry:
    fingerprint: str
    nodeid: str
    description: str


def load(path: str, where: str) -> dict[str, Entry]:
    """Fingerprint -> entry; a missing file is an empty baseline (the first --leaks-baseline-update makes it)."""
    if not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        entries = data["leaks"]
        return {e["fingerprint"]: Entry(e["fingerprint"], e.get("nodeid", ""), e.get("description", "")) for e in entries}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise pytest.UsageError(f"{where}: cannot read baseline {path!r}: {exc}") from None


def write(path: str, entries: dict[str, Entry]) -> None:
    data: dict[str, Any] = {
        "version": FORMAT_VERSION,
        "leaks": [
            {"fingerprint": e.fingerprint, "nodeid": e.nodeid, "description": e.description}
            for e in sorted(entries.values(), key=lambda e: (e.nodeid, e.fingerprint))
        ],
    }
    artifacts.write_text(path, json.dumps(data, indent=2) + "\n")  # whole or not at all
