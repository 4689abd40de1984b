"""The plugin keeps nothing a test made alive: no cache of ours holds a test's class, function or object.

``unittest.mock`` makes a class for every Mock, so a type-keyed cache that
holds its keys strongly keeps every Mock class of the session (and the test
that made it fails as leaking, blaming our cache). objgraph's
``test_no_new_reference_cycles`` in spirit: count what is alive at the end.
"""

from __future__ import annotations

import pytest

MOCKS = """
    import gc
    import weakref
    from unittest import mock

    import pytest

    MADE = []  # weak references to the classes of the mocks each test made

    def watch(m):
        MADE.append(weakref.ref(type(m)))
        return m

    class Api:
        def get(self, key):
            return key

    @pytest.fixture(scope="session")
    def session_mock():
        return mock.MagicMock(name="session")

    @pytest.fixture(scope="module")
    def module_mock():
        return mock.Mock(name="module")

    @pytest.fixture
    def function_mock():
        return watch(mock.MagicMock())

    @pytest.fixture
    def autospecced():
        return watch(mock.create_autospec(Api, instance=True))

    @pytest.mark.parametrize("n", range(100))
    def test_fixtures(n, session_mock, module_mock, function_mock, autospecced):
        function_mock.method(n)
        autospecced.get(n)
        session_mock.calls(n)  # recorded on a session-scoped mock: growth, unless the test resets it
        module_mock.touch()
        session_mock.reset_mock()
        module_mock.reset_mock()

    @pytest.mark.parametrize("n", range(100))
    def test_bodies(n):
        m = watch(mock.Mock())
        m.child.grandchild(n)
        watch(mock.MagicMock(spec=Api)).get(n)

    @pytest.mark.parametrize("n", range(100))
    def test_patch(n):
        with mock.patch.object(Api, "get") as patched:
            watch(patched)
            Api().get(n)
"""

COUNT = """
    import gc
    import pytest

    def pytest_sessionfinish(session):
        import test_mocks
        gc.collect()
        alive = sum(ref() is not None for ref in test_mocks.MADE)
        with open("alive.txt", "w") as handle:
            handle.write(f"{alive} {len(test_mocks.MADE)}")
"""


@pytest.mark.parametrize("options", [["--detect-leaks"], ["-p", "no:leakhunt"]], ids=["checked", "plain"])
def test_mock_classes_made_by_tests_do_not_outlive_them(pytester: pytest.Pytester, options: list[str]) -> None:
    pytester.makepyfile(test_mocks=MOCKS)
    pytester.makeconftest(COUNT)
    result = pytester.runpytest_subprocess(*options, "-p", "no:randomly")
    result.assert_outcomes(passed=300)
    assert "LEAKED" not in result.stdout.str()
    alive, made = map(int, (pytester.path / "alive.txt").read_text().split())
    assert made >= 500
    assert alive == 0, f"{alive} of {made} mock classes made by tests are still alive"
