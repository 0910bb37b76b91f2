"""Every command's config as data: validated once here, at the edge, trusted by the core.

Each is what ``advlab <command>`` writes to ``<out>/config.yaml`` and what ``--config``
reads back: ``advlab evaluate --config out/config.yaml`` repeats (and resumes) the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from advlab.training import config as training_config
from advlab.workflows.base import (
    PLACE_FIELDS,
    AttackChoice,
    RunConfig,
    check_linf,
    epsilon_list,
    epsilon_value,
)

#: A config file may name the sweep as the options do: ``attack: [...]``, ``eps: [...]``.
SWEEP_ALIASES = {"attack": "attacks", "eps": "epsilons"}


class _Run(RunConfig):
    """What every command but train shares: where the data lies, the seed, the batches, the
    device and the output folder (each command its own default)."""

    data_dir: str | None = None
    seed: int = 0
    # "auto": the largest batch the device's free memory holds (evaluation/batch_size.py).
    batch_size: int | Literal["auto"] = 128
    device: str = "auto"
    out: str
    # Attacks search in bfloat16 with float32 verdicts (advlab.attacks.precision); auto:
    # where the device and the model run bfloat16 faster (a GPU, a CPU with AMX).
    precision: Literal["float32", "bfloat16", "auto"] = "float32"
    # Attacks search on torch.compile of the model: a compile up front, faster steps after;
    # for long runs (the same numbers to rounding, so a run resumes with or without it).
    compile: bool = False

    place_fields = PLACE_FIELDS | {"compile"}

    @field_validator("batch_size", mode="before")
    @classmethod
    def _positive(cls, value: Any) -> int | str:
        if value == "auto":
            return value
        try:
            number = int(str(value))
        except ValueError:
            number = 0
        if number <= 0 or isinstance(value, (bool, float)):
            raise ValueError(f"batch_size must be a whole number > 0 or auto, got {value!r}")
        return number


class _Sweep(_Run):
    """Attacks over an eps sweep, results in the store: the part evaluate, defend, detect and
    transfer share."""

    attacks: list[AttackChoice] = Field(default_factory=lambda: [AttackChoice(name="pgd")])
    epsilons: list[float] = Field(default_factory=lambda: [0.1, 0.3])
    store: str | None = None
    report: bool = True

    @field_validator("epsilons", mode="before")
    @classmethod
    def _eps_text(cls, values: Any) -> Any:
        values = values if isinstance(values, list) else [values]
        return [epsilon_value(value) for value in values]

    @field_validator("epsilons")
    @classmethod
    def _eps(cls, values: list[float]) -> list[float]:
        return epsilon_list(values)

    @field_validator("attacks", mode="before")
    @classmethod
    def _one_or_more(cls, values: Any) -> Any:
        return values if isinstance(values, list) else [values]

    @model_validator(mode="after")
    def _sweep(self) -> Any:
        if not self.attacks:
            raise ValueError("give at least one --attack")
        check_linf(self.attacks, self.epsilons)
        return self


class EvaluateConfig(_Sweep):
    """Everything ``advlab evaluate`` needs; stored beside every result."""

    aliases = SWEEP_ALIASES

    model: str = "mnist-cnn"
    weights: str | None = None
    target: str | None = None  # http(s)://host:port or model.onnx: attack as a black box
    dataset: str = "mnist-demo"
    split: str = "test"
    n: int | None = Field(default=1000, gt=0)
    out: str = "advlab-results"
    examples: int = Field(default=8, ge=0, le=64)
    # A defense spec such as "jpeg:quality=75": adds the adaptive attacks and the checks.
    defense: str | None = None
    # How long to wait for an http(s) --target: per whole request, retries, the whole run.
    # How to reach the endpoint, not what is computed: a run resumes under other values.
    target_timeout: float = Field(default=10.0, gt=0)
    target_retries: int = Field(default=2, ge=0)
    target_total_timeout: float | None = Field(default=None, gt=0)

    place_fields = _Run.place_fields | {
        "target_timeout", "target_retries", "target_total_timeout",
    }  # fmt: skip

    def target_limits(self) -> dict[str, Any]:
        """The deadlines of an http(s) target, as :func:`load_target` takes them."""
        return {"timeout": self.target_timeout, "retries": self.target_retries,
                "total_timeout": self.target_total_timeout}  # fmt: skip

    # A preset cascade (standard, fast, quick; docs/suite.md) in suite_norm, after the attacks.
    suite: Literal["standard", "fast", "quick"] | None = None
    suite_norm: Literal["linf", "l2"] = "linf"

    @model_validator(mode="before")
    @classmethod
    def _suite_alone(cls, data: Any) -> Any:
        """With a suite, the attacks default to none (the suite alone)."""
        if isinstance(data, dict) and data.get("suite") and not {"attacks", "attack"} & set(data):
            return {**data, "attacks": []}
        return data

    @model_validator(mode="after")
    def _sweep(self) -> EvaluateConfig:
        if not self.attacks and not self.suite:
            raise ValueError("give at least one --attack or a --suite")
        suite = [AttackChoice(name="pgd", norm=self.suite_norm)] if self.suite else []
        check_linf([*self.attacks, *suite], self.epsilons)
        return self

    @field_validator("defense")
    @classmethod
    def _defense(cls, spec: str | None, info: ValidationInfo) -> str | None:
        from advlab.defenses import parse_defense

        if spec is not None:
            if info.data.get("target"):
                raise ValueError("--defense wraps a local model, not a black box: drop --target")
            parse_defense(spec)  # a bad spec fails here, in one line
        return spec

    @model_validator(mode="after")
    def _black_box(self) -> EvaluateConfig:
        from advlab.attacks import get_attack

        if self.target is None:
            return self
        if self.suite:
            raise ValueError(f"--suite {self.suite} needs gradients, which --target cannot give")
        for choice in self.attacks:
            if get_attack(choice.name).needs_gradients:
                raise ValueError(
                    f"attack '{choice.name}' needs gradients, which --target {self.target} "
                    "cannot give: use a black-box attack (square, simba, hopskipjump, transfer)"
                )
        if not self.target.startswith(("http://", "https://")) and not (
            self.target.endswith(".onnx")
        ):
            raise ValueError(f"--target must be an http(s):// URL or a .onnx file: {self.target}")
        return self


class DefendConfig(_Sweep):
    """Everything ``advlab defend`` needs; stored beside the comparison (defend.json)."""

    aliases = {**SWEEP_ALIASES, "defense": "defenses", "defended_model": "defended_models",
               "detector": "detectors", "gap": "gap_threshold"}  # fmt: skip

    model: str = "mnist-cnn"
    weights: str | None = None
    dataset: str = "mnist-demo"
    split: str = "test"
    n: int | None = Field(default=200, gt=0)
    defenses: list[str] = Field(default_factory=list)  # preprocessing specs
    defended_models: list[str] = Field(default_factory=list)  # models trained as defenses
    detectors: list[str] = Field(default_factory=list)
    detector_fpr: float = Field(default=0.05, gt=0, lt=1)
    detector_fit_n: int = Field(default=500, ge=2)
    attacks: list[AttackChoice] = Field(
        default_factory=lambda: [AttackChoice(name=n) for n in ("fgsm", "pgd", "mim")]
    )
    eot_samples: int = Field(default=10, ge=1)
    gap_threshold: float = Field(default=0.1, ge=0, le=1)
    min_retention: float = Field(default=0.97, ge=0, le=1)
    checks: bool = True
    check_n: int = Field(default=100, gt=0)
    check_eps: float | None = Field(default=None, gt=0)
    check_steps: int = Field(default=20, gt=0)
    check_queries: int = Field(default=200, gt=0)
    out: str = "advlab-defend"

    @field_validator("defenses")
    @classmethod
    def _defenses(cls, specs: list[str]) -> list[str]:
        from advlab.defenses import parse_defense

        for spec in specs:
            parse_defense(spec)  # a bad spec fails here, in one line
        return specs

    @field_validator("check_eps", mode="before")
    @classmethod
    def _check_eps_text(cls, value: Any) -> Any:
        return epsilon_value(value)

    @model_validator(mode="after")
    def _something_to_compare(self) -> DefendConfig:
        if not (self.defenses or self.defended_models or self.detectors):
            raise ValueError(
                "nothing to compare: give --defense SPEC, --defended-model NAME or --detector NAME"
            )
        return self


class DetectConfig(_Sweep):
    """Everything ``advlab detect`` needs; stored in detection.json beside the numbers."""

    aliases = SWEEP_ALIASES

    model: str = "mnist-cnn"
    weights: str | None = None
    dataset: str = "mnist"
    detector: str = "squeeze"
    fpr: float = 0.05
    attacks: list[AttackChoice] = Field(
        default_factory=lambda: [AttackChoice(name="fgsm"), AttackChoice(name="pgd")]
    )
    n: int = Field(default=500, gt=0)
    n_fit: int = Field(default=2000, ge=4)
    fit_split: str = "train"
    train_attack: AttackChoice = Field(
        default_factory=lambda: AttackChoice(name="pgd", params={"steps": 20})
    )
    adaptive: bool = True
    adaptive_steps: int = Field(default=40, gt=0)
    out: str = "advlab-detect"
    report: bool = False

    @field_validator("detector")
    @classmethod
    def _known(cls, name: str) -> str:
        from advlab.evaluation.detection import DETECTORS

        if name not in DETECTORS:
            raise ValueError(f"unknown detector '{name}': use {' or '.join(DETECTORS)}")
        return name

    @field_validator("fpr")
    @classmethod
    def _fpr(cls, fpr: float) -> float:
        if not 0 < fpr < 1:
            raise ValueError(f"the false positive rate --fpr must be in (0, 1), got {fpr}")
        return fpr

    @field_validator("fit_split")
    @classmethod
    def _split(cls, split: str) -> str:
        if split not in ("train", "test"):
            raise ValueError(f"unknown fit split '{split}': use train or test")
        return split

    @model_validator(mode="after")
    def _any_norm_in_pixels(self) -> DetectConfig:
        if max(self.epsilons) > 1:
            raise ValueError(
                f"L-inf eps is in [0, 1] pixel units, got {max(self.epsilons)}: "
                "use e.g. 8/255=0.0314"
            )
        return self


class TransferConfig(_Sweep):
    """Everything ``advlab transfer`` needs: craft on each source, evaluate on each target."""

    aliases = {**SWEEP_ALIASES, "source": "sources", "target": "targets"}

    sources: list[str] = Field(default_factory=list)
    targets: list[str] = Field(default_factory=list)  # empty: the sources
    attacks: list[AttackChoice] = Field(
        default_factory=lambda: [AttackChoice(name=n) for n in ("fgsm", "pgd", "mim")]
    )
    epsilons: list[float] = Field(default_factory=list)
    dataset: str | None = None  # None: the first source's data set (registry models)
    split: str = "test"
    n: int | None = Field(default=1000, gt=0)
    out: str = "advlab-transfer"
    report: bool = False

    @field_validator("epsilons")
    @classmethod
    def _eps(cls, values: list[float]) -> list[float]:
        if not values:
            raise ValueError(
                "give at least one --eps, e.g. --eps 8/255 on CIFAR-10 or --eps 0.3 on MNIST"
            )
        return epsilon_list(values)

    @model_validator(mode="before")
    @classmethod
    def _sources_first(cls, values: Any) -> Any:
        if isinstance(values, dict) and not values.get("sources"):
            raise ValueError("give at least one --source model to craft the examples on")
        return values

    @model_validator(mode="after")
    def _resolve(self) -> TransferConfig:
        from advlab.errors import AdvlabError
        from advlab.models import get_entry

        if not self.targets:
            self.targets = list(self.sources)
        for role, given in (("--source", self.sources), ("--target", self.targets)):
            twice = sorted({spec for spec in given if given.count(spec) > 1})
            if twice:
                raise ValueError(f"{role} {', '.join(twice)} is listed twice: give each model once")
        if self.dataset is None:
            try:
                self.dataset = get_entry(self.sources[0]).dataset
            except AdvlabError:
                raise ValueError(
                    f"model '{self.sources[0]}' is not in the registry, so its data set is "
                    "unknown: pass --dataset"
                ) from None
        return self


class AttackConfig(_Run):
    """Everything ``advlab attack`` needs: one attack at one eps, examples saved as .npz."""

    model: str = "mnist-cnn"
    weights: str | None = None
    dataset: str = "mnist-demo"
    split: str = "test"
    n: int | None = Field(default=100, gt=0)
    attack: AttackChoice = Field(default_factory=lambda: AttackChoice(name="pgd"))
    eps: float = 0.1
    out: str = "advlab-attack"
    png: bool = False

    @field_validator("eps", mode="before")
    @classmethod
    def _eps_text(cls, value: Any) -> Any:
        return epsilon_value(value)

    @field_validator("eps")
    @classmethod
    def _eps(cls, value: float) -> float:
        return epsilon_list([value])[0]

    @model_validator(mode="after")
    def _linf_range(self) -> AttackConfig:
        check_linf([self.attack], [self.eps])
        return self


class TrainConfig(training_config.TrainConfig, RunConfig):
    """``advlab train``: :class:`advlab.training.TrainConfig` plus ``distill`` (defensive
    distillation: a teacher at ``temperature`` first, then the student on its soft labels)."""

    aliases = {"out": "out_dir"}
    place_fields = PLACE_FIELDS | training_config.RESUME_FREE_FIELDS

    distill: bool = False

    @property
    def folder(self) -> Path:
        return self.run_dir

    def training(self) -> training_config.TrainConfig:
        """The config the trainer reads (without ``distill``, which picks the workflow)."""
        values = self.model_dump(exclude={"distill"})
        return training_config.TrainConfig.model_validate(values)


CONFIGS: dict[str, type[RunConfig]] = {
    "evaluate": EvaluateConfig,
    "attack": AttackConfig,
    "defend": DefendConfig,
    "detect": DetectConfig,
    "transfer": TransferConfig,
    "train": TrainConfig,
}
