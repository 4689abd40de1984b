"""How the inner pytest runs of our tests are configured."""

from __future__ import annotations

import pytest

#: The test extras install pytest-asyncio, pytest-randomly and pytest-rerunfailures for the
#: integration tests; elsewhere they would shuffle, reseed or warn in every inner run.
INNER_ADDOPTS = "-p no:cacheprovider -p no:randomly -p no:asyncio -p no:rerunfailures"


def write_ini(pytester: pytest.Pytester, *lines: str, addopts: str = INNER_ADDOPTS) -> None:
    """The inner runs' tox.ini: our default addopts plus *lines*."""
    pytester.makeini("\n".join(["[pytest]", f"addopts = {addopts}", *lines, ""]))
