"""Dicts the interpreter keeps for classes in C, out of the collector's sight: never a program's holder.

A class keeps the table of its subclasses (each one's address to a weak
reference to it) in C, and a type defined in C keeps its attribute dict the
same way. A test that first imports a module with a class hierarchy, or a C
extension with its types (``_asyncio``), leaves such dicts new and held by
nothing the collector sees; they live as long as the classes do.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any


def held_by_a_class(table: Any) -> bool:
    """Whether *table* is a dict a class keeps in C: the table of its subclasses, or a C type's attributes."""
    if type(table) is not dict or not table:
        return False
    first = next(iter(table))
    if type(first) is int:
        return _is_subclass_table(table)
    return type(first) is str and _is_type_dict(table)


def _is_subclass_table(table: dict[Any, Any]) -> bool:
    """Each subclass of one class, and only those, by address to its weak reference.

    A program's dict of exactly that shape is taken for the table too: it can
    only hold classes that something else keeps alive, and that is reported.
    """
    classes = [ref() if type(ref) is weakref.ref else None for ref in table.values()]
    first = classes[0]
    if not isinstance(first, type) or not all(isinstance(c, type) and id(c) == k for k, c in zip(table, classes)):
        return False
    keys = table.keys()
    return any(keys == set(map(id, type.__subclasses__(base))) for base in first.__bases__)


def _is_type_dict(table: dict[str, Any]) -> bool:
    """A dict behind the ``__dict__`` of the C type that its slot wrappers and methods belong to."""
    owner = next((value.__objclass__ for value in table.values() if _is_descriptor(value)), None)
    if not isinstance(owner, type) or gc.is_tracked(owner):  # a class made in Python reports its dict itself
        return False
    proxy = owner.__dict__
    return any(inner is table for inner in gc.get_referents(proxy))


def _is_descriptor(value: Any) -> bool:
    return type(value).__name__ in _DESCRIPTORS and hasattr(value, "__objclass__")


#: The descriptors a C type's dict holds, each knowing its type in ``__objclass__``.
_DESCRIPTORS = frozenset(
    {"wrapper_descriptor", "method_descriptor", "getset_descriptor", "member_descriptor", "classmethod_descriptor"}
)
