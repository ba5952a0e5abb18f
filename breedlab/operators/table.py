"""The operator plug-in registry: an operator turns registered artifacts into a new one.

An operator is a plain function registered under a unique lower-case name
(``@operator("cmg")``); variants are configured recipes, not subclasses. The
CLI and the lab look operators up by name, so adding one is one decorator.
"""

from __future__ import annotations

import re
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)
NAME = re.compile(r"^[a-z][a-z0-9-]*$")
_OPERATORS: dict[str, Callable] = {}


def operator(name: str) -> Callable[[F], F]:
    """Register the decorated function as operator ``name`` (unique, lower-case)."""
    if not NAME.match(name):
        raise ValueError(f"operator name {name!r} must be lower-case letters, digits and dashes")

    def register(function: F) -> F:
        if name in _OPERATORS and _OPERATORS[name] is not function:
            raise ValueError(f"operator {name!r} is already registered")
        _OPERATORS[name] = function
        return function

    return register


def get_operator(name: str) -> Callable:
    _load_builtin_operators()
    try:
        return _OPERATORS[name]
    except KeyError:
        raise KeyError(f"unknown operator {name!r}; known: {', '.join(sorted(_OPERATORS))}") from None


def operator_names() -> list[str]:
    _load_builtin_operators()
    return sorted(_OPERATORS)


def _load_builtin_operators() -> None:
    """Import the modules whose decorators register the built-in operators."""
    from breedlab.cmg import breed  # noqa: F401
    from breedlab.operators import adapter_finetune, merge, merge_distill, quantize  # noqa: F401
