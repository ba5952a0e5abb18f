"""Typed config: YAML mappings read into frozen dataclasses, field for field.

Every breedlab config (``configs/*.yaml`` and a home's overrides) is read
through these functions, so every file is checked the same way: an unknown
key is an error naming the allowed keys (a typo never silently falls back to
a default), a missing required key is an error, and a value must have its
field's type. ``where`` says where the mapping is (file, section, list
index) and starts every message. Each caller passes the exception class its
own callers expect (``error=ConfigError``); all of them are ``ValueError``s.

Types checked: ``bool``, ``int``, ``float`` (an int is accepted and becomes a
float, so equal configs compare equal), ``str``, ``dict``, ``X | None``,
``tuple[X, ...]`` (a YAML list becomes a tuple) and dataclasses (a mapping
is built into one, recursively). Other annotations (``Any``, unions of
several types) pass through unchecked.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Set
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
ErrorClass = type[Exception]
HOME_CONFIGS = "configs"
_overrides_dir: Path | None = None


def use_home_configs(home_root: Path | None) -> None:
    """Read every shipped config file with the overrides in ``<home_root>/configs/`` (None: shipped only).

    The home a process works in is set once where it is resolved (``Home.resolve``, the server's app):
    a home's ``configs/ecosystem.yaml`` then overrides fields of the shipped ``ecosystem.yaml``, section
    by section, for everything that process reads, like git reads a repository's own config."""
    global _overrides_dir
    _overrides_dir = Path(home_root) / HOME_CONFIGS if home_root is not None else None


def override_of(shipped: Path | str) -> Path | None:
    """The active home's override of a shipped config file, if it has one."""
    if _overrides_dir is None:
        return None
    candidate = _overrides_dir / Path(shipped).name
    return candidate if candidate.is_file() and candidate.resolve() != Path(shipped).resolve() else None


def layered_section(cls: type, path: Path | str, section: str | None, *, error: ErrorClass = ValueError,
                    keys: str = "key(s)") -> tuple[dict[str, Any], dict[str, str]]:
    """(the shipped ``section`` with the home's values over it, key -> the file its value came from).

    ``section`` None: the whole document. A home file's keys are checked against ``cls`` on their own,
    so a typo in it is an error naming that file and the key, never a silent fallback."""
    values = _section_of(path, section, error)
    origins = {key: str(path) for key in values}
    override = override_of(path)
    if override is not None:
        where = f"{override}: {section}" if section else str(override)
        raw = _section_of(override, section, error)
        checked_values(cls, raw, where, error=error, keys=keys)
        values.update(raw)
        origins.update({key: str(override) for key in raw})
    return values, origins


def _section_of(path: Path | str, section: str | None, error: ErrorClass) -> dict[str, Any]:
    if section is None:
        return expect_mapping(read_yaml(path, error=error) or {}, str(path), error=error)
    return dict(read_section(path, section, error=error))


def read_yaml(path: Path | str, *, error: ErrorClass = ValueError) -> Any:
    """The parsed YAML document at ``path``; a missing or malformed file is ``error``."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise error(f"cannot read config file {path}: {exc}") from exc


def read_section(path: Path | str, section: str, *, error: ErrorClass = ValueError) -> dict[str, Any]:
    """The mapping under the top-level key ``section``; absent or empty: ``{}`` (every field defaults)."""
    document = read_yaml(path, error=error) or {}
    body = expect_mapping(document, str(path), error=error).get(section) or {}
    return expect_mapping(body, f"{path}: section {section!r}", error=error)


def expect_mapping(raw: Any, where: str, *, error: ErrorClass = ValueError) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise error(f"{where}: expected a mapping, got {type(raw).__name__}")
    return raw


def from_mapping(cls: type[T], body: Any, where: str, *, error: ErrorClass = ValueError,
                 keys: str = "key(s)", fixed: Mapping[str, Any] | None = None) -> T:
    """``cls(**body)`` after checking every key and value against ``cls``'s fields.

    ``keys`` names the keys in the unknown-key message ("governance keys").
    ``fixed`` holds fields the caller fills itself (e.g. from another
    section): the mapping may not set them.
    """
    fixed = dict(fixed or {})
    values = {**checked_values(cls, expect_mapping(body, where, error=error), where, error=error, keys=keys,
                               exclude=set(fixed)), **fixed}
    required = {f.name for f in dataclasses.fields(cls)
                if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    missing = sorted(required - set(values))
    if missing:
        raise error(f"{where}: missing required key(s) {missing}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:  # __post_init__ checks: say where the values came from
        raise error(f"{where}: {exc}") from exc


def with_overrides(config: T, overrides: Mapping[str, Any], where: str, *, error: ErrorClass = ValueError,
                   keys: str = "key(s)") -> T:
    """``config`` (a frozen dataclass) with ``overrides`` checked like a mapping's keys and values."""
    values = checked_values(type(config), overrides, where, error=error, keys=keys)
    return dataclasses.replace(config, **values)


def checked_values(cls: type, body: Mapping[str, Any], where: str, *, error: ErrorClass = ValueError,
                   keys: str = "key(s)", exclude: Set[str] = frozenset()) -> dict[str, Any]:
    """``body`` with unknown keys refused and every value checked against its field's type."""
    allowed = sorted({f.name for f in dataclasses.fields(cls) if f.init} - exclude)
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise error(f"{where}: unknown {keys} {unknown}; allowed keys: {allowed}")
    hints = typing.get_type_hints(cls)
    return {key: _checked(value, hints[key], f"{where}: {key}", error) for key, value in body.items()}


def _checked(value: Any, hint: Any, where: str, error: ErrorClass) -> Any:
    """``value`` if it has type ``hint`` (converted where YAML cannot say it: list -> tuple, int -> float)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in args if arg is not type(None)]
        if value is None and len(options) < len(args):
            return None
        return _checked(value, options[0], where, error) if len(options) == 1 else value
    if origin is tuple and args[1:] == (Ellipsis,):
        return _checked_tuple(value, args[0], where, error)
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise error(f"{where}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise error(f"{where}: expected a number, got {value!r}")
        return float(value)
    if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
        return from_mapping(hint, value, where, error=error)
    kind = origin or hint  # dict[str, str] is checked as a dict
    if isinstance(kind, type) and not isinstance(value, kind):
        raise error(f"{where}: expected {kind.__name__}, got {value!r}")
    return value


def _checked_tuple(value: Any, item: Any, where: str, error: ErrorClass) -> tuple:
    if not isinstance(value, (list, tuple)):
        raise error(f"{where}: expected a list, got {value!r}")
    if item is str:  # YAML reads `sections: [1, 8]` as numbers; they name strings ("1", "8")
        value = [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
    return tuple(_checked(v, item, f"{where}[{i}]", error) for i, v in enumerate(value))
