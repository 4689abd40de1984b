"""Dicts the interpreter keeps for classes in C, out of the collector's sight: never a program's holder.

A class keeps the table of its subclasses (each one's address to a weak
reference to it) in C, and a type defined in C keeps its attribute dict the
same way. A test that first imports a module with a class hierarchy, or a C
extension with its types (``_asyncio``), leaves such dicts new and held by
nothing the collector sees; they live as long as the classes do.
"""

from __future__ import annotations

import gc
import itertools
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
    key, ref = next(iter(table.items()))
    first = ref() if type(ref) is weakref.ref else None
    if not isinstance(first, type) or id(first) != key:
        return False  # told from its first entry, before a program's big dict of numbers is read whole
    for base in first.__bases__:
        subclasses: list[type] = type.__subclasses__(base)
        if len(subclasses) == len(table) and all(table.get(id(sub)) is weakref.ref(sub) for sub in subclasses):
            return True
    return False


def _is_type_dict(table: dict[str, Any]) -> bool:
    """A dict behind the ``__dict__`` of the C type that its slot wrappers and methods belong to."""
    # a C type's dict starts with its slots and methods: a few values tell, however big a program's dict is
    first = itertools.islice(table.values(), _LOOK_AT)
    owner = next((value.__objclass__ for value in first if _is_descriptor(value)), None)
    if not isinstance(owner, type) or gc.is_tracked(owner):  # a class made in Python reports its dict itself
        return False
    proxy = owner.__dict__
    return any(inner is table for inner in gc.get_referents(proxy))


def _is_descriptor(value: Any) -> bool:
    return type(value).__name__ in _DESCRIPTORS and hasattr(value, "__objclass__")


#: Values of a dict looked at for a descriptor of the C type it may belong to.
_LOOK_AT = 8
#: The descriptors a C type's dict holds, each knowing its type in ``__objclass__``.
_DESCRIPTORS = frozenset(
    {"wrapper_descriptor", "method_descriptor", "getset_descriptor", "member_descriptor", "classmethod_descriptor"}
)
