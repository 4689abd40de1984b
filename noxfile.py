"""The test matrix: every supported CPython, and pytest 8 next to the latest pytest.

    nox                      # all sessions; interpreters that are not installed are skipped
    nox -s tests-3.12        # one interpreter
    nox -s tests_pytest8     # pytest 8 on the interpreter nox runs on

``.ci/run`` calls this for every interpreter other than its default one.
"""

from __future__ import annotations

import nox

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]

nox.options.sessions = ["tests", "tests_pytest8"]
# A missing interpreter is skipped with a printed line, also on CI, where nox would fail by default.
nox.options.error_on_missing_interpreters = False


def _run_suite(session: nox.Session) -> None:
    session.run("python", "-m", "pytest", *(session.posargs or ["-n", "auto"]))


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The full suite with the newest pytest."""
    session.install("-e", ".[test]")
    _run_suite(session)


@nox.session
def tests_pytest8(session: nox.Session) -> None:
    """The full suite with pytest 8, the oldest major release we support."""
    session.install("-e", ".[test]", "pytest>=8.0,<9")
    _run_suite(session)
