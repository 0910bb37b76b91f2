"""The one ``name:key=value,key=value`` grammar of attack, defense and detector specs.

::

    parse_spec("pgd:steps=20,norm=l2")          # ('pgd', {'steps': 20, 'norm': 'l2'})
    parse_spec("jpeg:quality=75", {"quality": 50})   # ('jpeg', {'quality': 75})
    split_chain("jpeg:quality=75+bits")          # ['jpeg:quality=75', 'bits']

Without ``defaults`` a value is read as a YAML scalar (``20`` an int, ``0.5`` a float,
``true`` a bool, ``l2`` a string), as the attack options of the CLI always were. With
``defaults`` (a parameter's default value per key: a registry entry's signature) the
keys must be among them, ``-`` in a key reads as ``_``, and each value is converted to
the type of its default, as defense parameters always were.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

import yaml

from advlab.errors import AdvlabError, check


def split_spec(text: str) -> tuple[str, list[str]]:
    """``"pgd:steps=20, norm=l2"`` -> ``("pgd", ["steps=20", "norm=l2"])``."""
    name, _, rest = text.partition(":")
    return name.strip(), [item for item in (part.strip() for part in rest.split(",")) if item]


def parse_option(item: str, what: str = "option", where: str = "") -> tuple[str, Any]:
    """``"steps=20"`` -> ``("steps", 20)``: the value read as a YAML scalar.

    An item without ``=`` fails as "{what} '{item}'{where} must look like key=value".
    """
    key, sep, value = item.partition("=")
    if not sep:
        raise AdvlabError(f"{what} '{item}'{where} must look like key=value")
    return key.strip(), yaml.safe_load(value)


def parse_spec(
    text: str, defaults: Mapping[str, Any] | None = None, *, kind: str = "attack"
) -> tuple[str, dict[str, Any]]:
    """``"name:key=value,..."`` -> ``(name, {key: value})`` (see the module docstring).

    ``kind`` names the thing in error messages ("attack", "defense", "detector").
    """
    name, items = split_spec(text)
    if defaults is None:
        return name, dict(parse_option(item, f"{kind} option", f" in '{text}'") for item in items)
    return name, dict(typed_option(item, defaults, kind=kind, name=name) for item in items)


def typed_option(
    item: str, defaults: Mapping[str, Any], *, kind: str, name: str
) -> tuple[str, Any]:
    """``"quality=75"`` -> ``("quality", 75)``: a known key, the value of its default's type."""
    key, sep, value = item.partition("=")
    key, value = key.strip().replace("-", "_"), value.strip()
    check(
        bool(sep) and bool(value),
        f"{kind} parameter '{item}' needs a value: write {name}:{key}=VALUE",
    )
    check(
        key in defaults,
        f"{kind} '{name}' has no parameter '{key}': use {', '.join(defaults) or 'none'}",
    )
    return key, convert(value, defaults[key], f"{name}:{key}")


def convert(value: str, default: Any, where: str = "value") -> Any:
    """``value`` as the type of ``default`` (bool, int or float; anything else stays a str)."""
    kind = type(default)
    try:
        if kind is bool:
            return {"true": True, "false": False}[value.lower()]
        if kind in (int, float):
            return kind(value)
    except (KeyError, ValueError):
        raise AdvlabError(f"{where} must be a {kind.__name__}, got '{value}'") from None
    return value


def split_chain(spec: str | Sequence[str], kind: str = "defense") -> list[str]:
    """``"jpeg:quality=75+bits"`` (or a list of such) -> one spec per ``+``-joined part."""
    parts = spec.split("+") if isinstance(spec, str) else [p for s in spec for p in s.split("+")]
    check(
        bool(parts) and all(part.strip() for part in parts),
        f"empty {kind} in {spec!r}: write e.g. 'jpeg:quality=75+bits:bits=4'",
    )
    return [part.strip() for part in parts]


class Named(Protocol):
    @property
    def name(self) -> str: ...


E = TypeVar("E", bound=Named)


class Registry(dict[str, E], Generic[E]):
    """Entries by their ``name``; a name is read case-insensitively with ``_`` as ``-``,
    and may be an alias. Iteration and ``list()`` give the canonical names only."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.aliases: dict[str, str] = {}

    def register(self, entry: E, *aliases: str) -> E:
        self[entry.name] = entry
        self.aliases.update(dict.fromkeys(aliases, entry.name))
        return entry

    def key(self, name: str) -> str:
        """The canonical name of ``name`` (unchanged when unknown)."""
        key = name.strip().lower().replace("_", "-")
        return self.aliases.get(key, key)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(self.key(name))

    def resolve(self, name: str) -> E:
        """The entry called ``name``, or a one-line error that lists the known names."""
        key = self.key(name)
        if not super().__contains__(key):
            raise AdvlabError(f"unknown {self.kind} '{name}': use one of {', '.join(sorted(self))}")
        return self[key]


def parse_epsilon(text: str) -> float:
    """Accept ``0.03``, ``8/255`` or ``8/255.0``."""
    try:
        if "/" in text:
            top, bottom = text.split("/", 1)
            return float(top) / float(bottom)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise AdvlabError(f"cannot read eps '{text}': use a number like 0.03 or 8/255") from None


def epsilon_value(value: Any) -> Any:
    """An eps from a config file: a number, or text such as ``"8/255"``."""
    if isinstance(value, str):
        try:
            return parse_epsilon(value)
        except AdvlabError as error:
            raise ValueError(str(error)) from None
    return value
