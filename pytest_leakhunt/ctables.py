"""Dicts the interpreter keeps for classes in C, out of the collector's sight: never a program's holder.

A type defined in C keeps its attribute dict in C, and a class keeps the table
of its subclasses (each one's address to a weak reference to it) in C too. A
test that first imports a C extension with its types (``_asyncio`` before
3.13), or a module with a class hierarchy, leaves such dicts new and held by
nothing the collector sees; they live as long as the classes do.

A C type's dict is told by identity. A table of subclasses is told by its
shape only, which a program's dict can share: it is taken for the
interpreter's only once a walk of the heap found nothing else holding it.
Neither check runs code of the objects it reads (a metaclass, a mock), and
neither raises.
"""

from __future__ import annotations

import gc
import itertools
import types
import weakref
from typing import Any

#: The descriptors a C type's dict holds, each knowing its type in ``__objclass__``.
_DESCRIPTORS = (
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.GetSetDescriptorType,
    types.MemberDescriptorType,
    types.ClassMethodDescriptorType,
)
#: Values of a dict looked at for a descriptor of the C type it may belong to.
_LOOK_AT = 8
#: ``cls.__bases__`` read from ``type`` itself: a metaclass may define its own.
_BASES = type.__dict__["__bases__"]


def is_c_type_dict(table: Any) -> bool:
    """Whether *table* is the attribute dict of a type defined in C that the collector does not track."""
    if type(table) is not dict or not table or type(next(iter(table))) is not str:
        return False
    try:
        # a C type's dict starts with its slots and methods: a few values tell, however big a program's dict is
        first = itertools.islice(table.values(), _LOOK_AT)
        owner = next((value.__objclass__ for value in first if type(value) in _DESCRIPTORS), None)
        if not issubclass(type(owner), type) or gc.is_tracked(owner):  # a Python class reports its dict itself
            return False
        return any(inner is table for inner in gc.get_referents(type.__dict__["__dict__"].__get__(owner)))
    except Exception:  # noqa: BLE001 - an odd object is simply not such a dict
        return False


def is_subclass_table(table: Any) -> bool:
    """Whether *table* has the shape of a class's table of subclasses: each of them, and only those, by address."""
    if type(table) is not dict or not table or type(next(iter(table))) is not int:
        return False
    try:
        key, ref = next(iter(table.items()))
        first = ref() if type(ref) is weakref.ref else None
        if not issubclass(type(first), type) or id(first) != key:
            return False  # told from its first entry, before a program's big dict of numbers is read whole
        for base in _BASES.__get__(first):
            subclasses: list[type] = type.__subclasses__(base) if issubclass(type(base), type) else []
            if len(subclasses) == len(table) and all(table.get(id(sub)) is weakref.ref(sub) for sub in subclasses):
                return True
        return False
    except Exception:  # noqa: BLE001 - an odd object is simply not such a table
        return False
