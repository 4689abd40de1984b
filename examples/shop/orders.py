from __future__ import annotations

import functools
from dataclasses import dataclass, field


@dataclass(eq=False)  # compared by identity, so hashable like most domain objects
class Order:
    customer: str
    items: list[str] = field(default_factory=list)

    def total(self) -> int:
        return 10 * len(self.items)


class OrderService:
    # Leak: a class-level list shared by every instance, never trimmed.
    history: list[Order] = []

    def place(self, order: Order) -> Order:
        self.history.append(order)
        return order


@functools.lru_cache(maxsize=None)
def quote(order: Order) -> int:
    """Leak: an unbounded cache keyed by fresh Order objects keeps every one alive."""
    return order.total()


@functools.lru_cache(maxsize=256)
def tax_rate(region: str) -> float:
    """Fine: a bounded cache keyed by a small set of strings."""
    return 0.2 if region == "eu" else 0.1
