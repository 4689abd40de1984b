from __future__ import annotations

import pytest


@pytest.fixture
def pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    """Pytester whose inner runs use a private cache dir and no xdist/randomly surprises."""
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    return pytester
