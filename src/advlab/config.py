"""Run configurations as data: validated once at the edge, trusted by the core."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from advlab.errors import AdvlabError


class AttackChoice(BaseModel):
    """One attack of a sweep: a registry name, a norm and extra constructor arguments."""

    model_config = ConfigDict(extra="forbid")

    name: str
    norm: str = "linf"
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        from advlab.attacks import ATTACKS

        key = name.lower().replace("_", "-")
        if key not in ATTACKS:
            raise ValueError(f"unknown attack '{name}': use one of {', '.join(sorted(ATTACKS))}")
        return key

    @field_validator("norm")
    @classmethod
    def _norm(cls, norm: str) -> str:
        if norm not in ("linf", "l2"):
            raise ValueError(f"unknown norm '{norm}': use linf or l2")
        return norm

    @classmethod
    def parse(cls, text: str, default_norm: str = "linf") -> AttackChoice:
        """``"pgd"``, ``"pgd:steps=20,restarts=2"`` or ``"deepfool:norm=l2"``."""
        name, _, rest = text.partition(":")
        params: dict[str, Any] = {}
        for item in filter(None, (part.strip() for part in rest.split(","))):
            key, sep, value = item.partition("=")
            if not sep:
                raise AdvlabError(f"attack option '{item}' in '{text}' must look like key=value")
            params[key.strip()] = yaml.safe_load(value)
        norm = str(params.pop("norm", default_norm))
        choice: AttackChoice = validated(
            cls, {"name": name.strip(), "norm": norm, "params": params}
        )
        return choice


def epsilon_list(values: list[float]) -> list[float]:
    """The eps sweep of a command, checked and sorted without repeats."""
    if not values:
        raise ValueError("give at least one --eps")
    for eps in values:
        if not math.isfinite(eps) or eps < 0:
            raise ValueError(f"eps must be a finite number >= 0, got {eps}")
    return sorted(set(values))


class EvaluateConfig(BaseModel):
    """Everything ``advlab evaluate`` needs; stored beside every result."""

    model_config = ConfigDict(extra="forbid")

    model: str = "mnist-cnn"
    weights: str | None = None
    target: str | None = None  # http(s)://host:port or model.onnx: attack as a black box
    dataset: str = "mnist-demo"
    data_dir: str | None = None
    split: str = "test"
    n: int | None = Field(default=1000, gt=0)
    seed: int = 0
    attacks: list[AttackChoice] = Field(default_factory=lambda: [AttackChoice(name="pgd")])
    epsilons: list[float] = Field(default_factory=lambda: [0.1, 0.3])
    batch_size: int = Field(default=128, gt=0)
    device: str = "auto"
    out: str = "advlab-results"
    store: str | None = None
    report: bool = True
    examples: int = Field(default=8, ge=0, le=64)
    # A defense spec such as "jpeg:quality=75": adds the adaptive attacks and the checks.
    defense: str | None = None

    @field_validator("defense")
    @classmethod
    def _defense(cls, spec: str | None, info: ValidationInfo) -> str | None:
        from advlab.defenses import parse_defense

        if spec is not None:
            if info.data.get("target"):
                raise ValueError("--defense wraps a local model, not a black box: drop --target")
            parse_defense(spec)  # a bad spec fails here, in one line
        return spec

    @field_validator("epsilons")
    @classmethod
    def _eps(cls, values: list[float]) -> list[float]:
        return epsilon_list(values)

    @model_validator(mode="after")
    def _linf_range(self) -> EvaluateConfig:
        if any(a.norm == "linf" for a in self.attacks) and max(self.epsilons) > 1:
            raise ValueError(
                f"L-inf eps is in [0, 1] pixel units, got {max(self.epsilons)}: "
                "use e.g. 8/255=0.0314"
            )
        if not self.attacks:
            raise ValueError("give at least one --attack")
        return self

    @property
    def out_dir(self) -> Path:
        return Path(self.out).expanduser()


class DefendConfig(BaseModel):
    """Everything ``advlab defend`` needs; stored beside the comparison (defend.json)."""

    model_config = ConfigDict(extra="forbid")

    model: str = "mnist-cnn"
    weights: str | None = None
    dataset: str = "mnist-demo"
    data_dir: str | None = None
    split: str = "test"
    n: int | None = Field(default=200, gt=0)
    seed: int = 0
    defenses: list[str] = Field(default_factory=list)  # preprocessing specs
    defended_models: list[str] = Field(default_factory=list)  # models trained as defenses
    detectors: list[str] = Field(default_factory=list)
    detector_fpr: float = Field(default=0.05, gt=0, lt=1)
    detector_fit_n: int = Field(default=500, ge=2)
    attacks: list[AttackChoice] = Field(
        default_factory=lambda: [AttackChoice(name=n) for n in ("fgsm", "pgd", "mim")]
    )
    epsilons: list[float] = Field(default_factory=lambda: [0.1, 0.3])
    eot_samples: int = Field(default=10, ge=1)
    gap_threshold: float = Field(default=0.1, ge=0, le=1)
    min_retention: float = Field(default=0.97, ge=0, le=1)
    checks: bool = True
    check_n: int = Field(default=100, gt=0)
    check_eps: float | None = Field(default=None, gt=0)
    check_steps: int = Field(default=20, gt=0)
    check_queries: int = Field(default=200, gt=0)
    batch_size: int = Field(default=128, gt=0)
    device: str = "auto"
    out: str = "advlab-defend"
    store: str | None = None
    report: bool = True

    @field_validator("defenses")
    @classmethod
    def _defenses(cls, specs: list[str]) -> list[str]:
        from advlab.defenses import parse_defense

        for spec in specs:
            parse_defense(spec)  # a bad spec fails here, in one line
        return specs

    @field_validator("epsilons")
    @classmethod
    def _eps(cls, values: list[float]) -> list[float]:
        return epsilon_list(values)

    @model_validator(mode="after")
    def _something_to_compare(self) -> DefendConfig:
        if not (self.defenses or self.defended_models or self.detectors):
            raise ValueError(
                "nothing to compare: give --defense SPEC, --defended-model NAME or --detector NAME"
            )
        if not self.attacks:
            raise ValueError("give at least one --attack")
        if any(a.norm == "linf" for a in self.attacks) and max(self.epsilons) > 1:
            raise ValueError(f"L-inf eps is in [0, 1] pixel units, got {max(self.epsilons)}")
        return self

    @property
    def out_dir(self) -> Path:
        return Path(self.out).expanduser()


def validated(model_type: type[BaseModel], values: dict[str, Any]) -> Any:
    """Build ``model_type`` from ``values``; a validation error becomes one AdvlabError line."""
    try:
        return model_type.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "config"
        message = str(first.get("msg", "invalid value"))
        if first.get("type") == "value_error":  # our own validators already name the problem
            raise AdvlabError(message.removeprefix("Value error, ")) from None
        raise AdvlabError(f"invalid {where}: {message}") from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise AdvlabError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise AdvlabError(f"config file {path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise AdvlabError(f"config file {path} must hold a mapping of option: value")
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def parse_epsilon(text: str) -> float:
    """Accept ``0.03``, ``8/255`` or ``8/255.0``."""
    try:
        if "/" in text:
            top, bottom = text.split("/", 1)
            return float(top) / float(bottom)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise AdvlabError(f"cannot read eps '{text}': use a number like 0.03 or 8/255") from None
