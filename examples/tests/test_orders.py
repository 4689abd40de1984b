import re

from shop.orders import Order, OrderService, quote, tax_rate


def test_place_order_leaks_into_class_history():
    service = OrderService()
    service.place(Order("ada", ["book"]))
    assert len(service.history) >= 1


def test_quote_leaks_through_unbounded_cache():
    assert quote(Order("bob", ["pen", "ink"])) == 20


def test_order_total_is_clean():
    assert Order("cy", ["a", "b", "c"]).total() == 30


def test_bounded_cache_is_clean():
    assert tax_rate("eu") == 0.2


def test_regex_first_use_is_clean():
    assert re.fullmatch(r"ORD-[0-9]{6}", "ORD-123456")
