from __future__ import annotations

import pytest
from inner import write_ini


@pytest.fixture
def pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    """Pytester whose inner runs keep no cache and load no third-party plugin unless a test asks."""
    write_ini(pytester)
    return pytester
