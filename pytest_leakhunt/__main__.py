"""``python -m pytest_leakhunt compare A.heapsnapshot B.heapsnapshot``: the types that grew most.

The command-line half of the three-snapshot method: write a snapshot before,
during and after the suspected work (``pytest_leakhunt.write_heap_snapshot()``),
then compare them, like DevTools' Comparison view.
"""

from __future__ import annotations

import argparse
import sys

from pytest_leakhunt.artifacts import reason
from pytest_leakhunt.heapsnapshot import grown, type_stats
from pytest_leakhunt.report import human_bytes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_leakhunt", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    cmp = commands.add_parser("compare", help="types that grew most between two .heapsnapshot files")
    cmp.add_argument("before")
    cmp.add_argument("after")
    cmp.add_argument("--top", type=int, default=20, help="how many types to list (default 20)")
    args = parser.parse_args(argv)
    stats = []
    for which, path in (("before", args.before), ("after", args.after)):
        try:
            stats.append(type_stats(path))
        except OSError as exc:
            return _fail(f"cannot read the {which} snapshot {path!r}: {exc.strerror or reason(exc)}")
        except ValueError as exc:
            return _fail(f"the {which} snapshot {path!r} cannot be compared: {exc}")
    rows = grown(stats[0], stats[1], args.top)
    if not rows:
        print("nothing grew")
        return 0
    width = max(len(name) for name, _, _ in rows)
    print(f"{'type':<{width}}  {'count':>8}  {'size':>10}")
    for name, count, size in rows:
        print(f"{name:<{width}}  {count:>+8}  {'+' + human_bytes(size) if size >= 0 else '-' + human_bytes(-size):>10}")
    return 0


def _fail(message: str) -> int:
    """One line on stderr and exit status 2, like argparse's own errors but without the usage block."""
    print(f"python -m pytest_leakhunt compare: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
