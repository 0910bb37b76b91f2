"""Training configuration as data: validated once here, trusted by the trainer.

Build a config with :func:`load_config` (a mapping or a YAML file): it turns pydantic's
validation errors into a one-line :class:`~advlab.errors.AdvlabError`, which is what the
CLI shows. Constructing :class:`TrainConfig` directly raises pydantic's ``ValidationError``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from advlab.errors import AdvlabError
from advlab.spec import epsilon_value

#: Default learning rate per optimizer when ``lr`` is not given.
DEFAULT_LR = {"sgd": 0.1, "adam": 1e-3}
#: Fields that may change between an interrupted run and its resumption.
RESUME_FREE_FIELDS = frozenset(
    {"data_dir", "out_dir", "device", "num_threads", "compile", "pause_after"}
)


class AdversarialTrainingConfig(BaseModel):
    """Train on adversarial examples crafted against the current model each batch.

    ``fgsm-rs`` is fast adversarial training (Wong et al. 2020: FGSM from a random start,
    step ``alpha``, default 1.25 * eps); ``pgd`` is Madry et al.'s PGD training (``steps``
    steps of ``alpha``, default 2.5 * eps / steps); ``trades`` is Zhang et al. 2019
    (clean cross-entropy plus ``beta`` times the KL divergence to the prediction on an
    example that maximizes it, found with ``steps`` steps of ``alpha``).

    ``warmup_epochs`` ramps eps linearly from 0 over the first epochs (per batch), which
    keeps fast and PGD training from collapsing early on. After every epoch the trainer
    measures robust accuracy on ``val_n`` held-out images under PGD-``val_steps`` at
    ``val_eps`` (default: eps):
    the best checkpoint is the most robust one, and a drop of more than
    ``overfit_drop`` below the best so far is reported as catastrophic overfitting (and
    stops the run when ``early_stop``).
    """

    model_config = ConfigDict(extra="forbid")

    method: Literal["fgsm-rs", "pgd", "trades"] = "pgd"
    eps: float = Field(gt=0, description="perturbation budget in [0, 1] pixel units")
    norm: Literal["linf", "l2"] = "linf"
    alpha: float | None = Field(default=None, gt=0)
    steps: int = Field(default=10, ge=1)
    beta: float = Field(default=6.0, gt=0, description="TRADES trade-off weight")
    warmup_epochs: float = Field(default=0.0, ge=0, description="epochs to ramp eps up from 0")
    val_n: int = Field(default=1000, ge=1, description="held-out images for robust accuracy")
    val_steps: int = Field(default=10, ge=1, description="PGD steps for robust validation")
    # Validate at another eps than the training one: a model trained at 0.2 for use at 0.1
    # should be selected (and reported) by its robustness at 0.1.
    val_eps: float | None = Field(default=None, gt=0, description="eps of robust validation")
    early_stop: bool = True
    overfit_drop: float = Field(default=0.1, gt=0, le=1)

    @field_validator("eps", "val_eps", "alpha", mode="before")
    @classmethod
    def _eps_text(cls, value: Any) -> Any:
        return epsilon_value(value)  # "8/255" (or a step of "2/255") as on the command line

    @model_validator(mode="after")
    def _eps_in_pixel_units(self) -> AdversarialTrainingConfig:
        for value in (self.eps, self.val_eps):
            if self.norm == "linf" and value is not None and value > 1:
                raise ValueError(f"L-inf eps is in [0, 1] pixel units, got {value}: use e.g. 0.3")
        return self

    @property
    def validation_eps(self) -> float:
        return self.eps if self.val_eps is None else self.val_eps


class TrainConfig(BaseModel):
    """Everything that determines a training run (and, with the seed, its result on CPU)."""

    model_config = ConfigDict(extra="forbid")

    model: str = "mnist-cnn"
    arch_kwargs: dict[str, Any] = Field(default_factory=dict)
    dataset: str | None = None  # None: the model's own data set (registry entry)
    data_dir: Path | None = None
    epochs: int = Field(default=10, ge=1)
    batch_size: int = Field(default=128, ge=1)
    lr: float | None = Field(default=None, gt=0)  # None: DEFAULT_LR[optimizer]
    optimizer: Literal["sgd", "adam"] = "adam"
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)
    schedule: Literal["cosine", "step", "onecycle", "cyclic", "constant"] = "cosine"
    seed: int = 0
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    augment: bool = False
    val_split: Literal["test"] | float = "test"  # or a fraction of train held out
    n_train: int | None = Field(default=None, ge=1)
    n_val: int | None = Field(default=None, ge=1)  # validate on a seeded subset
    exclude: str | None = None
    out_dir: Path | None = None  # None: runs/<name>
    name: str | None = None  # None: the model name
    num_threads: int | None = Field(default=None, ge=1)
    adversarial: AdversarialTrainingConfig | None = None
    # Softmax temperature of the training loss (defensive distillation trains at T > 1).
    temperature: float = Field(default=1.0, gt=0)
    # Defensive distillation: train on this teacher's soft labels at ``temperature``.
    distill_from: str | None = None
    # Start from these weights instead of a random initialization (fine-tuning, e.g.
    # adversarial fine-tuning of a standard model): a model spec as for load_model, a zoo
    # name or a checkpoint file, of the same architecture and arch_kwargs.
    init_from: str | None = None
    # Stop when the selection metric has not improved for this many epochs.
    patience: int | None = Field(default=None, ge=1)
    # End this invocation after epoch N of the ``epochs`` schedule, as if interrupted there:
    # a rerun with a larger value, or none, goes on (a time-boxed session, a staged recipe).
    pause_after: int | None = Field(default=None, ge=1)
    # bfloat16 autocast on CUDA (ignored on CPU).
    amp: bool = True
    # torch.compile the training forward and backward (standard and distillation training).
    # Measure before relying on it: on a 2-core CPU it made a MobileNetV2 step slower
    # (0.83 s against 0.55 s eager). Like the thread count, it may change on a resume.
    compile: bool = False

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        from advlab.models import registered_models

        names = [entry.name for entry in registered_models()]
        if model not in names:
            raise ValueError(f"unknown model '{model}': use one of {', '.join(names)}")
        return model

    @field_validator("dataset", "exclude")
    @classmethod
    def _known_dataset(cls, name: str | None) -> str | None:
        from advlab.data import DATASETS

        known = [key for key in DATASETS if ":" not in key]
        if name is None or name in known or name.startswith("imagefolder:"):
            return name
        raise ValueError(f"unknown data set '{name}': use one of {', '.join(known)}")

    @field_validator("val_split", mode="before")
    @classmethod
    def _test_or_fraction(cls, value: Any) -> str | float:
        # One clear message instead of pydantic's two (one per member of the union).
        if value == "test":
            return "test"
        try:
            fraction = float(value)
        except (TypeError, ValueError):
            fraction = float("nan")
        if not 0 < fraction < 1:  # also false for nan
            raise ValueError(f"use 'test' or a fraction in (0, 1), got {value!r}")
        return fraction

    @model_validator(mode="after")
    def _one_loss(self) -> TrainConfig:
        if self.distill_from is not None and self.adversarial is not None:
            raise ValueError("distillation and adversarial training cannot be combined: pick one")
        return self

    @model_validator(mode="after")
    def _compile_standard_steps_only(self) -> TrainConfig:
        # The attacks of adversarial training switch modes and input gradients on every
        # batch, which a compiled graph would keep recompiling for.
        if self.compile and self.adversarial is not None:
            raise ValueError("compile speeds up standard training only: drop it for adversarial")
        return self

    @model_validator(mode="after")
    def _defaults(self) -> TrainConfig:
        """Writes the defaults that follow from other fields into the config (and its dump)."""
        self.lr, self.name, self.out_dir = self.learning_rate, self.run_name, self.run_dir
        return self

    @property
    def learning_rate(self) -> float:
        """``lr``, or the optimizer's default."""
        return DEFAULT_LR[self.optimizer] if self.lr is None else self.lr

    @property
    def run_name(self) -> str:
        """``name``, or the model's."""
        return self.model if self.name is None else self.name

    @property
    def run_dir(self) -> Path:
        """``out_dir``, or ``runs/<run_name>``."""
        return Path("runs") / self.run_name if self.out_dir is None else self.out_dir

    @property
    def dataset_name(self) -> str:
        from advlab.models import get_entry

        return self.dataset or get_entry(self.model).dataset

    def identity(self) -> dict[str, Any]:
        """The fields a resumed run must share with the run it continues."""
        return self.model_dump(mode="json", exclude=set(RESUME_FREE_FIELDS))


