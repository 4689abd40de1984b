"""Golden text for rendering: report.py is pure, so its output is pinned exactly."""

from __future__ import annotations

import dataclasses
import json

from pytest_leakhunt.model import Leak, RunTotals, TestLeaks, render_path
from pytest_leakhunt.report import human_bytes, render_summary, render_test, to_json

ORDER = Leak(
    type="shop.orders.Order",
    count=2,
    shallow_bytes=56,
    retained_bytes=2400,
    retained_by=("shop.orders", "OrderService", "history", "[0]"),
    allocated_at="tests/test_orders.py:12",
)
CART = Leak(
    type="shop.events.Cart",
    count=1,
    shallow_bytes=56,
    retained_bytes=208,
    retained_by=("shop.events", "bus", "_listeners", "[0]"),
    root_type="method",
)
TRACKED = Leak(
    type="shop.db.Session",
    count=1,
    shallow_bytes=48,
    retained_bytes=48,
    retained_by=("<held outside Python objects: C state or a thread's stack>",),
    kind="tracked",
    name="db session",
)


def test_render_test_golden() -> None:
    result = TestLeaks(nodeid="tests/test_orders.py::test_place", leaks=(ORDER, CART, TRACKED), more_groups=1)
    assert render_test(result, traced=False) == (
        "leakhunt: 4 objects still alive after teardown, 2.6 KiB retained\n"
        "1) shop.orders.Order x2  (shallow 56 B, retained 2.3 KiB)\n"
        "   held by: shop.orders.OrderService.history[0] -> shop.orders.Order\n"
        "   allocated at: tests/test_orders.py:12\n"
        "2) shop.events.Cart x1  (shallow 56 B, retained 208 B)\n"
        "   held by: shop.events.bus._listeners[0] -> method -> ... -> shop.events.Cart\n"
        "3) tracked 'db session': shop.db.Session x1  (shallow 48 B, retained 48 B)\n"
        "   held by: <held outside Python objects: C state or a thread's stack> -> shop.db.Session\n"
        "... and 1 more leak group not explained\n"
        "(run with --leaks-trace to see where each leaked object was allocated)"
    )


def test_render_error_golden() -> None:
    result = TestLeaks(nodeid="t.py::test_x", error="RuntimeError: boom")
    assert render_test(result, traced=True) == "leakhunt could not check this test: RuntimeError: boom"


def test_render_summary_golden() -> None:
    totals = RunTotals(checked={"e.py::test_e", "f.py::test_f"})
    totals.record("a.py::test_a", TestLeaks(nodeid="a.py::test_a", leaks=(ORDER, CART)))
    totals.record("b.py::test_b", TestLeaks(nodeid="b.py::test_b", error="RuntimeError: boom"))
    totals.record("c.py::test_c", TestLeaks(nodeid="c.py::test_c"))
    totals.allow("d.py::test_d", "legacy cache")
    assert render_summary(totals) == [
        "LEAKED a.py::test_a: shop.orders.Order x2 held by shop.orders.OrderService.history[0] (+1 more group)",
        "ERROR b.py::test_b: leakhunt could not check it: RuntimeError: boom",
        "allowed d.py::test_d: legacy cache",
        "leakhunt: 5 tests checked, 1 leaking, 3 objects leaked, 2.5 KiB retained",
    ]


def test_json_roundtrip_and_schema() -> None:
    totals = RunTotals(checked={"b.py::test_b"})
    result = TestLeaks(nodeid="a.py::test_a", leaks=(ORDER,), outcome="failed")
    totals.record(result.nodeid, result)
    data = json.loads(json.dumps(to_json(totals, "9.0.0")))
    assert set(data) == {"version", "python", "pytest", "summary", "tests", "retained_once"}
    assert data["summary"] == {
        "tests_checked": 2,
        "tests_leaking": 1,
        "objects_leaked": 2,
        "bytes_retained": 2400,
        "tests_retaining_once": 0,
    }
    (test,) = data["tests"]
    assert test["leaks"][0] == {
        "type": "shop.orders.Order",
        "count": 2,
        "shallow_bytes": 56,
        "retained_bytes": 2400,
        "retained_by": ["shop.orders", "OrderService", "history", "[0]"],
        "allocated_at": "tests/test_orders.py:12",
        "kind": "object",
        "retention": "grows",
    }
    assert TestLeaks.from_json(test) == result


def test_every_leak_field_survives_json() -> None:
    # to_json lists the fields by hand: a field added to Leak and forgotten there fails here
    values = {f.name: f"value of {f.name}" for f in dataclasses.fields(Leak)}
    values.update(count=3, shallow_bytes=4, retained_bytes=5, retained_by=("m", "X"), details=("d",), runs=2)
    leak = Leak(**values)
    assert set(leak.to_json()) == set(values)
    assert Leak.from_json(json.loads(json.dumps(leak.to_json()))) == leak


def test_render_path() -> None:
    assert render_path(("m", "A", "b", "[0]", "['k']")) == "m.A.b[0]['k']"
    assert render_path(("m", "f", "<lru_cache>")) == "m.f <lru_cache>"
    assert render_path(()) == ""


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (0, 1023, 1024, 1536, 5 * 1024**2, 3 * 1024**3)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "1.5 KiB",
        "5.0 MiB",
        "3.0 GiB",
    ]


def test_summary_names_the_tests_after_which_memory_grew_most() -> None:
    totals = RunTotals(checked={"a.py::test_a"})
    totals.memory = {
        "a.py::t1": (100, 0),
        "a.py::t2": (5 * 1024 * 1024, 4 * 1024 * 1024),
        "a.py::t3": (90, -10),
        "a.py::t4": (2048 + 100, 2048),
    }
    assert render_summary(totals)[0] == "leakhunt: memory grew most after: a.py::t2 (+4.0 MiB), a.py::t4 (+2.0 KiB)"
    data = to_json(totals, "9.0.0")
    assert data["memory"][1] == {"nodeid": "a.py::t2", "rss_bytes": 5 * 1024 * 1024, "growth_bytes": 4 * 1024 * 1024}
