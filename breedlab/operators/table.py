"""The operator table: each name bound to its function and its recipe class.

An operator turns registered artifacts into a new one. It is a plain function
registered under a unique lower-case name together with the dataclass of its
recipe (``@operator("cmg", recipe=CMGRecipe)``); variants are configured recipes,
not subclasses. The CLI, the lab and the contract test look both up here, so
adding an operator is one module and one decorator (``docs/ARCHITECTURE.md``,
"Adding an operator"). The built-in operators register when ``breedlab.operators``
is imported, which importing this module always does first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from breedlab.typed_config import from_mapping

F = TypeVar("F", bound=Callable)
NAME = re.compile(r"^[a-z][a-z0-9-]*$")


@dataclass(frozen=True)
class OperatorEntry:
    name: str
    function: Callable
    recipe: type
    """The recipe dataclass: ``recipe.from_dict(values)`` builds and validates one."""


_OPERATORS: dict[str, OperatorEntry] = {}


def operator(name: str, *, recipe: type) -> Callable[[F], F]:
    """Register the decorated function as operator ``name`` (unique, lower-case) taking ``recipe``."""
    if not NAME.match(name):
        raise ValueError(f"operator name {name!r} must be lower-case letters, digits and dashes")

    def register(function: F) -> F:
        known = _OPERATORS.get(name)
        if known is not None and known.function is not function:
            raise ValueError(f"operator {name!r} is already registered")
        _OPERATORS[name] = OperatorEntry(name, function, recipe)
        return function

    return register


def operator_entry(name: str) -> OperatorEntry:
    try:
        return _OPERATORS[name]
    except KeyError:
        raise KeyError(f"unknown operator {name!r}; known: {', '.join(sorted(_OPERATORS))}") from None


def get_operator(name: str) -> Callable:
    return operator_entry(name).function


def recipe_class(name: str) -> type:
    return operator_entry(name).recipe


def build_recipe(name: str, values: dict[str, Any]):
    """Operator ``name``'s recipe from plain values (a YAML mapping): unknown fields, wrong types and
    values the recipe refuses are a ``ValueError`` naming the operator."""
    return from_mapping(recipe_class(name), values, f"operator {name!r} recipe")


def operator_names() -> list[str]:
    return sorted(_OPERATORS)
