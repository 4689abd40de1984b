"""One name for a live object's type: ``module.Qualname``, as leaks, reports and options spell it."""

from __future__ import annotations

import types
from typing import Any


def module_of(obj: Any) -> str:
    """``obj.__module__`` when it is a string, else "".

    A metaclass that defines ``__module__`` for its classes (Cython's shared
    metatype does) shadows its own: the metaclass itself reports a descriptor.
    """
    module = getattr(obj, "__module__", None)
    return module if type(module) is str else ""


def qualified_type(obj: Any) -> str:
    """``module.Qualname`` of obj's type; functions and classes are named themselves."""
    if isinstance(obj, (types.FunctionType, type)):
        module = module_of(obj)
        if module not in ("", "builtins"):
            kind = "function" if isinstance(obj, types.FunctionType) else "class"
            return f"{kind} {module}.{obj.__qualname__}"
    return type_name(type(obj))


def type_name(cls: type) -> str:
    """``module.Qualname`` of a class, the bare qualname for builtins: what ``qualified_type`` calls its instances."""
    module = module_of(cls)
    return cls.__qualname__ if module in ("", "builtins") else f"{module}.{cls.__qualname__}"
