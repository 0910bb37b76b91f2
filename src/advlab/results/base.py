"""What every typed result shares: reading a JSON mapping into a dataclass, and JSON I/O.

Results are read from files anyone can hand over (a stored run, a colleague's
results.json), so :func:`build` is forgiving about what is missing: a field the
mapping lacks gets its default, or a blank (None where the type allows it, NaN for a
number, an empty string, list or mapping), so that a report of a partial file shows
"n/a" rather than failing. A value of the wrong kind where a record or a list of
records belongs is an :class:`~advlab.errors.AdvlabError`.
"""

from __future__ import annotations

import json
import math
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any, Protocol, TypeVar, Union, cast, get_args, get_origin

from advlab.errors import check
from advlab.results.html import render

_T = TypeVar("_T")


class _AttackAtEps(Protocol):
    @property
    def attack(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def eps(self) -> float: ...


_E = TypeVar("_E", bound=_AttackAtEps)
_R = TypeVar("_R", bound="Record")


def find(
    entries: Iterable[_E], attack: str, eps: float, what: str = "result", where: str = ""
) -> _E:
    """The entry of ``attack`` (its registry name or key) at ``eps``; a KeyError otherwise."""
    for entry in entries:
        if attack in (entry.attack, entry.key) and entry.eps == eps:
            return entry
    raise KeyError(f"no {what} for {attack} at eps {eps}{where}")


class Record:
    """A dataclass row of a results file: :meth:`to_dict` is its fields, :meth:`from_dict`
    reads one back with :func:`build`; ``WHAT`` names it in errors."""

    WHAT = "a record"

    def to_dict(self) -> dict[str, Any]:
        return asdict(cast(Any, self))

    @classmethod
    def from_dict(cls: type[_R], data: Mapping[str, Any]) -> _R:
        return build(cls, data, cls.WHAT)


@cache
def _hints(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def blank(hint: Any) -> Any:
    """The value a field of type ``hint`` takes when a results file lacks it."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType) and type(None) in get_args(hint):
        return None
    if hint is float:
        return math.nan
    if hint is int:
        return 0
    if hint is bool:
        return False
    if origin is list or hint is list:
        return []
    if origin is dict or hint is dict or typing.is_typeddict(hint):
        return {}
    return ""  # str and the Literal names (a kind, a status)


def mapping(data: Any, what: str) -> Mapping[str, Any]:
    """``data`` itself, once it is a mapping (``what`` names it in the error)."""
    check(isinstance(data, Mapping), f"{what} must be a JSON object, got {type(data).__name__}")
    return cast(Mapping[str, Any], data)


def records(data: Mapping[str, Any], key: str, what: str) -> list[Mapping[str, Any]]:
    """``data[key]`` as a list of mappings (empty when missing or null)."""
    value = data.get(key) or []
    check(isinstance(value, list), f"'{key}' of {what} must be a list")
    return [mapping(item, f"an entry of '{key}' in {what}") for item in value]


def build(cls: type[_T], data: Mapping[str, Any], what: str, **parsed: Any) -> _T:
    """An instance of the dataclass ``cls`` from ``data``; ``parsed`` holds the fields
    already converted (nested records). Keys ``cls`` does not know are ignored."""
    data = mapping(data, what)
    hints: dict[str, Any] = _hints(cast(Any, cls))
    values: dict[str, Any] = {}
    for field in fields(cls):  # type: ignore[arg-type]
        name = field.name
        if name in parsed:
            values[name] = parsed[name]
        elif name in data:
            value = data[name]
            # A number the run could not measure may come back as null.
            values[name] = math.nan if value is None and hints[name] is float else value
        elif field.default is MISSING and field.default_factory is MISSING:
            values[name] = blank(hints[name])
    return cls(**values)


class JsonResult:
    """``to_json`` / ``from_json`` / ``write_json`` / ``read_json`` on top of a class's
    ``to_dict`` and ``from_dict``; ``FILE`` names the file it is the content of."""

    FILE = "a results file"

    @classmethod
    def coerce(cls: type[_T], value: Any) -> _T:
        """``value`` as this class: itself, or read from a mapping (the file's content)
        or from an object with a ``to_dict`` (the same result from another module)."""
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping) and callable(getattr(value, "to_dict", None)):
            value = value.to_dict()
        holds = getattr(cls, "FILE", "a results file")
        check(isinstance(value, Mapping), f"results must be a dict such as {holds} holds")
        return cls.from_dict(value)  # type: ignore[attr-defined]

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def _repr_html_(self) -> str | None:
        """Jupyter shows the result as HTML tables (:mod:`advlab.results.html`)."""
        return render(self)

    def to_json(self, indent: int | None = 2) -> str:
        """The file's text, as advlab writes it (``default=str`` for odd config values)."""
        return json.dumps(self.to_dict(), indent=indent, default=str)

    @classmethod
    def from_json(cls: type[_T], text: str | bytes) -> _T:
        return cls.from_dict(json.loads(text))  # type: ignore[attr-defined]

    def write_json(self, path: str | Path) -> Path:
        return write_text(path, self.to_json())

    @classmethod
    def read_json(cls: type[_T], path: str | Path) -> _T:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))  # type: ignore[attr-defined]


@dataclass
class RunResult(JsonResult):
    """The fields that open a stored run's result: its id, the model, the data, the seed."""

    run_id: str
    model: str
    dataset: str
    split: str
    n: int
    seed: int


#: What a run was, in the order results.json and detection.json write it.
RUN_FIELDS = (
    "advlab_version",
    "model",
    "weights_sha256",
    "dataset",
    "split",
    "n",
    "seed",
    "device",
)


def run_fields(result: Any) -> dict[str, Any]:
    """A result's :data:`RUN_FIELDS` as a mapping, for the start of its ``to_dict``."""
    return {name: getattr(result, name) for name in RUN_FIELDS}


def write_text(path: str | Path, text: str) -> Path:
    """Write through a temporary file, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def csv_cell(value: Any) -> str:
    """A raw value as a CSV cell: empty for none, floats exact, text safe for spreadsheets."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same float
    if isinstance(value, int):
        return str(value)
    text = str(value)
    # Spreadsheets run cells that start with = + - @ as formulas (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
