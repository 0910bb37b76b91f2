"""What every command's config shares: the attack and eps grammar, one-line validation
errors (with "did you mean" for a misspelt key), and the YAML form a run writes and
``--config`` reads back."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from advlab.errors import AdvlabError
from advlab.spec import epsilon_value, parse_epsilon  # noqa: F401  (re-exported)

C = TypeVar("C", bound=BaseModel)

#: Fields that may change between a run and its resumption (where, not what, it computes).
PLACE_FIELDS = frozenset({"device", "data_dir", "out", "store", "report", "num_threads"})


class AttackChoice(BaseModel):
    """One attack of a sweep: a registry name, a norm and extra constructor arguments.

    Also given as text: ``"pgd"``, ``"pgd:steps=20,restarts=2"`` or ``"deepfool:norm=l2"``.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    norm: Literal["linf", "l2"] = "linf"
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        return _attack_fields(value, "linf") if isinstance(value, str) else value

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        from advlab.attacks import ATTACKS

        key = name.lower().replace("_", "-")
        if key not in ATTACKS:
            raise ValueError(f"unknown attack '{name}': use one of {', '.join(sorted(ATTACKS))}")
        return key

    @field_validator("norm", mode="before")
    @classmethod
    def _norm(cls, norm: Any) -> Any:
        if norm not in ("linf", "l2"):
            raise ValueError(f"unknown norm '{norm}': use linf or l2")
        return norm

    @classmethod
    def parse(cls, text: str, default_norm: str = "linf") -> AttackChoice:
        """``text`` as above; ``default_norm`` where the text names none."""
        try:
            fields = _attack_fields(text, default_norm)
        except ValueError as error:
            raise AdvlabError(str(error)) from None
        choice: AttackChoice = validated(cls, fields)
        return choice


def _attack_fields(text: str, default_norm: str) -> dict[str, Any]:
    name, _, rest = text.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"attack option '{item}' in '{text}' must look like key=value")
        params[key.strip()] = yaml.safe_load(value)
    norm = str(params.pop("norm", default_norm))
    return {"name": name.strip(), "norm": norm, "params": params}


def epsilon_list(values: list[float]) -> list[float]:
    """The eps sweep of a command, checked and sorted without repeats."""
    if not values:
        raise ValueError("give at least one --eps")
    for eps in values:
        if not math.isfinite(eps) or eps < 0:
            raise ValueError(f"eps must be a finite number >= 0, got {eps}")
    return sorted(set(values))


def check_linf(attacks: list[AttackChoice], epsilons: list[float]) -> None:
    """L-inf eps lives in [0, 1] pixel units."""
    if any(a.norm == "linf" for a in attacks) and epsilons and max(epsilons) > 1:
        raise ValueError(
            f"L-inf eps is in [0, 1] pixel units, got {max(epsilons)}: use e.g. 8/255=0.0314"
        )


class RunConfig(BaseModel):
    """A command's config: written to ``config.yaml`` beside the results, in the form that
    ``--config`` (and :meth:`from_yaml`) reads back."""

    model_config = ConfigDict(extra="forbid")

    #: Other names a config file may use for a field: the command's option names.
    aliases: ClassVar[Mapping[str, str]] = {}
    #: Fields that may differ between a run and its resumption into the same folder.
    place_fields: ClassVar[frozenset[str]] = PLACE_FIELDS

    @property
    def folder(self) -> Path:
        """The results folder."""
        return Path(str(getattr(self, "out"))).expanduser()  # noqa: B009

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def identity(self) -> dict[str, Any]:
        """What makes two runs the same run (everything but where it runs and writes)."""
        return self.model_dump(mode="json", exclude=set(self.place_fields))

    @classmethod
    def from_mapping(cls: type[C], values: Mapping[str, Any]) -> C:
        """Validate ``values`` (keys as written, or the command's option names)."""
        config: C = validated(cls, cls.canonical(values))  # type: ignore[attr-defined]
        return config

    @classmethod
    def canonical(cls, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` with every key under its field name (``attack`` -> ``attacks``)."""
        renamed: dict[str, Any] = {}
        for key, value in values.items():
            name = str(key).replace("-", "_")
            renamed[cls.aliases.get(name, name)] = value
        return renamed

    @classmethod
    def from_yaml(cls: type[C], path: str | Path) -> C:
        config: C = cls.from_mapping(read_yaml(path))  # type: ignore[attr-defined]
        return config


def validated(model_type: type[C], values: Mapping[str, Any]) -> C:
    """Build ``model_type`` from ``values``; a validation error becomes one AdvlabError line."""
    try:
        return model_type.model_validate(dict(values))
    except ValidationError as error:
        raise AdvlabError(one_line(model_type, error)) from None


def one_line(model_type: type[BaseModel], error: ValidationError) -> str:
    first = error.errors()[0]
    loc = [str(part) for part in first.get("loc", ())]
    where = ".".join(loc) or "config"
    message = str(first.get("msg", "invalid value"))
    if first.get("type") == "extra_forbidden":
        return f"unknown option '{where}': {suggest(loc[-1], _field_names(model_type, loc[:-1]))}"
    if first.get("type") == "value_error":  # our own validators already name the problem
        return message.removeprefix("Value error, ")
    return f"invalid {where}: {message}"


def suggest(key: str, valid: list[str]) -> str:
    """``did you mean 'x'?`` for the nearest valid key, else the list of them."""
    near = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if near:
        return f"did you mean '{near[0]}'?"
    return f"use one of {', '.join(valid)}"


def _field_names(model_type: type[BaseModel], path: list[str]) -> list[str]:
    """The keys valid at ``path`` (a nested model's fields for a nested key)."""
    current: Any = model_type
    for part in path:
        field = current.model_fields.get(part) if _is_model(current) else None
        annotation = getattr(field, "annotation", None)
        nested = [a for a in getattr(annotation, "__args__", (annotation,)) if _is_model(a)]
        if not nested:
            return []
        current = nested[0]
    names = list(current.model_fields)
    return names + [a for a in getattr(current, "aliases", {}) if a not in names]


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise AdvlabError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise AdvlabError(
            f"config file {path} is not valid YAML: {error}".splitlines()[0]
        ) from None
    if not isinstance(data, dict):
        raise AdvlabError(f"config file {path} must hold a mapping of option: value")
    return {str(key).replace("-", "_"): value for key, value in data.items()}