def load_config(source: Mapping[str, Any] | str | Path | TrainConfig) -> TrainConfig:
    """A validated :class:`TrainConfig` from a mapping, a YAML file or a config.

    Raises :class:`AdvlabError` with one line naming the first bad field.
    """
    if isinstance(source, TrainConfig):
        return source
    if isinstance(source, (str, Path)):
        source = _read_yaml(Path(source))
    try:
        return TrainConfig.model_validate(dict(source))
    except ValidationError as error:
        raise AdvlabError(_one_line(error)) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise AdvlabError(f"training config not found: {path} (check the path)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise AdvlabError(f"training config {path} is not valid YAML ({error})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AdvlabError(f"training config {path} must be a mapping of field: value")
    return data


def _one_line(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "config"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        nested = len(first["loc"]) > 1 and first["loc"][0] == "adversarial"
        fields = list((AdversarialTrainingConfig if nested else TrainConfig).model_fields)
        near = difflib.get_close_matches(str(first["loc"][-1]), fields, n=1, cutoff=0.6)
        hint = f"did you mean '{near[0]}'?" if near else f"use one of {', '.join(fields)}"
        return f"unknown training option '{where}': {hint}"
    more = f" (and {error.error_count() - 1} more problem(s))" if error.error_count() > 1 else ""
    return f"invalid training option '{where}': {message}{more}"
